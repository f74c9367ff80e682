//! Prometheus metrics, one registry per gateway instance (so in-process tests and `dev` never
//! share counters), served as text exposition at `GET /metrics` on the admin listener.
//!
//! Every label is bounded: `route` is a policy rule name or `other`, `reason` a fixed set,
//! `method` a standard method or `OTHER`; never a raw path, token or client-supplied text.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The git commit this binary was built from (build.rs).
const GIT_SHA: &str = env!("HALO_GATEWAY_GIT_SHA");

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: Arc<str>,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub decision: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    git_sha: &'static str,
}

type Seconds = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~105 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

/// All of the gateway's metrics.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Seconds,
    pub upstream_duration: Seconds,
    pub auth_decisions: Family<DecisionLabels, Counter>,
    pub jwks_fetches: Family<ResultLabels, Counter>,
    pub jwks_keys: Gauge,
    jwks_age: Gauge<f64, AtomicU64>,
    pub token_cache_hits: Counter,
    pub token_cache_misses: Counter,
    pub signature_verifications: Counter,
    pub inflight: Gauge,
    pub upstream_errors: Family<KindLabels, Counter>,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub rate_limited: Family<LimitLabels, Counter>,
    pub ratelimit_backend_errors: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("halo_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by method, route rule and status",
            requests.clone(),
        );
        let request_duration: Seconds = Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Time from request to response headers",
            request_duration.clone(),
        );
        let upstream_duration: Seconds = Family::new_with_constructor(latency_histogram);
        registry.register(
            "upstream_duration_seconds",
            "Time to the upstream's response headers",
            upstream_duration.clone(),
        );
        let auth_decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "auth_decisions",
            "Authentication and authorization decisions",
            auth_decisions.clone(),
        );
        let jwks_fetches = Family::<ResultLabels, Counter>::default();
        registry.register(
            "jwks_fetches",
            "Metadata/JWKS fetches by result",
            jwks_fetches.clone(),
        );
        let jwks_keys = Gauge::default();
        registry.register(
            "jwks_keys",
            "Signing keys in the current key set",
            jwks_keys.clone(),
        );
        let jwks_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "jwks_age_seconds",
            "Seconds since the last successful key refresh (-1: never)",
            jwks_age.clone(),
        );
        let token_cache_hits = Counter::default();
        registry.register(
            "token_cache_hits",
            "Requests whose token was found in the verified-token cache",
            token_cache_hits.clone(),
        );
        let token_cache_misses = Counter::default();
        registry.register(
            "token_cache_misses",
            "Requests whose token had to be verified",
            token_cache_misses.clone(),
        );
        let signature_verifications = Counter::default();
        registry.register(
            "signature_verifications",
            "Token signature checks performed",
            signature_verifications.clone(),
        );
        let inflight = Gauge::default();
        registry.register(
            "inflight_requests",
            "Requests in progress",
            inflight.clone(),
        );
        let upstream_errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Failed upstream exchanges by kind",
            upstream_errors.clone(),
        );
        let bytes_in = Counter::default();
        registry.register(
            "request_bytes",
            "Request body bytes forwarded upstream",
            bytes_in.clone(),
        );
        let bytes_out = Counter::default();
        registry.register(
            "response_bytes",
            "Response body bytes sent to clients",
            bytes_out.clone(),
        );
        let rate_limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate or concurrency limit, by limit (client, rule, ip, concurrency)",
            rate_limited.clone(),
        );
        let ratelimit_backend_errors = Counter::default();
        registry.register(
            "ratelimit_backend_errors",
            "Rate-limit decisions made in this process because Redis was unreachable, slow or failing",
            ratelimit_backend_errors.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Build version and git commit",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                git_sha: GIT_SHA,
            })
            .set(1);
        Self {
            registry,
            requests,
            request_duration,
            upstream_duration,
            auth_decisions,
            jwks_fetches,
            jwks_keys,
            jwks_age,
            token_cache_hits,
            token_cache_misses,
            signature_verifications,
            inflight,
            upstream_errors,
            bytes_in,
            bytes_out,
            rate_limited,
            ratelimit_backend_errors,
        }
    }

    /// Counts one request refused by the `limit` limit.
    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// Counts one authentication decision.
    pub fn decision(&self, decision: &'static str, reason: &'static str) {
        self.auth_decisions
            .get_or_create(&DecisionLabels { decision, reason })
            .inc();
    }

    /// Text exposition; `key_age` is computed at scrape time.
    pub fn render(&self, key_age: Option<f64>) -> String {
        self.jwks_age.set(key_age.unwrap_or(-1.0));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
