//! Heap allocations per request on the gateway's side, for the common case: one reused, valid
//! token over one keep-alive connection (case (c) of bench/run.sh).
//!
//! Run with `cargo bench --bench allocations` (`REQUESTS=n` to change the count; see
//! docs/performance.md). The embedded issuer, the stub Halo and the client run on the main
//! thread's runtime; the gateway runs on a thread of its own exactly as a worker does
//! (`server::serve_public` with `middleware::public_stack` on a single-threaded runtime, the
//! upstream connection pool's tasks included). A per-thread counting allocator then counts
//! only that thread: hyper's server and client, every layer of the stack, the token cache,
//! the metrics and the log filter (`Gateway__LogLevel=warn`, as in bench/run.sh; `RUST_LOG`
//! overrides it, and an enabled access log goes to stdout).

// Benchmark set-up panics on failure by design.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use densa_alloc::{AllocStats, CountingAllocator};
use halo_gateway::auth::Authenticator;
use halo_gateway::config::{AspNetEnv, Config, LogFormat};
use halo_gateway::dev::issuer::{Issuer, IssuerOptions};
use halo_gateway::dev::upstream::StubUpstream;
use halo_gateway::metrics::Metrics;
use halo_gateway::middleware::{SharedStack, StackSettings, UpstreamBody, public_stack};
use halo_gateway::proxy::{ForwardingOptions, Upstream};
use halo_gateway::ratelimit::Limits;
use halo_gateway::server::serve_public;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator::system();

/// Requests before counting: the first fills the token cache, the metric series and the
/// upstream pool; the rest let buffers reach their steady size.
const WARM_UP: u64 = 500;
const DEFAULT_REQUESTS: u64 = 20_000;
const PATH: &str = "/api/v1/policies";

/// Asks the gateway thread for its counters (answered on that thread).
type Snapshots = mpsc::UnboundedSender<oneshot::Sender<AllocStats>>;

fn main() {
    assert!(
        densa_alloc::is_active(),
        "the counting allocator is not installed"
    );
    let requests = std::env::var("REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_REQUESTS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(requests));
}

async fn run(requests: u64) {
    let _log = halo_gateway::telemetry::init(Some(LogFormat::Json), Some("warn"), None)
        .expect("log set-up");
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let issuer = Issuer::start(loopback, IssuerOptions::default())
        .await
        .expect("issuer");
    let stub = StubUpstream::start(loopback).await.expect("stub");
    let config = Config::load_with_env(
        None,
        AspNetEnv::from_vars(
            [
                ("Authentication__Schemes__Bearer__Authority", issuer.url()),
                (
                    "Authentication__Schemes__Bearer__ValidAudiences__0",
                    "api://halo",
                ),
                (
                    "Authentication__Schemes__Bearer__RequireHttpsMetadata",
                    "false",
                ),
                ("Gateway__Upstream", stub.url().as_str()),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned())),
        ),
    )
    .expect("config");
    let metrics = Arc::new(Metrics::new());
    let authenticator =
        Arc::new(Authenticator::from_config(&config, metrics.clone()).expect("authenticator"));
    let keys = authenticator.validator().keys().refresh().await;
    assert!(keys.result.is_ok(), "keys loaded");
    let settings = StackSettings {
        authenticator,
        metrics: metrics.clone(),
        forwarding: Arc::new(ForwardingOptions::default()),
        max_body: config.gateway.max_request_body_size,
        body_idle_timeout: config.gateway.body_idle_timeout,
        limits: Arc::new(Limits::from_config(&config.gateway, None, metrics)),
    };
    let (gateway, snapshots, shutdown) = start_gateway_thread(settings, config.clone());
    let token = issuer.sign(&json!({
        "iss": issuer.url(),
        "aud": "api://halo",
        "iat": now(),
        "exp": now() + 3600,
        "cid": "0oa-bench",
        "sub": "0oa-bench",
        "scp": ["halo.api"],
    }));
    let authorization = format!("Bearer {token}");

    let stream = TcpStream::connect(gateway).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let mut send = async |count: u64| {
        for _ in 0..count {
            let request = Request::get(PATH)
                .header(header::HOST, "gateway.bench")
                .header(header::AUTHORIZATION, authorization.as_str())
                .body(Empty::new())
                .expect("request");
            sender.ready().await.expect("connection open");
            let response = sender.send_request(request).await.expect("response");
            assert_eq!(response.status(), StatusCode::OK, "request refused");
            response.into_body().collect().await.expect("body");
        }
    };
    send(WARM_UP).await;
    let before = snapshot(&snapshots).await;
    send(requests).await;
    let after = snapshot(&snapshots).await;
    shutdown.cancel();

    let used = after.since(before);
    let per = |n: u64| n as f64 / requests as f64;
    eprintln!(
        "gateway worker thread, {requests} requests (GET {PATH}, one reused token, one \
         keep-alive connection), per request: {:.2} allocs, {:.2} reallocs, {:.0} bytes \
         allocated, {:.2} deallocs",
        per(used.allocs),
        per(used.reallocs),
        per(used.bytes_allocated),
        per(used.deallocs),
    );
    drop(stub);
}

/// Runs the gateway's accept loop as one worker does, on a thread of its own; returns its
/// address, the way to read its counters, and its shutdown.
fn start_gateway_thread(
    settings: StackSettings,
    config: Config,
) -> (SocketAddr, Snapshots, CancellationToken) {
    let (snapshots, mut asks) = mpsc::unbounded_channel::<oneshot::Sender<AllocStats>>();
    let (bound, address) = std::sync::mpsc::channel();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("worker runtime");
        runtime.block_on(async move {
            let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .expect("bind");
            bound.send(listener.local_addr().expect("address")).unwrap();
            tokio::spawn(async move {
                while let Some(ask) = asks.recv().await {
                    let _ = ask.send(densa_alloc::thread_stats());
                }
            });
            let upstream = Upstream::<UpstreamBody>::new(
                &config.gateway.upstream,
                config.gateway.upstream_timeout,
                config.gateway.upstream_max_idle_connections,
            )
            .expect("upstream");
            let stack = SharedStack::new(public_stack(&settings, upstream));
            let permits = Arc::new(Semaphore::new(config.gateway.max_connections));
            serve_public(listener, stack, &config.gateway, permits, stop).await;
        });
    });
    let address = address
        .recv_timeout(Duration::from_secs(10))
        .expect("gateway bound");
    (address, snapshots, shutdown)
}

async fn snapshot(snapshots: &Snapshots) -> AllocStats {
    let (ask, answer) = oneshot::channel();
    snapshots.send(ask).expect("gateway thread running");
    answer.await.expect("counters")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
