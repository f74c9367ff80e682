//! The public request path, ordered in one place: [`public_stack`].
//!
//! ```text
//! sensitive headers ► request id ► span ► access log (+ server span) ► per-IP limit
//!   ► request checks ► auth (+ token validation span)
//!   ► per-client limits ► body limit ► proxy (+ upstream client span, `traceparent`)
//! ```
//!
//! Each concern is a tower layer of its own; the response streams back out through the same
//! layers (the access log is written when its body ends).

pub(crate) mod access_log;
pub(crate) mod body_limit;
pub(crate) mod checks;
pub(crate) mod client_limit;
pub(crate) mod connection;
pub(crate) mod ip_limit;
pub(crate) mod request_id;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body::Body;
use hyper::body::Incoming;
use tower::{Service, ServiceBuilder};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

pub use self::connection::{SharedStack, connection_service};

use self::access_log::AccessLogLayer;
use self::body_limit::BodyLimitLayer;
use self::checks::RequestChecksLayer;
use self::client_limit::ClientLimitLayer;
use self::ip_limit::IpLimitLayer;
use crate::auth::dpop::proof::DPOP;
use crate::auth::layer::AuthorizedBody;
use crate::auth::{AuthLayer, Authenticator};
use crate::http::body::ResponseBody;
use crate::http::request_body::RequestBody;
use crate::metrics::Metrics;
use crate::proxy::{ForwardingOptions, ProxyService, Upstream};
use crate::ratelimit::Limits;
use crate::ratelimit::concurrency::SlotBody;

/// The request body as the proxy forwards it, for a client body `B` (hyper's `Incoming` on
/// the listener; any body in in-process tests).
pub type UpstreamBody<B = Incoming> = RequestBody<AuthorizedBody<B>>;

/// What the stack's layers need, built once at start-up and shared by every worker.
#[derive(Debug, Clone)]
pub struct StackSettings {
    pub authenticator: Arc<Authenticator>,
    pub metrics: Arc<Metrics>,
    pub forwarding: Arc<ForwardingOptions>,
    /// `Gateway__MaxRequestBodySize`; `None`: unlimited.
    pub max_body: Option<u64>,
    /// `Gateway__BodyIdleTimeout`.
    pub body_idle_timeout: Duration,
    /// Rate and concurrency limits (`Limits::none` for none).
    pub limits: Arc<Limits>,
}

/// The whole public request path, outermost layer first.
pub fn public_stack<B>(
    settings: &StackSettings,
    upstream: Upstream<UpstreamBody<B>>,
) -> impl Service<
    Request<B>,
    Response = Response<impl Body<Data = Bytes, Error = hyper::Error> + Send + 'static>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    ServiceBuilder::new()
        // First, so nothing below can log or debug-print a credential.
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
            header::PROXY_AUTHORIZATION,
            DPOP,
        ]))
        // Request id before the span and the access log, which both carry it: the client's
        // id when it is safe, else a UUID; echoed on the response.
        .map_request(request_id::drop_unsafe_request_id)
        .layer(SetRequestIdLayer::x_request_id(request_id::MakeUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        // A debug-level span per request (the access log names the id itself).
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(())
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
        // Outside every refusal, so each exchange is logged and counted once; with trace
        // export on, also the OpenTelemetry server span every inner layer's span belongs to.
        .layer(AccessLogLayer::new(settings.metrics.clone()))
        // Before any other work, so every request from an address counts (token spraying too).
        .layer(IpLimitLayer::new(
            settings.limits.clone(),
            &settings.forwarding.trusted_proxies,
        ))
        // Cheap checks before any token work; normalizes the path once.
        .layer(RequestChecksLayer)
        // Token, route policy and role; nothing of the body is read before this passes.
        .layer(AuthLayer::<SlotBody<ResponseBody>>::new(
            settings.authenticator.clone(),
        ))
        // After auth: keyed on the verified client and matched rule, so 401/403 never count.
        .layer(ClientLimitLayer::new(settings.limits.clone()))
        // After auth, so a token-less oversize upload gets 401, not 413.
        .layer(BodyLimitLayer::new(
            settings.max_body,
            settings.body_idle_timeout,
        ))
        .service(ProxyService::new(
            upstream,
            settings.forwarding.clone(),
            settings.metrics.clone(),
        ))
}

fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get(crate::proxy::headers::X_REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or("-");
    tracing::debug_span!("request", request_id = id)
}
