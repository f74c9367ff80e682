//! Access log and request metrics: one `halo_gateway::access` event per exchange, written when
//! the response body has been sent in full, or when the client goes away (status 499 if that
//! happens before the response head). The in-flight gauge covers the same span.
//!
//! With trace export on, this layer also starts the request's OpenTelemetry server span (the
//! parent of every span the inner layers start), ends it with the access-log line and writes
//! its trace id into that line.
//!
//! Inner layers record what they learn (route, path, principal, deny reason and what a refused
//! token lacked, refusing limit, upstream time, bytes in) into the request's [`Exchange`]; this
//! layer reads it at the end.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};
use tracing::instrument::{Instrument as _, Instrumented};

use crate::http::exchange::{Exchange, PeerAddr, method_label};
use crate::metrics::{Metrics, RouteSeries};
use crate::proxy::headers::X_REQUEST_ID;
use crate::telemetry::spans::{self, ServerRequest, ServerResponse};

/// Status logged for an exchange the client abandoned before the response head (nginx's 499).
const CLIENT_CLOSED_REQUEST: u16 = 499;
/// Longest query kept in a log line.
const MAX_LOGGED_QUERY: usize = 512;

/// Applies [`AccessLog`].
#[derive(Debug, Clone)]
pub struct AccessLogLayer {
    metrics: Arc<Metrics>,
}

impl AccessLogLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// Records one exchange.
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<R>, Error = Infallible>,
{
    type Response = Response<LoggedBody<R>>;
    type Error = Infallible;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        self.metrics.inflight.inc();
        let exchange = Arc::new(Exchange::default());
        request.extensions_mut().insert(exchange.clone());
        let request_id = request.headers().get(X_REQUEST_ID).cloned();
        let method = method_label(request.method());
        let trace = spans::server_trace(
            &ServerRequest {
                method,
                peer: request.extensions().get::<PeerAddr>().map(|p| p.0),
                request_id: request_id.as_ref().and_then(|id| id.to_str().ok()),
            },
            request.headers_mut(),
        );
        let span = trace.span();
        let record = Record {
            started: Instant::now(),
            request_id,
            method,
            query: request.uri().query().map(redact_query),
            exchange,
            metrics: self.metrics.clone(),
            status: CLIENT_CLOSED_REQUEST,
            bytes_out: 0,
            trace,
        };
        // Inner layers start their spans as children of the server span, in `call` and when
        // polled.
        let inner = span.in_scope(|| self.inner.call(request));
        AccessLogFuture {
            inner: inner.instrument(span),
            record: Some(record),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`AccessLog`].
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        record: Option<Record>,
    }
}

impl<F, R> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<R>, Infallible>>,
{
    type Output = Result<Response<LoggedBody<R>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.inner.poll(cx));
        let mut record = this.record.take();
        if let Some(record) = &mut record {
            record.status = response.status().as_u16();
            record.observe_head();
        }
        Poll::Ready(Ok(response.map(|body| LoggedBody {
            inner: body,
            record,
        })))
    }
}

/// What is known about an exchange from its start; logged once, when dropped.
struct Record {
    started: Instant,
    request_id: Option<HeaderValue>,
    method: &'static str,
    query: Option<String>,
    exchange: Arc<Exchange>,
    metrics: Arc<Metrics>,
    status: u16,
    bytes_out: u64,
    /// How the request is traced; a sampled request's server span ends when the record is
    /// dropped, with the access-log line.
    trace: spans::ServerTrace,
}

impl Record {
    /// The matched route's series, or `route="other"`'s.
    fn series(&self) -> &RouteSeries {
        self.exchange
            .route_series()
            .unwrap_or_else(|| self.metrics.unmatched())
    }

    /// Time to the response head.
    fn observe_head(&self) {
        self.series()
            .observe_request_duration(self.method, self.started.elapsed().as_secs_f64());
    }

    fn finish(&self) {
        let bytes_out = self.bytes_out;
        let metrics = &self.metrics;
        let series = self.series();
        let route = series.route();
        metrics.inflight.dec();
        series.count_request(self.method, self.status);
        let exchange = &self.exchange;
        let bytes_in = exchange.bytes_in();
        metrics.bytes_in.inc_by(bytes_in);
        metrics.bytes_out.inc_by(bytes_out);
        let principal = exchange.principal();
        let refusal = exchange.refusal();
        spans::finish_server_span(
            &self.trace,
            &ServerResponse {
                method: self.method,
                route,
                path: exchange.path(),
                status: self.status,
            },
        );
        tracing::info!(
            target: "halo_gateway::access",
            request_id = self.request_id.as_ref().and_then(|id| id.to_str().ok()).unwrap_or("-"),
            // Inside the event, so the id is only formatted when the access log is on.
            trace_id = spans::trace_id(&self.trace).as_deref(),
            method = self.method,
            path = exchange.path().unwrap_or("-"),
            query = self.query.as_deref().unwrap_or(""),
            route = %route,
            status = self.status,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            upstream_ms = exchange.upstream_time().map(|d| d.as_secs_f64() * 1000.0),
            bytes_in,
            bytes_out,
            client_id = principal
                .and_then(|p| p.client_id())
                .or_else(|| refusal.and_then(|r| r.client_id.as_deref())),
            sub = principal.map(|p| p.subject()),
            role = principal.map(|p| p.roles().join(",")),
            granted_by = principal.and_then(|p| p.granted_by()),
            deny_reason = exchange.deny_reason(),
            missing_scopes = refusal
                .filter(|r| !r.missing_scopes.is_empty())
                .map(|r| r.missing_scopes.join(" ")),
            dpop_check = exchange.dpop_failed_check(),
            dpop_jkt = exchange.dpop_jkt(),
            limit = exchange.limited_by(),
            "request"
        );
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A response body that counts what it sends and logs the exchange when it is dropped
/// (finished, or abandoned by the client).
pub struct LoggedBody<B> {
    inner: B,
    /// `None` only if the response future was polled again after completing.
    record: Option<Record>,
}

impl<B> Body for LoggedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
            && let Some(record) = &mut this.record
        {
            record.bytes_out += data.len() as u64;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
        .take(MAX_LOGGED_QUERY)
        .collect()
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
