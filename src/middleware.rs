//! The one place that orders the public listener's tower layers (outermost first):
//!
//! 1. mark `Authorization`/`Cookie`/`Proxy-Authorization` sensitive, before anything could
//!    log or debug-print a header map;
//! 2. drop an incoming `X-Request-Id` that is too long or not visible ASCII, so a client
//!    cannot inject log lines;
//! 3. keep the client's request id or make a UUID, before tracing so the span carries it;
//! 4. copy the request id onto the response;
//! 5. a trace span per request with the id (the access log itself is written by the handler);
//! 6. the handler: checks, auth, proxy.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::map_request;
use http::header;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::handler::{AppState, handle};
use crate::proxy::headers::X_REQUEST_ID;

/// Longest client-supplied request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The public application: every path and method goes to [`handle`].
pub fn public_app(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state).layer(
        ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
                header::COOKIE,
                header::PROXY_AUTHORIZATION,
            ]))
            .layer(map_request(drop_unsafe_request_id))
            .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|request: &Request| {
                        let id = request
                            .headers()
                            .get(X_REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("request", request_id = %id)
                    })
                    .on_request(())
                    .on_response(())
                    .on_body_chunk(())
                    .on_eos(())
                    .on_failure(()),
            ),
    )
}

async fn drop_unsafe_request_id(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let ids = headers.get_all(X_REQUEST_ID).iter().count();
    let safe = ids == 1
        && headers.get(X_REQUEST_ID).is_some_and(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.as_bytes().iter().all(u8::is_ascii_graphic)
        });
    if ids > 0 && !safe {
        headers.remove(X_REQUEST_ID);
    }
    request
}
