//! The gateway's one handler: request checks -> auth -> proxy, then one access-log event and
//! the request metrics when the response body ends (or the client goes away).
//!
//! Checks before any token work: the method (TRACE/CONNECT and non-standard methods: 405),
//! exactly one `Host` (400), an unambiguous path (400), a declared body within the limit (413).
//! The body is not touched before the token is accepted, so `Expect: 100-continue` uploads are
//! refused before they are sent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, header};
use http_body_util::BodyExt;

use crate::auth::path::NormalizedPath;
use crate::auth::validate::VerifiedToken;
use crate::auth::{AuthError, Authenticator, DenyReason, extract};
use crate::metrics::{KindLabels, Metrics, RequestLabels, RouteLabels};
use crate::proxy::body::{RequestBody, ResponseBody};
use crate::proxy::headers::{self, ClientInfo};
use crate::proxy::{ProxyError, Upstream};

/// Largest urlencoded form read to look for a token in it (RFC 6750 §2.2 is refused).
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// Everything the handler needs, built once at start-up.
#[derive(Debug)]
pub struct AppState {
    pub auth: Arc<Authenticator>,
    pub upstream: Upstream,
    pub metrics: Arc<Metrics>,
    pub limits: RequestLimits,
}

/// Per-request limits and forwarding settings from `Gateway__*`.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    pub max_body: Option<u64>,
    pub body_idle_timeout: Duration,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub forward_authorization: bool,
}

/// What the access log and metrics record about one exchange.
struct Exchange {
    started: Instant,
    request_id: String,
    method: &'static str,
    path: String,
    query: Option<String>,
    route: Arc<str>,
    principal: Option<Arc<VerifiedToken>>,
    deny_reason: Option<&'static str>,
    upstream: Option<Duration>,
    bytes_in: Arc<AtomicU64>,
}

/// Checks, authorizes and forwards one request; every outcome is a response. `request_id` is
/// the id [`crate::front`] settled on (also in the request's `X-Request-Id`).
pub async fn handle(
    state: &AppState,
    peer: SocketAddr,
    request_id: &str,
    request: Request<Body>,
) -> Response {
    state.metrics.inflight.inc();
    let mut exchange = Exchange {
        started: Instant::now(),
        request_id: request_id.to_owned(),
        method: method_label(request.method()),
        path: "-".to_owned(),
        query: request.uri().query().map(redact_query),
        route: crate::auth::policy::FALLBACK.name.clone(),
        principal: None,
        deny_reason: None,
        upstream: None,
        bytes_in: Arc::new(AtomicU64::new(0)),
    };
    let response = match forward(state, peer, request, &mut exchange).await {
        Ok(response) => response,
        Err(Rejection::Auth(e)) => {
            exchange.deny_reason = Some(e.reason.label());
            e.into_response()
        }
        Err(Rejection::Proxy(e)) => {
            if let Some(kind) = e.upstream_kind() {
                state
                    .metrics
                    .upstream_errors
                    .get_or_create(&KindLabels { kind })
                    .inc();
                tracing::warn!(request_id = %exchange.request_id, error = %e, "upstream exchange failed");
            }
            e.into_response()
        }
    };
    finish(&state.metrics, response, exchange)
}

enum Rejection {
    Auth(AuthError),
    Proxy(ProxyError),
}

impl From<AuthError> for Rejection {
    fn from(e: AuthError) -> Self {
        Self::Auth(e)
    }
}

impl From<ProxyError> for Rejection {
    fn from(e: ProxyError) -> Self {
        Self::Proxy(e)
    }
}

async fn forward(
    state: &AppState,
    peer: SocketAddr,
    request: Request<Body>,
    exchange: &mut Exchange,
) -> Result<Response, Rejection> {
    let (mut parts, body) = request.into_parts();
    check_method(&parts.method)?;
    check_host(&parts.headers, parts.uri.authority().is_some())?;
    let path = NormalizedPath::parse(parts.uri.path())
        .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
    exchange.path = path.as_str().to_owned();
    let query = parts.uri.query();

    let decision = state
        .auth
        .authorize(&parts.method, &path, query, &parts.headers)
        .await;
    exchange.route = decision.route.name.clone();
    let is_form = is_urlencoded_form(&parts.headers);
    let mut body = body;
    match decision.result {
        Ok(principal) => {
            exchange.principal = principal;
            if is_form {
                // A second token in the form body is "more than one method" (RFC 6750 §3.1).
                let form = read_form(body).await?;
                if extract::carries_token_parameter(&form) {
                    return Err(token_in_body().into());
                }
                body = Body::from(form);
            }
        }
        Err(e) if e.reason == DenyReason::MissingToken && is_form => {
            let form = read_form(body).await?;
            return Err(if extract::carries_token_parameter(&form) {
                token_in_body()
            } else {
                e
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    }

    if let (Some(limit), Some(declared)) = (state.limits.max_body, content_length(&parts.headers))
        && declared > limit
    {
        return Err(ProxyError::BodyTooLarge(limit).into());
    }

    let client = ClientInfo {
        peer: peer.ip(),
        trusted: state
            .limits
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer.ip())),
    };
    headers::rewrite_request(
        &mut parts.headers,
        client,
        state.limits.forward_authorization,
    );
    parts.uri = state.upstream.target(&path, query)?;
    let body = Body::new(RequestBody::new(
        body,
        state.limits.max_body,
        state.limits.body_idle_timeout,
        exchange.bytes_in.clone(),
    ));
    let request = Request::from_parts(parts, body);

    let sent = Instant::now();
    let result = state.upstream.send(request).await;
    let upstream_time = sent.elapsed();
    exchange.upstream = Some(upstream_time);
    state
        .metrics
        .upstream_duration
        .get_or_create(&RouteLabels {
            method: exchange.method,
            route: exchange.route.clone(),
        })
        .observe(upstream_time.as_secs_f64());
    Ok(result?.map(Body::new))
}

fn token_in_body() -> AuthError {
    AuthError::new(
        DenyReason::InvalidRequest,
        "access tokens are accepted only in the Authorization header, not in the request body",
    )
}

fn check_method(method: &Method) -> Result<(), ProxyError> {
    match *method {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::OPTIONS => Ok(()),
        _ => Err(ProxyError::MethodNotAllowed(crate::auth::error::sanitize(
            method.as_str(),
        ))),
    }
}

fn check_host(headers: &HeaderMap, has_authority: bool) -> Result<(), ProxyError> {
    match headers.get_all(header::HOST).iter().count() {
        0 if !has_authority => Err(ProxyError::BadRequest(
            "the request has no Host header".into(),
        )),
        0 | 1 => Ok(()),
        _ => Err(ProxyError::BadRequest(
            "the request has more than one Host header".into(),
        )),
    }
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

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

async fn read_form(body: Body) -> Result<Bytes, ProxyError> {
    let limited = http_body_util::Limited::new(body, MAX_FORM_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ProxyError::BodyTooLarge(MAX_FORM_BYTES as u64))
        }
        Err(_) => Err(ProxyError::ClientAborted),
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Query parameter names whose values never reach a log.
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "key",
        "code",
        "signature",
        "sig",
        "auth",
        "credential",
        "assertion",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// The query for the access log, with secret-looking values replaced by `***`.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
        .chars()
        .take(512)
        .collect()
}

/// Records the request metrics now and the access log when the response body ends.
fn finish(metrics: &Arc<Metrics>, response: Response, exchange: Exchange) -> Response {
    let status = response.status().as_u16();
    let elapsed = exchange.started.elapsed();
    metrics
        .request_duration
        .get_or_create(&RouteLabels {
            method: exchange.method,
            route: exchange.route.clone(),
        })
        .observe(elapsed.as_secs_f64());
    let metrics = metrics.clone();
    let (parts, body) = response.into_parts();
    let body = ResponseBody::new(body, move |bytes_out| {
        metrics.inflight.dec();
        metrics
            .requests
            .get_or_create(&RequestLabels {
                method: exchange.method,
                route: exchange.route.clone(),
                status,
            })
            .inc();
        let bytes_in = exchange.bytes_in.load(Ordering::Relaxed);
        metrics.bytes_in.inc_by(bytes_in);
        metrics.bytes_out.inc_by(bytes_out);
        let principal = exchange.principal.as_deref();
        tracing::info!(
            target: "halo_gateway::access",
            request_id = %exchange.request_id,
            method = exchange.method,
            path = %exchange.path,
            query = exchange.query.as_deref().unwrap_or(""),
            route = %exchange.route,
            status,
            duration_ms = exchange.started.elapsed().as_secs_f64() * 1000.0,
            upstream_ms = exchange.upstream.map(|d| d.as_secs_f64() * 1000.0),
            bytes_in,
            bytes_out,
            client_id = principal.and_then(|p| p.client_id.as_deref()),
            sub = principal.map(|p| p.subject.as_str()),
            role = principal.map(|p| p.roles.join(",")),
            deny_reason = exchange.deny_reason,
            "request"
        );
    });
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_query_values_are_redacted() {
        assert_eq!(
            redact_query("a=1&access_token=xyz&client_secret=s&Api-Key=k"),
            "a=1&access_token=***&client_secret=***&Api-Key=***"
        );
        assert_eq!(redact_query("page=2"), "page=2");
    }
}
