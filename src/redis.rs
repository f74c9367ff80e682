//! The optional Redis that replicas share (`Gateway__Redis__Url`), for any feature that keeps
//! state across replicas (rate-limit counters; a DPoP replay cache can use the same one).
//!
//! One `redis::aio::ConnectionManager` per gateway: a multiplexed connection that reconnects
//! by itself. It is created lazily, so the gateway starts and is ready without Redis. Each
//! call is bounded by `Gateway__Redis__Timeout`. After a failure, calls are not sent for
//! [`RETRY_AFTER`] (the caller decides without Redis at once instead of waiting out the
//! timeout on every request); then one call probes, and shared use resumes when it succeeds.
//! A warning is logged once when Redis becomes unusable and a line when it is back, never
//! per request. Callers choose their own policy on failure (rate limits fall back to
//! per-process counting) and count their own metric.

use std::future::Future;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::{RedisSettings, redact};

/// Prefix of every key the gateway writes, so a shared Redis can hold other data too.
pub const KEY_PREFIX: &str = "halo-gw:";

/// How long calls are not attempted after a failure, before one probe.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Time allowed to (re)establish the connection in the background; requests never wait
/// longer than `Gateway__Redis__Timeout` for it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a call was decided without Redis.
#[derive(Debug, thiserror::Error)]
pub enum RedisUnavailable {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Failed(#[from] ::redis::RedisError),
    #[error("waiting to retry after an earlier failure")]
    Resting,
}

/// A handle to the shared Redis; cheap to clone (every clone shares one connection).
#[derive(Clone)]
pub struct SharedRedis {
    manager: ConnectionManager,
    timeout: Duration,
    health: std::sync::Arc<Health>,
}

impl std::fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRedis")
            .field("url", &self.health.url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Whether Redis is usable, and when to probe again when it is not.
#[derive(Debug)]
struct Health {
    /// The URL with its password hidden, for log lines.
    url: String,
    down: AtomicBool,
    /// Microseconds since [`EPOCH`] before which no call is sent while `down`.
    rest_until: AtomicU64,
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_micros() -> u64 {
    u64::try_from(EPOCH.elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl SharedRedis {
    /// The shared Redis of `settings`, or `None` when `Gateway__Redis__Url` is unset. No
    /// connection is made here (the first call makes it). Must run inside a tokio runtime,
    /// which then drives the connection.
    /// The error is the client's own description of what is wrong with the URL.
    pub fn from_settings(settings: &RedisSettings) -> Result<Option<Self>, String> {
        let Some(url) = &settings.url else {
            return Ok(None);
        };
        let setup_error = |e: ::redis::RedisError| e.detail().unwrap_or("invalid URL").to_owned();
        let client = ::redis::Client::open(url.0.clone()).map_err(setup_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(2)
            .set_max_delay(RETRY_AFTER);
        let manager =
            ConnectionManager::new_lazy_with_config(client, config).map_err(setup_error)?;
        // Connect now in the background, so the first request does not wait for it.
        let mut warm = manager.clone();
        tokio::spawn(async move {
            let _: ::redis::RedisResult<()> = ::redis::cmd("PING").query_async(&mut warm).await;
        });
        let url = redact(&url.0);
        tracing::info!(redis = %url, "state shared by replicas is kept in Redis");
        Ok(Some(Self {
            manager,
            timeout: settings.timeout,
            health: std::sync::Arc::new(Health {
                url,
                down: AtomicBool::new(false),
                rest_until: AtomicU64::new(0),
            }),
        }))
    }

    /// Runs one call (`call` gets its own handle to the connection), bounded by the timeout.
    /// Fails at once while resting after a failure; records changes of health.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = ::redis::RedisResult<T>>,
    {
        if !self.may_call() {
            return Err(RedisUnavailable::Resting);
        }
        let result = match tokio::time::timeout(self.timeout, call(self.manager.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(RedisUnavailable::Failed(e)),
            Err(_) => Err(RedisUnavailable::Timeout(self.timeout)),
        };
        match &result {
            Ok(_) => self.mark_up(),
            Err(e) => self.mark_down(e),
        }
        result
    }

    /// Whether Redis is currently considered usable.
    pub fn is_up(&self) -> bool {
        !self.health.down.load(Ordering::Relaxed)
    }

    /// Up, or down with the rest over and this caller the one to probe.
    fn may_call(&self) -> bool {
        let health = &self.health;
        if !health.down.load(Ordering::Relaxed) {
            return true;
        }
        let until = health.rest_until.load(Ordering::Relaxed);
        let now = now_micros();
        now >= until
            && health
                .rest_until
                .compare_exchange(
                    until,
                    now + rest_micros(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn mark_up(&self) {
        if self.health.down.swap(false, Ordering::AcqRel) {
            tracing::warn!(redis = %self.health.url, "Redis is reachable again; shared state resumed");
        }
    }

    fn mark_down(&self, error: &RedisUnavailable) {
        let health = &self.health;
        health
            .rest_until
            .store(now_micros() + rest_micros(), Ordering::Release);
        if !health.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                redis = %health.url,
                error = %error,
                retry_after_ms = RETRY_AFTER.as_millis() as u64,
                "Redis is unavailable; deciding in this process until it is back"
            );
        }
    }
}

fn rest_micros() -> u64 {
    RETRY_AFTER.as_micros() as u64
}
