//! A stub Halo API for `halo-gateway dev`, the tests and the benchmarks. It trusts the gateway
//! (no auth) and says in every JSON reply that it is a stub.
//!
//! Halo's routes: `GET /api/health`, `GET /api/v1/policies`, `GET/PUT/DELETE
//! /api/v1/policies/{name}`, `POST /api/v1/rebuild/file` and `POST /api/v3/cdr-file`
//! (multipart `file` part, streamed back as `application/octet-stream`),
//! `GET/POST/DELETE /api/v1/license`, `GET /api/v1/license-usage[/active|/{id}]`.
//! Test helpers under `/stub/`: `echo-headers`, `digest` (length + SHA-256 of the body),
//! `sink` (counts bytes), `slow?ms=N`, `status/{code}`, `hop-headers`; [`raw_upstream`] for hand-written responses.
//! Every request is recorded (method, path and query, headers) for assertions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the stub saw of one request.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: HeaderMap,
}

const RECORD_LIMIT: usize = 256;

#[derive(Default)]
struct StubState {
    requests: Mutex<Vec<RecordedRequest>>,
    sink_bytes: AtomicU64,
    aborted_uploads: AtomicU64,
}

/// A running stub Halo API.
pub struct StubUpstream {
    addr: SocketAddr,
    state: Arc<StubState>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for StubUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubUpstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl StubUpstream {
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(StubState::default());
        let app = router(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far (the most recent 256).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The most recent request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.requests().pop()
    }

    /// Bytes received by `/stub/sink` so far (counted as they arrive).
    pub fn sink_bytes(&self) -> u64 {
        self.state.sink_bytes.load(Ordering::SeqCst)
    }

    /// `/stub/sink` uploads whose body ended in an error (the sender went away).
    pub fn aborted_uploads(&self) -> u64 {
        self.state.aborted_uploads.load(Ordering::SeqCst)
    }
}

impl Drop for StubUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn router(state: Arc<StubState>) -> Router {
    Router::new()
        .route(
            "/api/health",
            get(|| async { Json(json!({ "status": "Healthy", "stub": true })) }),
        )
        .route("/api/v1/policies", get(list_policies))
        .route(
            "/api/v1/policies/{name}",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
        .route("/api/v1/rebuild/file", post(rebuild_file))
        .route("/api/v3/cdr-file", post(rebuild_file))
        .route(
            "/api/v1/license",
            get(get_license).post(upload_license).delete(delete_license),
        )
        .route("/api/v1/license-usage", get(license_usage))
        .route("/api/v1/license-usage/active", get(license_usage_active))
        .route("/api/v1/license-usage/{id}", get(license_usage_report))
        .route("/stub/echo-headers", get(echo_headers).post(echo_headers))
        .route("/stub/digest", post(digest).put(digest))
        .route("/stub/sink", post(sink).put(sink))
        .route("/stub/slow", get(slow))
        .route("/stub/status/{code}", get(status).post(status))
        .route("/stub/hop-headers", get(hop_headers))
        .fallback(not_found)
        .layer(from_fn_with_state(state.clone(), record))
        .with_state(state)
}

async fn record(State(state): State<Arc<StubState>>, request: Request, next: Next) -> Response {
    let recorded = RecordedRequest {
        method: request.method().to_string(),
        target: request
            .uri()
            .path_and_query()
            .map_or_else(|| request.uri().path().to_owned(), ToString::to_string),
        headers: request.headers().clone(),
    };
    if let Ok(mut requests) = state.requests.lock() {
        if requests.len() >= RECORD_LIMIT {
            requests.remove(0);
        }
        requests.push(recorded);
    }
    next.run(request).await
}

fn stub_json(mut value: Value) -> Json<Value> {
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "stub".into(),
            json!("halo-gateway stub Halo API; not a real Halo"),
        );
    }
    Json(value)
}

async fn list_policies() -> Json<Value> {
    stub_json(json!({ "policies": [
        { "name": "default", "description": "Halo default content management policy" },
        { "name": "strict", "description": "Remove active content" }
    ] }))
}

async fn get_policy(Path(name): Path<String>) -> Json<Value> {
    stub_json(json!({ "name": name, "pdf": { "javascript": "sanitise", "acroform": "allow" } }))
}

async fn put_policy(Path(name): Path<String>) -> Json<Value> {
    stub_json(json!({ "name": name, "updated": true }))
}

async fn delete_policy(Path(name): Path<String>) -> Response {
    (
        StatusCode::OK,
        stub_json(json!({ "name": name, "deleted": true })),
    )
        .into_response()
}

async fn get_license() -> Json<Value> {
    stub_json(json!({ "licensed": true, "expires": "2027-12-31" }))
}

async fn upload_license() -> Response {
    (StatusCode::CREATED, stub_json(json!({ "uploaded": true }))).into_response()
}

async fn delete_license() -> Json<Value> {
    stub_json(json!({ "deleted": true }))
}

async fn license_usage() -> Json<Value> {
    stub_json(json!({ "usage": [{ "id": "usage-1", "files": 42 }] }))
}

async fn license_usage_active() -> Json<Value> {
    stub_json(json!({ "active": { "id": "usage-1", "files": 42 } }))
}

async fn license_usage_report(Path(id): Path<String>) -> Json<Value> {
    stub_json(json!({ "id": id, "signature": "stub-signature" }))
}

/// Streams the multipart `file` part back, as Halo returns the rebuilt file.
async fn rebuild_file(headers: HeaderMap, body: Body) -> Response {
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    let Some(boundary) = boundary else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            stub_json(json!({ "error": "expected multipart/form-data with a 'file' part" })),
        )
            .into_response();
    };
    let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => {
                let filename = field
                    .file_name()
                    .unwrap_or("file")
                    .replace(['"', '\\', '\r', '\n'], "_");
                let disposition =
                    HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
                        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
                return (
                    [
                        (
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/octet-stream"),
                        ),
                        (header::CONTENT_DISPOSITION, disposition),
                    ],
                    Body::from_stream(field),
                )
                    .into_response();
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return (
                    StatusCode::BAD_REQUEST,
                    stub_json(json!({ "error": "the form has no 'file' part" })),
                )
                    .into_response();
            }
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    stub_json(json!({ "error": e.to_string() })),
                )
                    .into_response();
            }
        }
    }
}

async fn echo_headers(headers: HeaderMap) -> Json<Value> {
    let mut map = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        map.insert(name.as_str().to_owned(), Value::Array(values));
    }
    stub_json(json!({ "headers": map }))
}

async fn digest(body: Body) -> Response {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut length = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                length += chunk.len() as u64;
                context.update(&chunk);
            }
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    stub_json(json!({ "error": e.to_string() })),
                )
                    .into_response();
            }
        }
    }
    let hex: String = context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    stub_json(json!({ "bytes": length, "sha256": hex })).into_response()
}

async fn sink(State(state): State<Arc<StubState>>, body: Body) -> Response {
    let mut stream = body.into_data_stream();
    let mut length = 0u64;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                length += chunk.len() as u64;
                state
                    .sink_bytes
                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
            Err(_) => {
                state.aborted_uploads.fetch_add(1, Ordering::SeqCst);
                return StatusCode::BAD_REQUEST.into_response();
            }
        }
    }
    stub_json(json!({ "bytes": length })).into_response()
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: u64,
}

async fn slow(Query(query): Query<SlowQuery>) -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(query.ms)).await;
    stub_json(json!({ "slept_ms": query.ms }))
}

async fn status(Path(code): Path<u16>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        stub_json(json!({ "status": code, "error": "stub error body" })),
    )
        .into_response()
}

async fn hop_headers() -> Response {
    let mut response = stub_json(json!({ "hop": true })).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("x-upstream-hop"),
    );
    h.insert("x-upstream-hop", HeaderValue::from_static("secret"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
    h.insert(
        header::PROXY_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"halo-internal\""),
    );
    h.insert(
        "proxy-authentication-info",
        HeaderValue::from_static("nextnonce=\"stub\""),
    );
    h.insert("x-end-to-end", HeaderValue::from_static("kept"));
    response
}

async fn not_found(request: Request) -> Response {
    (
        StatusCode::NOT_FOUND,
        stub_json(json!({ "error": "no such Halo route", "path": request.uri().path() })),
    )
        .into_response()
}

/// A raw TCP upstream that answers every request with a fixed byte string (tests of
/// responses hyper-based stubs cannot produce, such as conflicting framing or a 101).
pub async fn raw_upstream(
    response: &'static [u8],
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                // Read the request head, then answer.
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
                let _ = stream.write_all(response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok((addr, task))
}
