//! A client's request that cannot be served as sent, found before or while it is forwarded,
//! and its one mapping to HTTP (400/405/408/413). Upstream faults are `proxy::ProxyError`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::response::json_error;
use super::text::sanitize;

/// The methods the gateway forwards (`Allow` on a 405).
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the method {0} is not allowed")]
    MethodNotAllowed(String),
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(u64),
    #[error("the client stopped sending the request body")]
    BodyIdle,
    #[error("the client closed the connection during the upload")]
    ClientAborted,
}

impl RequestError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::ClientAborted => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyIdle => StatusCode::REQUEST_TIMEOUT,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) | Self::ClientAborted => "invalid_request",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::BodyTooLarge(_) => "request_too_large",
            Self::BodyIdle => "request_timeout",
        }
    }

    /// The JSON error response. A body the gateway stopped reading leaves the connection's
    /// framing unknown, so those answers close it.
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let mut response = json_error(self.status(), self.code(), &sanitize(&self.to_string()));
        let headers = response.headers_mut();
        if let Self::MethodNotAllowed(_) = self {
            headers.insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        }
        if matches!(
            self,
            Self::BodyTooLarge(_) | Self::BodyIdle | Self::ClientAborted
        ) {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
