//! Failures of the proxy path and their one mapping to HTTP. The status says whose fault it
//! was: the client's request (400/405/408/413, see [`RequestError`]), the upstream (502/504).

use bytes::Bytes;
use http::{Response, StatusCode};

use crate::http::request_body::BodyError;
use crate::http::request_error::RequestError;
use crate::http::response::json_error;
use crate::http::text::sanitize;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("the upstream is unreachable: {0}")]
    Connect(String),
    #[error("the upstream did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the upstream connection failed: {0}")]
    Reset(String),
    #[error("the upstream sent an invalid response: {0}")]
    BadResponse(String),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Request(e) => e.status(),
            Self::Connect(_) | Self::Reset(_) | Self::BadResponse(_) => StatusCode::BAD_GATEWAY,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Request(e) => e.code(),
            Self::Connect(_) => "upstream_unavailable",
            Self::Timeout(_) => "upstream_timeout",
            Self::Reset(_) | Self::BadResponse(_) => "bad_gateway",
        }
    }

    /// Label for `halo_gateway_upstream_errors_total{kind}`; `None` for client faults.
    pub fn upstream_kind(&self) -> Option<&'static str> {
        match self {
            Self::Request(_) => None,
            Self::Connect(_) => Some("connect"),
            Self::Timeout(_) => Some("timeout"),
            Self::Reset(_) => Some("reset"),
            Self::BadResponse(_) => Some("bad_response"),
        }
    }

    /// Classifies a failed upstream exchange, looking for our own body errors in the chain.
    pub fn from_client_error(error: &hyper_util::client::legacy::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = source {
            if let Some(body) = e.downcast_ref::<BodyError>() {
                return Self::Request(body.request_error());
            }
            source = e.source();
        }
        let detail = crate::error::error_chain(error);
        if error.is_connect() {
            Self::Connect(detail)
        } else {
            Self::Reset(detail)
        }
    }

    /// The JSON error response.
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        match self {
            Self::Request(e) => e.to_response(),
            _ => json_error(self.status(), self.code(), &sanitize(&self.to_string())),
        }
    }
}
