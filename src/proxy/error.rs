//! Failures of the proxy path and their one mapping to HTTP. The status says whose fault it
//! was: the client's request (400/405/408/413), the upstream (502/504).

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use super::body::BodyError;
use crate::auth::error::sanitize;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
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
            Self::BadRequest(_) | Self::ClientAborted => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyIdle => StatusCode::REQUEST_TIMEOUT,
            Self::Connect(_) | Self::Reset(_) | Self::BadResponse(_) => StatusCode::BAD_GATEWAY,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) | Self::ClientAborted => "invalid_request",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::BodyTooLarge(_) => "request_too_large",
            Self::BodyIdle => "request_timeout",
            Self::Connect(_) => "upstream_unavailable",
            Self::Timeout(_) => "upstream_timeout",
            Self::Reset(_) | Self::BadResponse(_) => "bad_gateway",
        }
    }

    /// Label for `halo_gateway_upstream_errors_total{kind}`; `None` for client faults.
    pub fn upstream_kind(&self) -> Option<&'static str> {
        match self {
            Self::Connect(_) => Some("connect"),
            Self::Timeout(_) => Some("timeout"),
            Self::Reset(_) => Some("reset"),
            Self::BadResponse(_) => Some("bad_response"),
            _ => None,
        }
    }

    /// Classifies a failed upstream exchange, looking for our own body errors in the chain.
    pub fn from_client_error(error: &hyper_util::client::legacy::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = source {
            if let Some(body) = e.downcast_ref::<BodyError>() {
                return match body {
                    BodyError::TooLarge(limit) => Self::BodyTooLarge(*limit),
                    BodyError::Idle(_) => Self::BodyIdle,
                    BodyError::Client(_) => Self::ClientAborted,
                };
            }
            source = e.source();
        }
        let detail = crate::error_chain(error);
        if error.is_connect() {
            Self::Connect(detail)
        } else {
            Self::Reset(detail)
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body =
            Json(json!({ "error": self.code(), "error_description": sanitize(&self.to_string()) }));
        let mut response = (status, body).into_response();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            response.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
        }
        if matches!(
            self,
            Self::BodyTooLarge(_) | Self::BodyIdle | Self::ClientAborted
        ) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
