//! OpenTelemetry traces end to end: `halo-gateway serve` with the standard `OTEL_*` variables
//! exports over OTLP/HTTP (and OTLP/gRPC) to a receiver in this test, which decodes the
//! protobuf with the `opentelemetry-proto` types.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::vec::IntoIter;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use futures_util::stream::Iter;
use halo_gateway::dev::issuer::Issuer;
use halo_gateway::dev::upstream::StubUpstream;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message as _;
use serde_json::{Value, json};

use crate::support::process::{Output, ServeProcess};
use crate::support::{access_events, client, env_for, eventually, now, start_issuer, start_stub};

/// What the receiver got: every export request, decoded.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<ResourceSpans>>>);

impl Received {
    fn spans(&self) -> Vec<Span> {
        let batches = self.0.lock().unwrap();
        batches
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    /// Server spans received so far (one per request).
    fn server_spans(&self) -> usize {
        self.spans()
            .iter()
            .filter(|s| s.kind == SpanKind::Server as i32)
            .count()
    }

    fn resources(&self) -> Vec<ResourceSpans> {
        self.0.lock().unwrap().clone()
    }
}

async fn export(State(received): State<Received>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    received.0.lock().unwrap().extend(request.resource_spans);
    ExportTraceServiceResponse::default().encode_to_vec()
}

/// An OTLP/HTTP traces receiver on loopback (`POST /v1/traces`).
async fn start_receiver() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(export))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(span: &Span, key: &str) -> String {
    match attribute(&span.attributes, key) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("span '{}': {key} is {other:?}", span.name),
    }
}

fn number(span: &Span, key: &str) -> i64 {
    match attribute(&span.attributes, key) {
        Some(any_value::Value::IntValue(n)) => *n,
        other => panic!("span '{}': {key} is {other:?}", span.name),
    }
}

fn any_text(value: &AnyValue) -> String {
    format!("{:?}", value.value)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn children<'a>(spans: &'a [Span], parent: &Span) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id && s.trace_id == parent.trace_id)
        .collect()
}

/// The gRPC path of the OTLP trace service (opentelemetry-proto's `trace_service.proto`).
const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// An OTLP/gRPC traces receiver on loopback: HTTP/2 without TLS (prior knowledge, as tonic's
/// client speaks it to an `http://` endpoint), one unary call per batch. The gRPC framing is
/// written here (5-byte prefix: compressed flag, length) so the test needs no gRPC server crate.
async fn start_grpc_receiver() -> (String, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let store = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = store.clone();
            let service =
                hyper::service::service_fn(move |request| grpc_export(store.clone(), request));
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (url, received)
}

/// A gRPC answer: one message, then the `grpc-status` trailer.
type GrpcBody = StreamBody<Iter<IntoIter<Result<Frame<Bytes>, Infallible>>>>;

async fn grpc_export(
    received: Received,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<GrpcBody>, hyper::Error> {
    assert_eq!(request.uri().path(), GRPC_EXPORT);
    let body = request.into_body().collect().await?.to_bytes();
    assert_eq!(body[0], 0, "an uncompressed message");
    let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    assert_eq!(body.len(), 5 + length, "one length-prefixed message");
    let message = ExportTraceServiceRequest::decode(&body[5..]).expect("OTLP protobuf");
    received.0.lock().unwrap().extend(message.resource_spans);
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(answer.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&answer);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames = vec![
        Ok(Frame::data(Bytes::from(framed))),
        Ok(Frame::trailers(trailers)),
    ];
    Ok(hyper::Response::builder()
        .header("content-type", "application/grpc")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .expect("response"))
}

/// The embedded issuer and stub Halo with `halo-gateway serve` in front of them.
struct Exporting {
    issuer: Issuer,
    /// Held so the stub serves as long as the gateway does.
    _upstream: StubUpstream,
    gateway: ServeProcess,
}

/// Starts the issuer, the stub and `halo-gateway serve` exporting its spans to `endpoint` over
/// `protocol`, logging JSON, with the default sampler (`parentbased_always_on`) unless
/// `sampler` names one and its argument.
async fn serve_exporting(
    endpoint: &str,
    protocol: &str,
    sampler: Option<(&str, &str)>,
) -> Exporting {
    let issuer = start_issuer().await;
    let upstream = start_stub().await;
    let mut settings = vec![
        ("Gateway__LogFormat", "json"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
        // Export quickly; the gateway flushes the rest at shutdown anyway.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    if let Some((name, arg)) = sampler {
        settings.extend([
            ("OTEL_TRACES_SAMPLER", name),
            ("OTEL_TRACES_SAMPLER_ARG", arg),
        ]);
    }
    let vars = env_for(issuer.url(), &upstream.url(), &settings);
    let gateway = ServeProcess::start(vars, Output::Captured).await;
    Exporting {
        issuer,
        _upstream: upstream,
        gateway,
    }
}

#[tokio::test]
async fn requests_are_exported_as_server_spans_with_validation_key_fetch_and_upstream_children() {
    let (otlp, received) = start_receiver().await;
    let traced = serve_exporting(&otlp, "http/protobuf", None).await;
    let issuer = &traced.issuer;
    let base = traced.gateway.base.clone();
    let http = client();
    let claims = json!({
        "iss": issuer.url(), "aud": crate::support::AUDIENCE, "sub": "0oa-trace",
        "cid": "0oa-trace", "iat": now(), "exp": now() + 3600,
    });

    // 1. Allowed, continuing the client's trace; signed with a key the gateway has not seen,
    //    so validating it fetches the keys again.
    issuer.rotate(false);
    let token = issuer.sign(&claims);
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_parent = "00f067aa0ba902b7";
    let traceparent = format!("00-{client_trace}-{client_parent}-01");
    let echoed = echoed_headers(
        &format!("{base}/stub/echo-headers?q=query-value"),
        &token,
        &[("traceparent", &traceparent)],
    )
    .await;
    let forwarded = echoed["headers"]["traceparent"][0]
        .as_str()
        .expect("traceparent forwarded")
        .to_owned();

    // 2. Denied (expired), no traceparent: a new trace.
    let mut expired_claims = claims.clone();
    expired_claims["exp"] = json!(now() - 600);
    expired_claims["iat"] = json!(now() - 4000);
    let expired = issuer.sign(&expired_claims);
    let denied = http
        .get(format!("{base}/api/v1/policies"))
        .bearer_auth(&expired)
        .send()
        .await
        .expect("sent");
    assert_eq!(denied.status(), 401);

    // Spans arrive in batches; wait for both server spans (with their children) to be there.
    eventually(Duration::from_secs(20), || {
        received.server_spans() >= 2 && received.spans().len() >= 6
    })
    .await;

    // Stop as Kubernetes does; the gateway flushes what is still queued.
    let output = traced.gateway.stop().await;
    let log = String::from_utf8_lossy(&output.stdout).into_owned();

    let spans = received.spans();
    let summary: Vec<String> = spans
        .iter()
        .map(|s| format!("{} ({}) {}", s.name, s.kind, hex(&s.trace_id)))
        .collect();
    let servers: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .collect();
    assert_eq!(servers.len(), 2, "{summary:#?}");

    // The allowed request continues the client's trace under the client's span.
    let allowed = servers
        .iter()
        .find(|s| hex(&s.trace_id) == client_trace)
        .unwrap_or_else(|| panic!("no server span in the client's trace: {summary:#?}"));
    assert_eq!(hex(&allowed.parent_span_id), client_parent);
    assert_eq!(allowed.name, "GET other");
    assert_eq!(text(allowed, "http.request.method"), "GET");
    assert_eq!(text(allowed, "http.route"), "other");
    assert_eq!(number(allowed, "http.response.status_code"), 200);
    assert_eq!(text(allowed, "client.address"), "127.0.0.1");
    assert_eq!(text(allowed, "url.path"), "/stub/echo-headers");
    assert_eq!(
        text(allowed, "halo.request_id"),
        echoed["headers"]["x-request-id"][0]
            .as_str()
            .expect("request id forwarded")
    );
    let allowed_children = children(&spans, allowed);
    let validation = allowed_children
        .iter()
        .find(|s| s.name == "token validation")
        .unwrap_or_else(|| panic!("no token validation span: {summary:#?}"));
    assert_eq!(text(validation, "auth.decision"), "allow");
    assert!(attribute(&validation.attributes, "auth.deny_reason").is_none());
    let key_fetch = children(&spans, validation)
        .into_iter()
        .find(|s| s.name == "key fetch")
        .unwrap_or_else(|| panic!("no key fetch under token validation: {summary:#?}"));
    assert_eq!(key_fetch.kind, SpanKind::Client as i32);
    let upstream_span = allowed_children
        .iter()
        .find(|s| s.name == "GET")
        .unwrap_or_else(|| panic!("no upstream span: {summary:#?}"));
    assert_eq!(upstream_span.kind, SpanKind::Client as i32);
    assert_eq!(number(upstream_span, "http.response.status_code"), 200);
    // Halo got the upstream span's context, in the same trace.
    assert_eq!(
        forwarded,
        format!("00-{client_trace}-{}-01", hex(&upstream_span.span_id))
    );

    // The denied request starts a new trace; validation says why; nothing went upstream.
    let refused = servers
        .iter()
        .find(|s| hex(&s.trace_id) != client_trace)
        .expect("second server span");
    assert!(refused.parent_span_id.is_empty(), "a root span");
    assert_eq!(refused.name, "GET policies");
    assert_eq!(number(refused, "http.response.status_code"), 401);
    let refused_children = children(&spans, refused);
    assert_eq!(refused_children.len(), 1, "{summary:#?}");
    assert_eq!(refused_children[0].name, "token validation");
    assert_eq!(text(refused_children[0], "auth.decision"), "deny");
    assert_eq!(text(refused_children[0], "auth.deny_reason"), "expired");

    // The resource: default service name, OTEL_RESOURCE_ATTRIBUTES added.
    for resource_spans in received.resources() {
        let resource = resource_spans.resource.expect("resource");
        let service = attribute(&resource.attributes, "service.name");
        assert_eq!(
            service,
            Some(&any_value::Value::StringValue("halo-gateway".into()))
        );
        assert_eq!(
            attribute(&resource.attributes, "deployment.environment"),
            Some(&any_value::Value::StringValue("test".into()))
        );
    }

    // No token, no part of one, no Authorization value, no query in any attribute.
    for span in &spans {
        for kv in &span.attributes {
            let value = kv.value.as_ref().map(any_text).unwrap_or_default();
            for secret in [token.as_str(), expired.as_str()] {
                for part in secret.split('.') {
                    assert!(
                        !value.contains(part),
                        "{}: {} leaks a token",
                        span.name,
                        kv.key
                    );
                }
            }
            assert!(
                !value.contains("query-value"),
                "{}: {} = {value}",
                span.name,
                kv.key
            );
            assert!(
                !value.contains("Bearer") && !kv.key.to_ascii_lowercase().contains("authorization"),
                "{}: {} = {value}",
                span.name,
                kv.key
            );
        }
    }

    // The access log joins the traces through their ids.
    let access = access_events(&log);
    assert_eq!(access.len(), 2, "{log}");
    assert_eq!(access[0]["trace_id"], client_trace);
    assert_eq!(access[1]["trace_id"], hex(&refused.trace_id));
}

/// What Halo got for one GET of `url` (a `/stub/echo-headers` URL of the gateway) with
/// `token` and `extra` headers: the stub's echo of the request.
async fn echoed_headers(url: &str, token: &str, extra: &[(&str, &str)]) -> Value {
    let mut request = client().get(url).bearer_auth(token);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("echo")
}

/// The `traceparent` and `tracestate` Halo got for one GET through the gateway, sent with
/// `traceparent` (and `tracestate: vendor=1`) or without either.
async fn forwarded_trace_headers(
    base: &str,
    token: &str,
    traceparent: Option<&str>,
) -> (String, Option<String>) {
    let trace_headers = match traceparent {
        Some(traceparent) => vec![("traceparent", traceparent), ("tracestate", "vendor=1")],
        None => Vec::new(),
    };
    let echoed = echoed_headers(&format!("{base}/stub/echo-headers"), token, &trace_headers).await;
    let header = |name: &str| echoed["headers"][name][0].as_str().map(str::to_owned);
    (
        header("traceparent").expect("traceparent forwarded"),
        header("tracestate"),
    )
}

#[tokio::test]
async fn requests_the_sampler_drops_get_no_span_but_pass_their_trace_on() {
    let (otlp, received) = start_receiver().await;
    // Follows the client's decision; takes no new trace.
    let sampler = ("parentbased_traceidratio", "0");
    let traced = serve_exporting(&otlp, "http/protobuf", Some(sampler)).await;
    let issuer = &traced.issuer;
    let token = issuer.token_for(&issuer.clients()[1]);
    let (unsampled_trace, sampled_trace) = (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "0af7651916cd43dd8448eb211c80319c",
    );
    let client_parent = "00f067aa0ba902b7";

    // 1. The client's trace, not sampled: continued under a span id of the gateway's, still
    //    not sampled, its tracestate kept.
    let unsampled = format!("00-{unsampled_trace}-{client_parent}-00");
    let (forwarded, state) =
        forwarded_trace_headers(&traced.gateway.base, &token, Some(&unsampled)).await;
    let parts: Vec<&str> = forwarded.split('-').collect();
    assert_eq!(parts.len(), 4, "{forwarded}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", unsampled_trace, "00")
    );
    assert!(
        parts[2] != client_parent && parts[2] != "0000000000000000",
        "{forwarded}"
    );
    assert_eq!(state.as_deref(), Some("vendor=1"));

    // 2. No traceparent: a new trace, which ratio 0 does not take; Halo still gets its context.
    let (fresh, _) = forwarded_trace_headers(&traced.gateway.base, &token, None).await;
    let fresh_parts: Vec<&str> = fresh.split('-').collect();
    assert_eq!(fresh_parts.len(), 4, "{fresh}");
    let fresh_trace = fresh_parts[1].to_owned();
    assert_eq!(fresh_trace.len(), 32, "{fresh}");
    assert!(
        fresh_trace != "0".repeat(32) && fresh_trace != unsampled_trace,
        "{fresh}"
    );
    assert_eq!(fresh_parts[3], "00", "{fresh}");

    // 3. The client's trace, sampled: followed, with spans.
    let sampled = format!("00-{sampled_trace}-{client_parent}-01");
    let (forwarded, _) =
        forwarded_trace_headers(&traced.gateway.base, &token, Some(&sampled)).await;
    assert!(
        forwarded.starts_with(&format!("00-{sampled_trace}-")) && forwarded.ends_with("-01"),
        "{forwarded}"
    );

    eventually(Duration::from_secs(20), || received.server_spans() >= 1).await;
    let output = traced.gateway.stop().await;
    let spans = received.spans();
    let traces: Vec<String> = spans.iter().map(|s| hex(&s.trace_id)).collect();
    assert_eq!(received.server_spans(), 1, "{traces:?}");
    assert!(
        traces.iter().all(|trace| trace == sampled_trace),
        "only the sampled request has spans (no key fetch of its own either): {traces:?}"
    );
    let upstream_span = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32 && s.name == "GET")
        .expect("the sampled request's upstream span");
    assert_eq!(
        forwarded,
        format!("00-{sampled_trace}-{}-01", hex(&upstream_span.span_id))
    );

    // The access log names every request's trace, sampled or not.
    let log = String::from_utf8_lossy(&output.stdout).into_owned();
    let logged: Vec<Value> = access_events(&log)
        .into_iter()
        .map(|event| event["trace_id"].clone())
        .collect();
    assert_eq!(
        logged,
        [
            json!(unsampled_trace),
            json!(fresh_trace),
            json!(sampled_trace)
        ],
        "{log}"
    );
}

#[tokio::test]
async fn spans_are_exported_over_otlp_grpc_too() {
    let (otlp, received) = start_grpc_receiver().await;
    let traced = serve_exporting(&otlp, "grpc", None).await;
    let issuer = &traced.issuer;
    let base = traced.gateway.base.clone();
    let token = issuer.token_for(&issuer.clients()[1]);
    let response = client()
        .get(format!("{base}/api/v1/policies"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    eventually(Duration::from_secs(20), || received.server_spans() >= 1).await;
    drop(traced);

    let spans = received.spans();
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("server span");
    assert_eq!(server.name, "GET policies");
    assert_eq!(number(server, "http.response.status_code"), 200);
    let names: Vec<&str> = children(&spans, server)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert!(names.contains(&"token validation"), "{names:?}");
    assert!(names.contains(&"GET"), "{names:?}");
    let resource = received.resources()[0].resource.clone().expect("resource");
    assert_eq!(
        attribute(&resource.attributes, "service.name"),
        Some(&any_value::Value::StringValue("halo-gateway".into()))
    );
}
