//! The proxy as a tower `Service`, the innermost of the public stack: rewrite the headers for
//! Halo, send, and hand Halo's streaming response back; a failure becomes the JSON error whose
//! status says whose fault it was, counted by kind and logged with the request id.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use ipnet::IpNet;
use tower::Service;

use super::headers::{self, ClientInfo, X_REQUEST_ID};
use super::{ProxyError, Upstream};
use crate::http::body::ResponseBody;
use crate::http::exchange::{Exchange, PeerAddr, method_label};
use crate::http::path::NormalizedPath;
use crate::http::request_error::RequestError;
use crate::metrics::{KindLabels, Metrics};
use crate::telemetry::spans;

/// Forwarding settings from `Gateway__*`.
#[derive(Debug, Clone, Default)]
pub struct ForwardingOptions {
    /// Peers whose `X-Forwarded-*`/`Forwarded` headers are kept (`Gateway__TrustedProxies`).
    pub trusted_proxies: Vec<IpNet>,
    /// Keep `Authorization` on the forwarded request (`Gateway__ForwardAuthorization`).
    pub forward_authorization: bool,
}

/// Forwards requests to one [`Upstream`].
///
/// Each request's future owns a clone of the service; one `Arc` keeps that clone to a single
/// count increment (the hyper client alone is several `Arc`s and a builder).
#[derive(Debug)]
pub struct ProxyService<B>(Arc<Forwarder<B>>);

#[derive(Debug)]
struct Forwarder<B> {
    upstream: Upstream<B>,
    options: Arc<ForwardingOptions>,
    metrics: Arc<Metrics>,
}

impl<B> Clone for ProxyService<B> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<B> ProxyService<B> {
    pub fn new(
        upstream: Upstream<B>,
        options: Arc<ForwardingOptions>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self(Arc::new(Forwarder {
            upstream,
            options,
            metrics,
        }))
    }
}

impl<B> Service<Request<B>> for ProxyService<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let this = Arc::clone(&self.0);
        Box::pin(async move {
            let request_id = request.headers().get(X_REQUEST_ID).cloned();
            match this.forward(request).await {
                Ok(response) => Ok(response.map(ResponseBody::Upstream)),
                Err(e) => {
                    if let Some(kind) = e.upstream_kind() {
                        this.metrics
                            .upstream_errors
                            .get_or_create(&KindLabels { kind })
                            .inc();
                        let id = request_id.as_ref().and_then(|id| id.to_str().ok());
                        tracing::warn!(request_id = id.unwrap_or("-"), error = %e, "upstream exchange failed");
                    }
                    Ok(e.to_response())
                }
            }
        })
    }
}

impl<B> Forwarder<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    async fn forward(
        &self,
        request: Request<B>,
    ) -> Result<Response<super::early::RelayedBody>, ProxyError> {
        let (mut parts, body) = request.into_parts();
        let target = match parts.extensions.get::<NormalizedPath>() {
            Some(path) => self.upstream.target(path, &parts.uri)?,
            None => {
                let path = NormalizedPath::parse(parts.uri.path())
                    .map_err(|e| RequestError::BadRequest(e.to_string()))?;
                self.upstream.target(&path, &parts.uri)?
            }
        };
        let peer = parts
            .extensions
            .get::<PeerAddr>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.ip());
        let client = ClientInfo {
            peer,
            trusted: self
                .options
                .trusted_proxies
                .iter()
                .any(|net| net.contains(&peer)),
        };
        headers::rewrite_request(
            &mut parts.headers,
            client,
            self.options.forward_authorization,
        );
        parts.uri = target;
        let exchange = exchange_of(&parts).cloned();
        let method = method_label(&parts.method);
        // A child of the request's server span; Halo continues the trace under it.
        let span = spans::upstream_span(method, &parts.uri);
        spans::inject(&span, &mut parts.headers);
        let sent = Instant::now();
        let result = self.upstream.send(Request::from_parts(parts, body)).await;
        let upstream_time = sent.elapsed();
        spans::record_upstream(
            &span,
            match &result {
                Ok(response) => Ok(response.status().as_u16()),
                Err(e) => Err(e.upstream_kind().unwrap_or("request_body")),
            },
        );
        drop(span);
        if let Some(exchange) = &exchange {
            exchange.set_upstream_time(upstream_time);
        }
        exchange
            .as_ref()
            .and_then(|e| e.route_series())
            .unwrap_or_else(|| self.metrics.unmatched())
            .observe_upstream_duration(method, upstream_time.as_secs_f64());
        result
    }
}

fn exchange_of(parts: &http::request::Parts) -> Option<&Arc<Exchange>> {
    parts.extensions.get()
}
