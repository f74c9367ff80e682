//! Listeners (public + admin), connection limits and graceful shutdown.
//!
//! The public listener is served by `Gateway__Workers` threads, each a single-threaded tokio
//! runtime with its own accept loop and its own upstream connection pool, sharing the key
//! store, token cache and metrics. A request then never changes thread between the client
//! connection, the handler and the upstream connection: with a work-stealing runtime each of
//! those hops could wake a parked worker, which measured as tens of microseconds per request.
//!
//! The public listener speaks HTTP/1.1 only (hyper's http1 connection, not the auto builder
//! that also sniffs for h2c): measured, the auto connection costs about 6.7 KiB more per idle
//! keep-alive connection (5,000 open: 134 against 98 MiB).
//!
//! The public listener is a hyper accept loop rather than `axum::serve`, because the
//! front needs what `axum::serve` does not offer: a header-read timeout (slowloris; hyper also
//! applies it to idle keep-alive connections), header count and size limits (431, given the
//! gateway's JSON error body by [`crate::head_errors`]), and a cap on concurrent connections.
//! On shutdown the listener closes, `/readyz` turns 503, and in-flight requests get up to
//! `Gateway__ShutdownTimeout` to finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::keys::KeyStore;
use crate::auth::validate::Validator;
use crate::auth::{Authenticator, BuildError};
use crate::config::{Config, GatewayConfig};
use crate::head_errors::{HeadErrorIo, HeadErrorReplies};
use crate::health::{AdminState, admin_app};
use crate::metrics::Metrics;
use crate::middleware::{self, StackSettings, UpstreamBody};
use crate::proxy::{ForwardingOptions, Upstream};
use crate::ratelimit::Limits;
use crate::redis::SharedRedis;

/// Largest read buffer per connection. Request bodies are read in chunks up to this size once
/// reads fill the 8 KiB starting buffer; headers are limited separately by
/// `Gateway__MaxHeaderBytes`.
const UPLOAD_READ_BUFFER: usize = 256 * 1024;

/// A start-up failure; the message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{setting}: cannot listen on {addr}: {source}")]
    Bind {
        setting: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("Gateway__Upstream: {0}")]
    Upstream(String),
    #[error(transparent)]
    Auth(#[from] BuildError),
    #[error("Gateway__Redis__Url: {0}")]
    Redis(String),
    #[error("cannot start a worker thread: {0}")]
    Worker(#[source] std::io::Error),
}

/// A started gateway: addresses for tests and `dev`, and a handle to stop it. Dropping it
/// stops the listeners without waiting.
#[derive(Debug)]
pub struct RunningGateway {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub keys: Arc<KeyStore>,
    pub validator: Arc<Validator>,
    pub metrics: Arc<Metrics>,
    admin: Arc<AdminState>,
    shutdown: CancellationToken,
    admin_shutdown: CancellationToken,
    workers_done: Vec<oneshot::Receiver<()>>,
    admin_task: Option<JoinHandle<()>>,
    refresh_task: JoinHandle<()>,
}

/// Builds everything, binds both listeners, loads keys once, and starts serving.
pub async fn start(config: &Config) -> Result<RunningGateway, StartError> {
    let metrics = Arc::new(Metrics::new());
    let g = &config.gateway;
    let redis = SharedRedis::from_settings(&g.redis).map_err(StartError::Redis)?;
    let auth = Arc::new(Authenticator::sharing_redis(
        config,
        metrics.clone(),
        redis.clone(),
    )?);
    let validator = auth.validator().clone();
    let keys = validator.keys().clone();
    let limits = Arc::new(Limits::from_config(g, redis, metrics.clone()));
    let settings = StackSettings {
        authenticator: auth,
        metrics: metrics.clone(),
        forwarding: Arc::new(ForwardingOptions {
            trusted_proxies: g.trusted_proxies.clone(),
            forward_authorization: g.forward_authorization,
        }),
        max_body: g.max_request_body_size,
        body_idle_timeout: g.body_idle_timeout,
        limits,
    };
    // One upstream pool per worker, built before anything is bound so a bad upstream fails
    // start-up first.
    let upstreams = (0..g.workers)
        .map(|_| {
            Upstream::<UpstreamBody>::new(
                &g.upstream,
                g.upstream_timeout,
                g.upstream_max_idle_connections,
            )
            .map_err(StartError::Upstream)
        })
        .collect::<Result<Vec<_>, StartError>>()?;

    let public = bind(g.listen, "Gateway__Listen").await?;
    let admin_listener = bind(g.admin_listen, "Gateway__AdminListen").await?;
    let bind_error = |setting: &'static str, addr: SocketAddr| {
        move |source| StartError::Bind {
            setting,
            addr,
            source,
        }
    };
    let public_addr = public
        .local_addr()
        .map_err(bind_error("Gateway__Listen", g.listen))?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(bind_error("Gateway__AdminListen", g.admin_listen))?;
    let public = public
        .into_std()
        .map_err(bind_error("Gateway__Listen", g.listen))?;

    // Warm up before serving: one attempt now; failures are retried by the refresh loop.
    let first = keys.refresh().await;
    let refresh_task = tokio::spawn(keys.clone().run_refresh_loop(first));

    let shutdown = CancellationToken::new();
    let permits = Arc::new(Semaphore::new(g.max_connections));
    let mut workers_done = Vec::with_capacity(g.workers);
    for (index, upstream) in upstreams.into_iter().enumerate() {
        let listener = public
            .try_clone()
            .map_err(bind_error("Gateway__Listen", g.listen))?;
        let (done, done_rx) = oneshot::channel();
        let worker = Worker {
            listener,
            settings: settings.clone(),
            upstream,
            limits: g.clone(),
            permits: permits.clone(),
            shutdown: shutdown.clone(),
        };
        std::thread::Builder::new()
            .name(format!("halo-gw-{index}"))
            .spawn(move || {
                worker.run();
                let _ = done.send(());
            })
            .map_err(StartError::Worker)?;
        workers_done.push(done_rx);
    }

    let admin = Arc::new(AdminState {
        keys: keys.clone(),
        metrics: metrics.clone(),
        draining: false.into(),
    });
    let admin_shutdown = CancellationToken::new();
    let admin_task = {
        let app = admin_app(admin.clone());
        let token = admin_shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(admin_listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
        })
    };
    tracing::info!(
        listen = %public_addr,
        admin = %admin_addr,
        workers = g.workers,
        upstream = %crate::config::redact(&g.upstream),
        "halo-gateway started"
    );
    Ok(RunningGateway {
        public_addr,
        admin_addr,
        keys,
        validator,
        metrics,
        admin,
        shutdown,
        admin_shutdown,
        workers_done,
        admin_task: Some(admin_task),
        refresh_task,
    })
}

/// One event-loop thread of the public listener.
struct Worker {
    listener: std::net::TcpListener,
    settings: StackSettings,
    upstream: Upstream<UpstreamBody>,
    limits: GatewayConfig,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
}

impl Worker {
    fn run(self) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a worker runtime");
                return;
            }
        };
        runtime.block_on(async move {
            match TcpListener::from_std(self.listener) {
                Ok(listener) => {
                    let stack = middleware::SharedStack::new(middleware::public_stack(
                        &self.settings,
                        self.upstream,
                    ));
                    serve_public(listener, stack, &self.limits, self.permits, self.shutdown).await
                }
                Err(e) => tracing::error!(error = %e, "cannot register the listener with a worker"),
            }
        });
    }
}

async fn bind(addr: SocketAddr, setting: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            setting,
            addr,
            source,
        })
}

impl RunningGateway {
    /// Stops accepting, drains in-flight requests (bounded), and waits for the listeners.
    pub async fn shutdown(mut self) {
        self.admin.draining.store(true, Ordering::Relaxed);
        self.shutdown.cancel();
        for done in std::mem::take(&mut self.workers_done) {
            let _ = done.await;
        }
        self.admin_shutdown.cancel();
        if let Some(admin) = self.admin_task.take() {
            let _ = admin.await;
        }
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutdown signal received; draining in-flight requests");
        self.shutdown().await;
        tracing::info!("halo-gateway stopped");
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.admin_shutdown.cancel();
        self.refresh_task.abort();
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// One worker's accept loop: serves each accepted connection with `stack` on the calling
/// runtime until `shutdown`, then drains. Public so the allocation bench
/// (`benches/allocations.rs`) runs exactly a worker's path on a thread it measures.
pub async fn serve_public<S, B>(
    listener: TcpListener,
    stack: middleware::SharedStack<S>,
    limits: &GatewayConfig,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
) where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes, Error = hyper::Error> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_header_count)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(UPLOAD_READ_BUFFER));
    let head_errors = HeadErrorReplies::new(limits.max_header_bytes, limits.max_header_count);
    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = middleware::connection_service(stack.clone(), peer);
        let io = HeadErrorIo::new(TokioIo::new(stream), head_errors.clone());
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(limits.shutdown_timeout) => {
            tracing::warn!(timeout = ?limits.shutdown_timeout, "drain time exceeded; closing remaining connections");
        },
    }
}
