//! The process-wide signing-key cache, built so that key handling never causes an outage.
//!
//! - Keys live in a moka cache by `kid`. A key that leaves the JWKS stays usable for
//!   `KeyGracePeriod`, so tokens signed just before a rotation keep working.
//! - An unknown `kid` triggers one refetch shared by every concurrent request (moka's
//!   `get_with` coalesces them) and the request is decided with the fresh keys. That refetch
//!   result is kept for `KeyRefetchCooldown`, so a flood of random kids costs one fetch; kids
//!   still unknown afterwards go to a bounded negative cache and are refused at once.
//! - A background task refreshes every `KeyRefreshInterval` (sooner if `Cache-Control:
//!   max-age` says so, clamped to 60 s..24 h), with jitter and `If-None-Match`. Failures keep
//!   the last good keys and retry with capped exponential backoff; the log says so once per
//!   state change, not once per attempt.
//! - An issuer that answers 429/503 with `Retry-After` is obeyed: no fetch of any kind
//!   (unknown-kid refetch, background refresh, start-up retry) goes out before that wait has
//!   passed, capped at `KeyRetryMaxBackoff` so a hostile value cannot stop refreshes for days.
//! - No lock is ever held across network I/O.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use moka::Expiry;
use rand::Rng;
use tracing::Instrument as _;
use url::Url;

use super::jwks::{FetchError, Fetcher, JwksResponse};
use super::keyset::VerifyKey;
use crate::config::AuthConfig;
use crate::http::text::printable;
use crate::metrics::{Metrics, ResultLabels};

/// First retry delay after a failed fetch; doubles up to `KeyRetryMaxBackoff`.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MIN_MAX_AGE: Duration = Duration::from_secs(60);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
const NEGATIVE_CACHE_CAPACITY: u64 = 10_000;

/// Result of looking a `kid` up.
#[derive(Debug, Clone)]
pub enum KeyLookup {
    Found(Arc<VerifyKey>),
    /// Keys are loaded but this kid is not among them (even after a refetch).
    Unknown,
    /// No key set was ever loaded: the issuer has been unreachable since start-up.
    Unavailable,
}

#[derive(Clone)]
struct KeyEntry {
    key: Arc<VerifyKey>,
    /// Set when the key left the JWKS; the entry then expires after the grace period.
    removed: bool,
}

struct GraceExpiry {
    grace: Duration,
}

impl Expiry<Arc<str>, KeyEntry> for GraceExpiry {
    fn expire_after_create(&self, _: &Arc<str>, entry: &KeyEntry, _: Instant) -> Option<Duration> {
        entry.removed.then_some(self.grace)
    }

    fn expire_after_update(
        &self,
        _: &Arc<str>,
        entry: &KeyEntry,
        _: Instant,
        left: Option<Duration>,
    ) -> Option<Duration> {
        match (entry.removed, left) {
            (false, _) => None,
            // Already counting down: keep the original deadline.
            (true, Some(left)) => Some(left),
            (true, None) => Some(self.grace),
        }
    }
}

/// What `/readyz` and `check-config` report.
#[derive(Debug, Clone, Default)]
pub struct KeyStatus {
    /// Keys have been loaded at least once.
    pub loaded: bool,
    /// The last fetch failed with this (also set while never loaded).
    pub last_error: Option<String>,
    pub jwks_uri: Option<Url>,
    pub key_ids: Vec<Arc<str>>,
}

#[derive(Debug, Clone, Default)]
struct FetchState {
    jwks_uri: Option<Url>,
    etag: Option<String>,
}

/// The issuer asked us to wait (`Retry-After`) until `until`; `error` is what it answered.
#[derive(Debug, Clone)]
struct IssuerWait {
    until: tokio::time::Instant,
    error: FetchError,
}

/// Called with each `kid` that leaves the key set (the verified-token cache drops its tokens).
pub type RemovalHook = Box<dyn Fn(&str) + Send + Sync>;

pub struct KeyStore {
    fetcher: Fetcher,
    keys: moka::sync::Cache<Arc<str>, KeyEntry>,
    negative: moka::sync::Cache<Box<str>, ()>,
    /// Coalesces unknown-kid refetches; the entry's lifetime is the cooldown.
    refetch_gate: moka::future::Cache<(), ()>,
    /// `KeyRefetchCooldown` is zero: every unknown kid may refetch (still coalesced).
    no_cooldown: bool,
    status: ArcSwap<KeyStatus>,
    fetch_state: ArcSwap<FetchState>,
    last_success_unix: AtomicU64,
    refresh_interval: Duration,
    max_backoff: Duration,
    /// Set by a rate-limited answer, cleared by the next answer that is not one. Locked only
    /// to copy or replace it, never across I/O.
    issuer_wait: Mutex<Option<IssuerWait>>,
    on_removal: std::sync::OnceLock<RemovalHook>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("status", &self.status.load())
            .finish_non_exhaustive()
    }
}

/// Next-refresh delay and whether the attempt succeeded. After a failure `next` is the wait
/// the issuer asked for (zero when it asked for none).
pub struct RefreshOutcome {
    pub next: Duration,
    pub result: Result<(), FetchError>,
}

impl KeyStore {
    pub fn new(config: &AuthConfig, fetcher: Fetcher, metrics: Arc<Metrics>) -> Self {
        let cooldown = config.key_refetch_cooldown;
        let mut gate = moka::future::Cache::builder().max_capacity(1);
        let mut negative = moka::sync::Cache::builder().max_capacity(NEGATIVE_CACHE_CAPACITY);
        if !cooldown.is_zero() {
            gate = gate.time_to_live(cooldown);
            negative = negative.time_to_live(cooldown);
        }
        Self {
            fetcher,
            keys: moka::sync::Cache::builder()
                .max_capacity(1024)
                .expire_after(GraceExpiry {
                    grace: config.key_grace_period,
                })
                .build(),
            negative: negative.build(),
            refetch_gate: gate.build(),
            no_cooldown: cooldown.is_zero(),
            status: ArcSwap::from_pointee(KeyStatus {
                last_error: Some("keys not fetched yet".into()),
                ..KeyStatus::default()
            }),
            fetch_state: ArcSwap::from_pointee(FetchState::default()),
            last_success_unix: AtomicU64::new(0),
            refresh_interval: config.key_refresh_interval,
            max_backoff: config.key_retry_max_backoff,
            issuer_wait: Mutex::new(None),
            on_removal: std::sync::OnceLock::new(),
            metrics,
        }
    }

    /// Registers the callback for keys leaving the set (set once).
    pub fn on_key_removed(&self, hook: RemovalHook) {
        let _ = self.on_removal.set(hook);
    }

    pub fn status(&self) -> Arc<KeyStatus> {
        self.status.load_full()
    }

    pub fn is_ready(&self) -> bool {
        self.status.load().loaded
    }

    /// Unix time of the last successful fetch (0 = never).
    pub fn last_success_unix(&self) -> u64 {
        self.last_success_unix.load(Ordering::Relaxed)
    }

    /// Whether this kid is usable now (present, or within its grace period).
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Finds the key for `kid`, refetching once (coalesced, rate-limited) if it is unknown.
    pub async fn lookup(&self, kid: &str) -> KeyLookup {
        if let Some(entry) = self.keys.get(kid) {
            return KeyLookup::Found(entry.key);
        }
        if self.negative.contains_key(kid) {
            return self.miss();
        }
        // Every concurrent caller waits on the same refetch; within the cooldown the
        // cached unit is returned at once and nothing is fetched.
        self.refetch_gate
            .get_with((), async {
                let _ = self.refresh().await;
            })
            .await;
        if self.no_cooldown {
            self.refetch_gate.invalidate(&()).await;
        }
        if let Some(entry) = self.keys.get(kid) {
            return KeyLookup::Found(entry.key);
        }
        if self.is_ready() && !self.no_cooldown {
            self.negative.insert(kid.into(), ());
        }
        self.miss()
    }

    fn miss(&self) -> KeyLookup {
        if self.is_ready() {
            KeyLookup::Unknown
        } else {
            KeyLookup::Unavailable
        }
    }

    /// One discovery (if needed) + JWKS fetch; installs the keys on success. While the issuer's
    /// `Retry-After` wait runs, nothing is fetched and its answer is returned again.
    pub async fn refresh(&self) -> RefreshOutcome {
        if let Some(waiting) = self.pending_wait() {
            return waiting;
        }
        let span = crate::telemetry::spans::key_fetch_span();
        let result = self.try_refresh().instrument(span.clone()).await;
        let label = match &result {
            Ok(Some(_)) => "success",
            Ok(None) => "not_modified",
            Err(e) => e.kind(),
        };
        crate::telemetry::spans::record_key_fetch(&span, label);
        self.metrics
            .jwks_fetches
            .get_or_create(&ResultLabels { result: label })
            .inc();
        // The issuer's Retry-After, capped so a hostile value cannot stop refreshes for days.
        let rate_limited = result
            .as_ref()
            .err()
            .and_then(FetchError::retry_after)
            .map(|wait| wait.min(self.max_backoff));
        let was_waiting = self.set_wait(rate_limited.zip(result.as_ref().err().cloned()));
        match result {
            Ok(max_age) => {
                self.last_success_unix.store(unix_now(), Ordering::Relaxed);
                let was_failing = self.status.load().last_error.is_some();
                if was_failing {
                    // The installed set's size: moka's entry_count lags behind inserts.
                    tracing::info!(
                        keys = self.status.load().key_ids.len(),
                        "signing keys loaded; issuer reachable"
                    );
                }
                self.status.rcu(|s| KeyStatus {
                    last_error: None,
                    ..(**s).clone()
                });
                let next = max_age.flatten().map_or(self.refresh_interval, |age| {
                    age.clamp(MIN_MAX_AGE, MAX_MAX_AGE)
                        .min(self.refresh_interval)
                });
                RefreshOutcome {
                    next,
                    result: Ok(()),
                }
            }
            Err(error) => {
                let message = error.to_string();
                let previous = self.status.load().last_error.clone();
                if let Some(wait) = rate_limited {
                    if !was_waiting {
                        tracing::warn!(
                            error = %message,
                            wait_s = wait.as_secs(),
                            "the issuer asked to wait before the next key fetch; keeping the last good keys"
                        );
                    }
                } else if previous.as_deref() != Some(message.as_str()) {
                    if self.is_ready() {
                        tracing::warn!(error = %message, "key refresh failed; keeping the last good keys");
                    } else {
                        tracing::error!(error = %message, "cannot load signing keys; API requests get 503 until they arrive");
                    }
                }
                self.status.rcu(|s| KeyStatus {
                    last_error: Some(message.clone()),
                    ..(**s).clone()
                });
                if matches!(
                    error,
                    FetchError::IssuerMismatch { .. } | FetchError::BadMetadata { .. }
                ) {
                    // Rediscover next time: the metadata may be fixed.
                    self.fetch_state.rcu(|s| FetchState {
                        jwks_uri: None,
                        ..(**s).clone()
                    });
                }
                RefreshOutcome {
                    next: rate_limited.unwrap_or(Duration::ZERO),
                    result: Err(error),
                }
            }
        }
    }

    /// The issuer's answer again, while the wait it asked for has not passed.
    fn pending_wait(&self) -> Option<RefreshOutcome> {
        let wait = self
            .issuer_wait
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let left = wait
            .until
            .checked_duration_since(tokio::time::Instant::now())
            .filter(|left| !left.is_zero())?;
        Some(RefreshOutcome {
            next: left,
            result: Err(wait.error),
        })
    }

    /// Records the wait the issuer asked for (or clears it); returns whether one was recorded
    /// before, so the log says it once per episode.
    fn set_wait(&self, wait: Option<(Duration, FetchError)>) -> bool {
        let next = wait.map(|(wait, error)| IssuerWait {
            until: tokio::time::Instant::now() + wait,
            error,
        });
        let mut slot = self
            .issuer_wait
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *slot, next).is_some()
    }

    /// `Ok(Some(max_age))` when keys were installed or confirmed, `Ok(None)` for 304.
    async fn try_refresh(&self) -> Result<Option<Option<Duration>>, FetchError> {
        let state = self.fetch_state.load_full();
        let jwks_uri = match &state.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.fetcher.discover().await?;
                self.fetch_state.store(Arc::new(FetchState {
                    jwks_uri: Some(uri.clone()),
                    etag: None,
                }));
                self.status.rcu(|s| KeyStatus {
                    jwks_uri: Some(uri.clone()),
                    ..(**s).clone()
                });
                uri
            }
        };
        let etag = if self.is_ready() {
            self.fetch_state.load().etag.clone()
        } else {
            None
        };
        match self.fetcher.fetch_keys(&jwks_uri, etag.as_deref()).await? {
            JwksResponse::NotModified { max_age } => Ok(Some(max_age)),
            JwksResponse::Keys { set, etag, max_age } => {
                for skipped in &set.skipped {
                    tracing::warn!(jwks_uri = %jwks_uri, "{skipped}");
                }
                self.install(set.keys);
                self.fetch_state.store(Arc::new(FetchState {
                    jwks_uri: Some(jwks_uri),
                    etag,
                }));
                Ok(Some(max_age))
            }
        }
    }

    fn install(&self, fresh: Vec<Arc<VerifyKey>>) {
        let fresh_ids: Vec<Arc<str>> = fresh.iter().map(|k| k.kid.clone()).collect();
        let previous: Vec<Arc<str>> = self.status.load().key_ids.clone();
        for key in fresh {
            self.negative.invalidate(&*key.kid);
            self.keys.insert(
                key.kid.clone(),
                KeyEntry {
                    key,
                    removed: false,
                },
            );
        }
        for kid in previous.iter().filter(|kid| !fresh_ids.contains(kid)) {
            if let Some(entry) = self.keys.get(kid)
                && !entry.removed
            {
                tracing::info!(kid = %printable(kid), "signing key left the key set; usable during the grace period");
                self.keys.insert(
                    kid.clone(),
                    KeyEntry {
                        removed: true,
                        ..entry
                    },
                );
                if let Some(hook) = self.on_removal.get() {
                    hook(kid);
                }
            }
        }
        let added: Vec<&Arc<str>> = fresh_ids
            .iter()
            .filter(|kid| !previous.contains(kid))
            .collect();
        if !added.is_empty() && !previous.is_empty() {
            tracing::info!(kids = ?added.iter().map(|k| printable(k)).collect::<Vec<_>>(), "new signing keys loaded");
        }
        self.metrics.jwks_keys.set(fresh_ids.len() as i64);
        self.status.rcu(|s| KeyStatus {
            loaded: true,
            key_ids: fresh_ids.clone(),
            ..(**s).clone()
        });
    }

    /// Runs forever after the warm-up attempt `first`: retries with capped exponential
    /// backoff (or the issuer's `Retry-After`, whichever is longer) while failing, then
    /// refreshes periodically with jitter.
    pub async fn run_refresh_loop(self: Arc<Self>, first: RefreshOutcome) {
        let mut backoff = INITIAL_BACKOFF;
        let mut outcome = first;
        loop {
            let delay = match outcome.result {
                Ok(()) => {
                    backoff = INITIAL_BACKOFF;
                    jitter(outcome.next)
                }
                Err(_) => {
                    // Never sooner than the issuer's Retry-After (already capped).
                    let delay = backoff.max(outcome.next);
                    backoff = (backoff * 2).min(self.max_backoff);
                    delay
                }
            };
            tokio::time::sleep(delay).await;
            outcome = self.refresh().await;
        }
    }
}

/// Up to 10% earlier, so a fleet of gateways does not refresh in lock-step.
fn jitter(delay: Duration) -> Duration {
    let fraction: f64 = rand::rng().random_range(0.0..0.1);
    delay.mul_f64(1.0 - fraction)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
