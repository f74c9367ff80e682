//! Authentication and authorization as a tower layer, usable in front of any service (the
//! gateway's proxy, or another axum/hyper app: see `examples/protect_axum_app.rs`).
//!
//! Built on tower-http's `AsyncRequireAuthorization`: [`Authorize`] decides each request with
//! the [`Authenticator`] and either lets it through, carrying the verified token in its
//! extensions (`Arc<VerifiedToken>`, and the matched rule as [`MatchedRoute`]), or answers it with the RFC 6750 response.
//!
//! No body byte is read before the token is accepted (so `Expect: 100-continue` uploads are
//! refused before they are sent), except for an urlencoded form: RFC 6750 §2.2 form tokens
//! are refused, and a token in a form as well as in the header is "more than one method"
//! (§3.1), so a form (at most 1 MiB) is read to look for one.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use tower::Layer;
use tower_http::auth::{AsyncAuthorizeRequest, AsyncRequireAuthorization};

use super::dpop::RequestTarget;
use super::policy::MatchedRoute;
use super::validate::VerifiedToken;
use super::{AuthError, Authenticator, DenyReason, extract};
use crate::http::exchange::{PeerAddr, Principal, Refusal, exchange};
use crate::http::path::NormalizedPath;
use crate::http::request_error::RequestError;

/// Largest urlencoded form read to look for a token in it.
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// The request body after authorization: the client's stream, or a form read to check it.
pub type AuthorizedBody<B> = Either<B, Full<Bytes>>;

/// Protects the inner service: only requests the route policy allows reach it.
///
/// `R` is the inner service's response body; refusals are written into it (`From<Bytes>`).
#[derive(Debug)]
pub struct AuthLayer<R> {
    authenticator: Arc<Authenticator>,
    _body: PhantomData<fn() -> R>,
}

impl<R> AuthLayer<R> {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self {
            authenticator,
            _body: PhantomData,
        }
    }
}

impl<R> Clone for AuthLayer<R> {
    fn clone(&self) -> Self {
        Self::new(self.authenticator.clone())
    }
}

impl<S, R> Layer<S> for AuthLayer<R> {
    type Service = AsyncRequireAuthorization<S, Authorize<R>>;

    fn layer(&self, inner: S) -> Self::Service {
        AsyncRequireAuthorization::new(inner, Authorize::new(self.authenticator.clone()))
    }
}

/// The authorization decision for tower-http's `AsyncRequireAuthorization`.
#[derive(Debug)]
pub struct Authorize<R> {
    authenticator: Arc<Authenticator>,
    _body: PhantomData<fn() -> R>,
}

impl<R> Authorize<R> {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self {
            authenticator,
            _body: PhantomData,
        }
    }
}

impl<R> Clone for Authorize<R> {
    fn clone(&self) -> Self {
        Self::new(self.authenticator.clone())
    }
}

impl<B, R> AsyncAuthorizeRequest<B> for Authorize<R>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    R: From<Bytes> + Send + 'static,
{
    type RequestBody = AuthorizedBody<B>;
    type ResponseBody = R;
    type Future =
        Pin<Box<dyn Future<Output = Result<Request<AuthorizedBody<B>>, Response<R>>> + Send>>;

    fn authorize(&mut self, request: Request<B>) -> Self::Future {
        Box::pin(authorize(self.authenticator.clone(), request))
    }
}

async fn authorize<B, R>(
    authenticator: Arc<Authenticator>,
    request: Request<B>,
) -> Result<Request<AuthorizedBody<B>>, Response<R>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    R: From<Bytes>,
{
    let exchange = exchange(&request).cloned();
    let refuse = |e: AuthError| {
        if let Some(exchange) = &exchange {
            exchange.set_deny_reason(e.reason.label());
            if let Some(denied) = &e.denied {
                exchange.set_refusal(Refusal {
                    client_id: denied.client_id.clone(),
                    missing_scopes: denied.missing_scopes.clone(),
                });
            }
            if let Some(dpop) = &e.dpop {
                exchange.set_dpop(dpop.jkt.as_deref(), dpop.failed_check);
            }
        }
        e.to_response()
    };
    let parsed;
    let path = match request.extensions().get::<NormalizedPath>() {
        Some(path) => path,
        None => {
            parsed = NormalizedPath::parse(request.uri().path())
                .map_err(|e| RequestError::BadRequest(e.to_string()).to_response())?;
            &parsed
        }
    };
    let target = RequestTarget {
        method: request.method(),
        uri: request.uri(),
        headers: request.headers(),
        peer: request.extensions().get::<PeerAddr>().map(|p| p.0.ip()),
    };
    let decision = authenticator.authorize(&target, path).await;
    if let Some(exchange) = &exchange {
        exchange.set_route(authenticator.route_series(decision.route).clone());
    }
    let matched = MatchedRoute {
        index: decision.route.index,
        name: decision.route.name.clone(),
    };
    let is_form = is_urlencoded_form(request.headers());
    let (mut parts, body) = request.into_parts();
    authenticator
        .dpop()
        .rewrite_for_upstream(&mut parts.headers, decision.proof_jkt.is_some());
    if let (Some(exchange), Some(jkt)) = (&exchange, &decision.proof_jkt) {
        exchange.set_dpop(Some(jkt), None);
    }
    match decision.result {
        Ok(principal) => {
            let body = if is_form {
                let form = read_form(body).await.map_err(|e| e.to_response())?;
                if extract::carries_token_parameter(&form) {
                    return Err(refuse(token_in_body()));
                }
                Either::Right(Full::new(form))
            } else {
                Either::Left(body)
            };
            if let Some(principal) = principal {
                if let Some(exchange) = &exchange {
                    exchange.set_principal(principal.clone());
                }
                parts.extensions.insert(principal);
            }
            parts.extensions.insert(matched);
            Ok(Request::from_parts(parts, body))
        }
        Err(e) if e.reason == DenyReason::MissingToken && is_form => {
            let form = read_form(body).await.map_err(|e| e.to_response())?;
            Err(refuse(if extract::carries_token_parameter(&form) {
                token_in_body()
            } else {
                e
            }))
        }
        Err(e) => Err(refuse(e)),
    }
}

impl Principal for VerifiedToken {
    fn client_id(&self) -> Option<&str> {
        VerifiedToken::client_id(self)
    }

    fn subject(&self) -> &str {
        &self.subject
    }

    fn roles(&self) -> Vec<&str> {
        self.access.role_names()
    }

    fn granted_by(&self) -> Option<String> {
        self.access.mapped_roles()
    }
}

fn token_in_body() -> AuthError {
    AuthError::new(
        DenyReason::InvalidRequest,
        "access tokens are accepted only in the Authorization header, not in the request body",
    )
}

fn is_urlencoded_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

async fn read_form<B>(body: B) -> Result<Bytes, RequestError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, MAX_FORM_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => {
            Err(RequestError::BodyTooLarge(MAX_FORM_BYTES as u64))
        }
        Err(_) => Err(RequestError::ClientAborted),
    }
}

/// The verified token of a request the [`AuthLayer`] let through (`None` on anonymous routes).
pub fn verified_token<B>(request: &Request<B>) -> Option<&Arc<VerifiedToken>> {
    request.extensions().get::<Arc<VerifiedToken>>()
}
