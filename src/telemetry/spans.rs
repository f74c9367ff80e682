//! The request's OpenTelemetry spans and W3C trace context (<https://www.w3.org/TR/trace-context/>).
//!
//! Spans use the target [`TARGET`], which only the OTLP layer listens to. Every function here
//! returns `Span::none()` or does nothing while export is off ([`exporting`] is one relaxed
//! atomic load), so the request path does no trace work then.
//!
//! The sampler (`OTEL_TRACES_SAMPLER`) decides each request before any span is built
//! ([`server_trace`]): a request it drops gets no spans at all, only a trace context for the
//! upstream (`traceparent` with the sampled flag off) and its trace id in the access log, so
//! low sampling rates stay cheap. The SDK then records every span it is given.
//!
//! Attribute names follow the HTTP semantic conventions
//! (<https://opentelemetry.io/docs/specs/semconv/http/http-spans/>); the route is the policy
//! rule's name. Never a token, an `Authorization` value or a query string. Numbers are recorded
//! as `i64`: tracing-opentelemetry turns a `u64` into a string.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{HeaderMap, Uri};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanContext, SpanKind, TraceContextExt as _, TraceFlags, TraceId};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    IdGenerator as _, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample as _,
};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The `tracing` target of every span meant for export.
pub const TARGET: &str = "halo_gateway::otel";

/// The W3C trace-context request headers (replaced on the way to the upstream).
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The configured sampler, asked before a request's spans are built.
static SAMPLER: OnceLock<Sampler> = OnceLock::new();

/// Marks trace export as on (once the OTLP layer is installed) with the sampler that decides
/// which requests are traced.
pub(crate) fn set_exporting(sampler: Sampler) {
    let _ = SAMPLER.set(sampler);
    EXPORTING.store(true, Ordering::Relaxed);
}

/// Whether a new span would be built inside one of this module's spans (the current request is
/// sampled), rather than at the top of an unsampled request or outside any request.
fn inside_exported_span() -> bool {
    Span::current()
        .metadata()
        .is_some_and(|span| span.target() == TARGET)
}

/// Whether spans are exported; when not, the request path skips all trace-context work.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The `http.request.method` value and the span-name prefix for a method label: the HTTP
/// semantic conventions spell a non-standard method `_OTHER` and name its spans `HTTP`.
fn semconv_method(label: &'static str) -> (&'static str, &'static str) {
    match label {
        "OTHER" => ("_OTHER", "HTTP"),
        standard => (standard, standard),
    }
}

/// What the server span is started with.
pub struct ServerRequest<'a> {
    /// The method label (a standard method or `OTHER`, exported as `_OTHER`).
    pub method: &'static str,
    pub peer: Option<SocketAddr>,
    pub request_id: Option<&'a str>,
}

/// How one request is traced.
#[derive(Debug, Clone)]
pub enum ServerTrace {
    /// Export is off.
    Off,
    /// Sampled: the server span, inside which the inner layers build their spans.
    Sampled(Span),
    /// Not sampled: no span; the context the upstream gets (the client's trace, or a new one, with
    /// the sampled flag off) and whose trace id the access log shows.
    Unsampled(SpanContext),
}

impl ServerTrace {
    /// The server span (`Span::none()` unless sampled).
    pub fn span(&self) -> Span {
        match self {
            Self::Sampled(span) => span.clone(),
            Self::Off | Self::Unsampled(_) => Span::none(),
        }
    }
}

/// Decides one request with the sampler, continuing the client's trace when the `traceparent`
/// in its `headers` is valid. A sampled request gets its server span; an unsampled one gets its
/// `traceparent` for the upstream rewritten here (the client's trace id or a new one, a span
/// id of its own, not sampled), as the SDK would have sent it. `Off` when export is off.
pub fn server_trace(request: &ServerRequest<'_>, headers: &mut HeaderMap) -> ServerTrace {
    let (true, Some(sampler)) = (exporting(), SAMPLER.get()) else {
        return ServerTrace::Off;
    };
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let parent_span = parent.span().span_context().clone();
    let ids = RandomIdGenerator::default();
    let trace_id = if parent_span.is_valid() {
        parent_span.trace_id()
    } else {
        ids.new_trace_id()
    };
    let (method, name) = semconv_method(request.method);
    let decision = sampler
        .should_sample(
            parent_span.is_valid().then_some(&parent),
            trace_id,
            name,
            &SpanKind::Server,
            &[],
            &[],
        )
        .decision;
    if decision != SamplingDecision::RecordAndSample {
        let context = SpanContext::new(
            trace_id,
            ids.new_span_id(),
            TraceFlags::default(),
            false,
            parent_span.trace_state().clone(),
        );
        replace_trace_headers(&context, headers);
        return ServerTrace::Unsampled(context);
    }
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "request",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = Empty,
        http.response.status_code = Empty,
        url.path = Empty,
        client.address = Empty,
        client.port = Empty,
        halo.request_id = request.request_id,
    );
    if let Some(peer) = request.peer {
        span.record("client.address", peer.ip().to_string());
        span.record("client.port", i64::from(peer.port()));
    }
    if parent_span.is_valid() {
        // Only fails for a span that already started; this one has not been entered yet.
        let _ = span.set_parent(parent);
    }
    ServerTrace::Sampled(span)
}

/// What the server span ends with: the matched rule, the normalized path and the status.
pub struct ServerResponse<'a> {
    pub method: &'static str,
    pub route: &'a str,
    pub path: Option<&'a str>,
    pub status: u16,
}

/// Records how the request ended on its server span and names it `{method} {route}`. A 5xx
/// marks the span as an error (4xx are the client's, per the HTTP semantic conventions).
pub fn finish_server_span(trace: &ServerTrace, response: &ServerResponse<'_>) {
    let ServerTrace::Sampled(span) = trace else {
        return;
    };
    span.record("http.route", response.route);
    if let Some(path) = response.path {
        span.record("url.path", path);
    }
    span.record("http.response.status_code", i64::from(response.status));
    if response.status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    // Children started the span, after which only the OpenTelemetry span itself can rename it.
    let (_, name) = semconv_method(response.method);
    span.context()
        .span()
        .update_name(format!("{name} {}", response.route));
}

/// The request's trace id (32 hex digits) for the access log, sampled or not.
pub fn trace_id(trace: &ServerTrace) -> Option<String> {
    let trace_id: TraceId = match trace {
        ServerTrace::Off => return None,
        ServerTrace::Unsampled(context) => context.trace_id(),
        ServerTrace::Sampled(span) => {
            let context = span.context();
            let span_ref = context.span();
            let span_context = span_ref.span_context();
            if !span_context.is_valid() {
                return None;
            }
            span_context.trace_id()
        }
    };
    Some(trace_id.to_string())
}

/// The child span around token validation (and the route's checks); the outcome is recorded
/// on it by [`record_decision`].
pub fn token_validation_span() -> Span {
    if !exporting() || !inside_exported_span() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "token validation",
        auth.decision = Empty,
        auth.deny_reason = Empty,
    )
}

/// Records an auth decision (`allow`/`deny`) and, for a denial, its reason label.
pub fn record_decision(span: &Span, deny_reason: Option<&'static str>) {
    if span.is_disabled() {
        return;
    }
    span.record(
        "auth.decision",
        if deny_reason.is_some() {
            "deny"
        } else {
            "allow"
        },
    );
    if let Some(reason) = deny_reason {
        span.record("auth.deny_reason", reason);
    }
}

/// The span around one metadata/JWKS fetch: a child of the token validation that needed it,
/// or, for a scheduled refresh or a request that was not sampled, a trace of its own if the
/// sampler takes it as a new trace.
pub fn key_fetch_span() -> Span {
    if !exporting() || !(inside_exported_span() || sample_new_trace("key fetch")) {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "key fetch",
        otel.kind = "client",
        otel.status_code = Empty,
        halo.key_fetch.result = Empty,
    )
}

/// Records a key fetch's result (`success`, `not_modified` or the failure kind).
pub fn record_key_fetch(span: &Span, result: &'static str) {
    if span.is_disabled() {
        return;
    }
    span.record("halo.key_fetch.result", result);
    if !matches!(result, "success" | "not_modified") {
        span.record("otel.status_code", "ERROR");
    }
}

/// The client span of the call to the upstream, named after the method (HTTP semantic
/// conventions for client spans).
pub fn upstream_span(method: &'static str, uri: &Uri) -> Span {
    if !exporting() || !inside_exported_span() {
        return Span::none();
    }
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let (method, name) = semconv_method(method);
    tracing::info_span!(
        target: TARGET,
        "upstream",
        otel.name = name,
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = method,
        server.address = uri.host().unwrap_or_default(),
        server.port = i64::from(uri.port_u16().unwrap_or(default_port)),
        url.path = uri.path(),
        http.response.status_code = Empty,
        "error.type" = Empty,
    )
}

/// Records the upstream's answer: its status, or the kind of failure.
pub fn record_upstream(span: &Span, outcome: Result<u16, &'static str>) {
    if span.is_disabled() {
        return;
    }
    match outcome {
        Ok(status) => {
            span.record("http.response.status_code", i64::from(status));
            if status >= 500 {
                span.record("otel.status_code", "ERROR");
            }
        }
        Err(kind) => {
            span.record("error.type", kind);
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// Replaces `traceparent`/`tracestate` in `headers` with `span`'s context, so the upstream's
/// spans become its children. Does nothing without a span: with export off the client's headers
/// pass through as they always did, and an unsampled request's were set by [`server_trace`].
pub fn inject(span: &Span, headers: &mut HeaderMap) {
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    replace_trace_headers(context.span().span_context(), headers);
}

fn replace_trace_headers(context: &SpanContext, headers: &mut HeaderMap) {
    headers.remove(TRACEPARENT);
    headers.remove(TRACESTATE);
    let context = opentelemetry::Context::new().with_remote_span_context(context.clone());
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

/// Whether the sampler takes a new trace (no parent) named `name`.
fn sample_new_trace(name: &str) -> bool {
    SAMPLER.get().is_some_and(|sampler| {
        let trace_id = RandomIdGenerator::default().new_trace_id();
        sampler
            .should_sample(None, trace_id, name, &SpanKind::Client, &[], &[])
            .decision
            == SamplingDecision::RecordAndSample
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_standard_method_is_other_with_an_http_span_name() {
        assert_eq!(semconv_method("OTHER"), ("_OTHER", "HTTP"));
        assert_eq!(semconv_method("POST"), ("POST", "POST"));
    }

    /// The in-process tests never install the OTLP layer; `tests/traces.rs` runs the binary
    /// with it.
    #[test]
    fn without_export_there_is_no_span_and_trace_headers_pass_untouched() {
        assert!(!exporting());
        let client_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, http::HeaderValue::from_static(client_parent));
        headers.insert(TRACESTATE, http::HeaderValue::from_static("vendor=1"));
        let server = server_trace(
            &ServerRequest {
                method: "GET",
                peer: Some(SocketAddr::from(([127, 0, 0, 1], 5000))),
                request_id: Some("id"),
            },
            &mut headers,
        );
        assert!(matches!(server, ServerTrace::Off));
        assert!(server.span().is_none());
        assert!(token_validation_span().is_none());
        assert!(key_fetch_span().is_none());
        let upstream = upstream_span("GET", &Uri::from_static("http://halo:8080/api/v1/policies"));
        assert!(upstream.is_none());
        inject(&upstream, &mut headers);
        assert_eq!(headers[TRACEPARENT], client_parent);
        assert_eq!(headers[TRACESTATE], "vendor=1");
        assert_eq!(trace_id(&server), None);
    }
}
