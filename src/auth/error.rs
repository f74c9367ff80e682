//! Authentication failures and their one mapping to HTTP (RFC 6750 §3).
//!
//! | failure                               | status | `WWW-Authenticate`                          |
//! |---------------------------------------|--------|---------------------------------------------|
//! | no bearer token                       | 401    | `Bearer` (no error code, §3.1)              |
//! | token present but invalid             | 401    | `Bearer error="invalid_token", ...`         |
//! | token in query/body, two headers, ... | 400    | `Bearer error="invalid_request", ...`       |
//! | valid token, role missing             | 403    | `Bearer error="insufficient_scope", ...`    |
//! | no signing keys loaded yet            | 503    | none; `Retry-After`                         |
//!
//! Descriptions never contain the token, and are sanitized to printable ASCII so they are
//! always valid header values whatever bytes a token carried.

use axum::response::IntoResponse;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::http::response::json_error;
use crate::http::text::sanitize;

/// Seconds a client is told to wait while keys are unavailable.
pub const KEYS_RETRY_AFTER_SECS: u64 = 5;

/// Why a request was denied: the bounded `reason` label of metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    MissingToken,
    InvalidRequest,
    TokenTooLong,
    Malformed,
    BadSignature,
    UnknownKid,
    Expired,
    NotYetValid,
    IssuedInFuture,
    LifetimeTooLong,
    WrongIssuer,
    WrongAudience,
    MissingClaim,
    DisallowedAlg,
    DisallowedType,
    DisallowedHeader,
    SenderConstrained,
    RoleMissing,
    KeysUnavailable,
}

impl DenyReason {
    pub fn label(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidRequest => "invalid_request",
            Self::TokenTooLong => "token_too_long",
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::UnknownKid => "unknown_kid",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::DisallowedAlg => "disallowed_alg",
            Self::DisallowedType => "disallowed_type",
            Self::DisallowedHeader => "disallowed_header",
            Self::SenderConstrained => "sender_constrained",
            Self::RoleMissing => "admin_role_missing",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// A denied request: the reason and a precise, token-free description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{description}")]
pub struct AuthError {
    pub reason: DenyReason,
    pub description: String,
    /// For `RoleMissing`: the role that was required.
    pub required_role: Option<String>,
}

impl AuthError {
    pub fn new(reason: DenyReason, description: impl Into<String>) -> Self {
        Self {
            reason,
            description: sanitize(&description.into()),
            required_role: None,
        }
    }

    pub fn role_missing(role: &str) -> Self {
        Self {
            reason: DenyReason::RoleMissing,
            description: sanitize(&format!(
                "this route needs the '{role}' role, which the token does not carry"
            )),
            required_role: Some(role.to_owned()),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self.reason {
            DenyReason::MissingToken => StatusCode::UNAUTHORIZED,
            DenyReason::InvalidRequest => StatusCode::BAD_REQUEST,
            DenyReason::RoleMissing => StatusCode::FORBIDDEN,
            DenyReason::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The JSON `error` code.
    pub fn code(&self) -> String {
        match self.reason {
            DenyReason::MissingToken => "missing_token".into(),
            DenyReason::InvalidRequest => "invalid_request".into(),
            DenyReason::RoleMissing => format!(
                "{}RoleMissing",
                self.required_role.as_deref().unwrap_or("Admin")
            ),
            DenyReason::KeysUnavailable => "temporarily_unavailable".into(),
            _ => "invalid_token".into(),
        }
    }

    fn challenge(&self) -> Option<String> {
        let with = |code: &str| {
            format!(
                "Bearer error=\"{code}\", error_description=\"{}\"",
                self.description
            )
        };
        match self.reason {
            DenyReason::MissingToken => Some("Bearer".into()),
            DenyReason::InvalidRequest => Some(with("invalid_request")),
            DenyReason::RoleMissing => Some(with("insufficient_scope")),
            DenyReason::KeysUnavailable => None,
            _ => Some(with("invalid_token")),
        }
    }
}

impl AuthError {
    /// The RFC 6750 response: status, challenge, JSON body (and `Retry-After` while keys are
    /// unavailable).
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let mut response = json_error(self.status(), &self.code(), &self.description);
        let headers = response.headers_mut();
        if let Some(challenge) = self.challenge()
            && let Ok(value) = HeaderValue::from_str(&challenge)
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if self.reason == DenyReason::KeysUnavailable {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(KEYS_RETRY_AFTER_SECS),
            );
        }
        response
    }
}

/// For axum apps that return an `AuthError` from a handler.
impl IntoResponse for AuthError {
    fn into_response(self) -> axum::response::Response {
        self.to_response()
    }
}
