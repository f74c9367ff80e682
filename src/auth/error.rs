//! Authentication failures and their one mapping to HTTP (RFC 6750 §3).
//!
//! | failure                               | status | `WWW-Authenticate`                          |
//! |---------------------------------------|--------|---------------------------------------------|
//! | no bearer token                       | 401    | `Bearer` (no error code, §3.1)              |
//! | token present but invalid             | 401    | `Bearer error="invalid_token", ...`         |
//! | token in query/body, two headers, ... | 400    | `Bearer error="invalid_request", ...`       |
//! | valid token, client not allowed       | 403    | `Bearer error="insufficient_scope", ...`    |
//! | valid token, a required scope missing | 403    | `... error="insufficient_scope", scope=...` |
//! | valid token, role missing             | 403    | `Bearer error="insufficient_scope", ...`    |
//! | no signing keys loaded yet            | 503    | none; `Retry-After`                         |
//!
//! Under DPoP (RFC 9449 §7.1) the same failures carry a `DPoP ... algs="..."` challenge
//! instead ([`Challenge`]); proof failures are `invalid_dpop_proof`, a missing or stale
//! server nonce is `use_dpop_nonce` with a fresh `DPoP-Nonce` (§9), and an unavailable replay
//! cache is 503 with `Retry-After`.
//!
//! Descriptions never contain the token, and are sanitized to printable ASCII so they are
//! always valid header values whatever bytes a token carried.

use std::sync::Arc;

use axum::response::IntoResponse;
use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderValue, Response, StatusCode, header};

use crate::http::response::json_error;
use crate::http::text::{quote, sanitize};

/// The server nonce header (RFC 9449 §8.1).
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

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
    ClientNotAllowed,
    InsufficientScope,
    /// A role other than `Admin`.
    RoleMissing,
    AdminRoleMissing,
    KeysUnavailable,
    /// A DPoP proof is missing or fails a check of RFC 9449 §4.3.
    InvalidDpopProof,
    /// A DPoP proof was seen before (RFC 9449 §11.1).
    DpopReplay,
    /// The token is not bound to the proof's key (`cnf.jkt`, RFC 9449 §6).
    DpopKeyMismatch,
    /// The proof lacks the current server nonce (RFC 9449 §9).
    UseDpopNonce,
    /// `DPoP` mode `Required` and a plain bearer token.
    DpopRequired,
    /// The replay cache cannot take the proof (full, or Redis failing): retry later.
    ReplayCacheUnavailable,
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
            Self::ClientNotAllowed => "client_not_allowed",
            Self::InsufficientScope => "insufficient_scope",
            Self::RoleMissing => "role_missing",
            Self::AdminRoleMissing => "admin_role_missing",
            Self::KeysUnavailable => "keys_unavailable",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::DpopReplay => "dpop_replay",
            Self::DpopKeyMismatch => "dpop_key_mismatch",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::DpopRequired => "dpop_required",
            Self::ReplayCacheUnavailable => "replay_cache_unavailable",
        }
    }

    /// A valid token that this route does not accept (403).
    pub fn is_forbidden(self) -> bool {
        matches!(
            self,
            Self::ClientNotAllowed
                | Self::InsufficientScope
                | Self::RoleMissing
                | Self::AdminRoleMissing
        )
    }
}

/// What a 403 was about, for the challenge and the access log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessDenied {
    /// The token's client id, if it has one.
    pub client_id: Option<String>,
    /// Every scope the route needs (the challenge's `scope`).
    pub required_scopes: Vec<String>,
    /// The required scopes the token was not granted.
    pub missing_scopes: Vec<String>,
}

/// Which authentication scheme(s) a refusal challenges for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Challenge {
    #[default]
    Bearer,
    /// `DPoP ... algs="<accepted algs>"`.
    DPoP(Arc<str>),
    /// No credentials while both schemes are accepted: `Bearer, DPoP algs="..."`.
    BearerAndDPoP(Arc<str>),
}

/// DPoP details of a refusal: for the response (nonce, retry time) and the access log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DpopDetails {
    /// The proof check that failed (`htu`, `iat`, `signature`, ...).
    pub failed_check: Option<&'static str>,
    /// RFC 7638 thumbprint of the proof's key, once its signature verified.
    pub jkt: Option<String>,
    /// A fresh server nonce for `use_dpop_nonce`.
    pub nonce: Option<String>,
    /// Seconds for `Retry-After` when the replay cache is unavailable.
    pub retry_after: Option<u64>,
}

/// A denied request: the reason and a precise, token-free description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{description}")]
pub struct AuthError {
    pub reason: DenyReason,
    pub description: String,
    /// For `RoleMissing`/`AdminRoleMissing`: the role that was required.
    pub required_role: Option<String>,
    /// For a valid token refused by the route (403): the details.
    pub denied: Option<Box<AccessDenied>>,
    pub challenge: Challenge,
    /// Boxed: most refusals have none, and it keeps `Result<_, AuthError>` small.
    pub dpop: Option<Box<DpopDetails>>,
}

impl AuthError {
    pub fn new(reason: DenyReason, description: impl Into<String>) -> Self {
        Self {
            reason,
            description: sanitize(&description.into()),
            required_role: None,
            denied: None,
            challenge: Challenge::Bearer,
            dpop: None,
        }
    }

    fn forbidden(reason: DenyReason, description: String, denied: AccessDenied) -> Self {
        Self {
            denied: Some(Box::new(denied)),
            ..Self::new(reason, description)
        }
    }

    /// The token's client is not on the route's allow-list (or the token names no client).
    pub fn client_not_allowed(client_id: Option<&str>) -> Self {
        let description = match client_id {
            Some(id) => format!("the client {} is not allowed on this route", quote(id)),
            None => "the token names no client (cid or client_id claim), so it is not allowed on this route".into(),
        };
        Self::forbidden(
            DenyReason::ClientNotAllowed,
            description,
            AccessDenied {
                client_id: client_id.map(str::to_owned),
                ..AccessDenied::default()
            },
        )
    }

    /// RFC 6750 §3.1: the token lacks `missing` of the route's `required` scopes.
    pub fn insufficient_scope(
        required: &[String],
        missing: Vec<String>,
        client_id: Option<&str>,
    ) -> Self {
        Self::forbidden(
            DenyReason::InsufficientScope,
            format!(
                "this route needs the scope(s) {}, which the token was not granted",
                missing.join(" ")
            ),
            AccessDenied {
                client_id: client_id.map(str::to_owned),
                required_scopes: required.to_vec(),
                missing_scopes: missing,
            },
        )
    }

    pub fn role_missing(role: &str, client_id: Option<&str>) -> Self {
        let reason = if role == "Admin" {
            DenyReason::AdminRoleMissing
        } else {
            DenyReason::RoleMissing
        };
        Self {
            required_role: Some(role.to_owned()),
            ..Self::forbidden(
                reason,
                format!("this route needs the '{role}' role, which the token does not carry"),
                AccessDenied {
                    client_id: client_id.map(str::to_owned),
                    ..AccessDenied::default()
                },
            )
        }
    }

    /// The DPoP details, created on first write.
    pub fn dpop_mut(&mut self) -> &mut DpopDetails {
        self.dpop.get_or_insert_with(Box::default)
    }

    /// The same refusal, challenging for `challenge`.
    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = challenge;
        self
    }

    pub fn status(&self) -> StatusCode {
        match self.reason {
            DenyReason::MissingToken => StatusCode::UNAUTHORIZED,
            DenyReason::InvalidRequest => StatusCode::BAD_REQUEST,
            r if r.is_forbidden() => StatusCode::FORBIDDEN,
            DenyReason::KeysUnavailable | DenyReason::ReplayCacheUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The JSON `error` code.
    pub fn code(&self) -> String {
        match self.reason {
            DenyReason::MissingToken => "missing_token".into(),
            DenyReason::InvalidRequest => "invalid_request".into(),
            DenyReason::ClientNotAllowed => "ClientNotAllowed".into(),
            DenyReason::InsufficientScope => "insufficient_scope".into(),
            DenyReason::RoleMissing => "RoleMissing".into(),
            DenyReason::AdminRoleMissing => "AdminRoleMissing".into(),
            DenyReason::KeysUnavailable | DenyReason::ReplayCacheUnavailable => {
                "temporarily_unavailable".into()
            }
            DenyReason::InvalidDpopProof | DenyReason::DpopReplay => "invalid_dpop_proof".into(),
            DenyReason::UseDpopNonce => "use_dpop_nonce".into(),
            _ => "invalid_token".into(),
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3, RFC 9449 §7.1).
    fn challenge_header(&self) -> Option<String> {
        let params = match self.reason {
            DenyReason::MissingToken => None,
            DenyReason::KeysUnavailable | DenyReason::ReplayCacheUnavailable => return None,
            // Scopes are checked scope-tokens (RFC 6749 §3.3), safe in a quoted-string.
            DenyReason::InsufficientScope => Some(format!(
                "error=\"insufficient_scope\", scope=\"{}\", error_description=\"{}\"",
                self.denied
                    .as_deref()
                    .map(|d| d.required_scopes.join(" "))
                    .unwrap_or_default(),
                self.description
            )),
            // No scope= for a client or role refusal: another scope would not help.
            r if r.is_forbidden() => Some(self.error_params("insufficient_scope")),
            _ => Some(self.error_params(&self.code())),
        };
        Some(match (&self.challenge, params) {
            (Challenge::Bearer, None) => "Bearer".into(),
            (Challenge::Bearer, Some(params)) => format!("Bearer {params}"),
            (Challenge::DPoP(algs), None) => format!("DPoP algs=\"{algs}\""),
            (Challenge::DPoP(algs), Some(params)) => format!("DPoP {params}, algs=\"{algs}\""),
            (Challenge::BearerAndDPoP(algs), None) => format!("Bearer, DPoP algs=\"{algs}\""),
            (Challenge::BearerAndDPoP(algs), Some(params)) => {
                format!("Bearer {params}, DPoP algs=\"{algs}\"")
            }
        })
    }

    fn error_params(&self, code: &str) -> String {
        format!(
            "error=\"{code}\", error_description=\"{}\"",
            self.description
        )
    }
}

impl AuthError {
    /// The RFC 6750 response: status, challenge, JSON body (and `Retry-After` while keys are
    /// unavailable).
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let mut response = json_error(self.status(), &self.code(), &self.description);
        let headers = response.headers_mut();
        if let Some(challenge) = self.challenge_header()
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
        let dpop = self.dpop.as_deref();
        if let Some(seconds) = dpop.and_then(|d| d.retry_after) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(nonce) = dpop.and_then(|d| d.nonce.as_deref())
            && let Ok(value) = HeaderValue::from_str(nonce)
        {
            headers.insert(DPOP_NONCE, value);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
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
