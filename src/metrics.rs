//! Prometheus metrics, one registry per gateway instance (so in-process tests and `dev` never
//! share counters), served as text exposition at `GET /metrics` on the admin listener.
//!
//! Every label is bounded: `route` is a policy rule name or `other`, `reason` a fixed set,
//! `method` a standard method or `OTHER`; never a raw path, token or client-supplied text.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::http::exchange::{METHOD_LABELS, UNMATCHED_ROUTE};

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
    /// Every route label's series, one entry per name (filled at start-up).
    routes: Mutex<Vec<Arc<RouteSeries>>>,
    unmatched: Arc<RouteSeries>,
    allowed_anonymous: OnceLock<Counter>,
    allowed_with_token: OnceLock<Counter>,
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
        let unmatched = Arc::new(RouteSeries::new(
            Arc::from(UNMATCHED_ROUTE),
            &requests,
            &request_duration,
            &upstream_duration,
        ));
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
            routes: Mutex::new(vec![unmatched.clone()]),
            unmatched,
            allowed_anonymous: OnceLock::new(),
            allowed_with_token: OnceLock::new(),
        }
    }

    /// The series of route label `route`, one shared handle per name; call at start-up, once
    /// per route rule.
    pub fn route_series(&self, route: &Arc<str>) -> Arc<RouteSeries> {
        let mut routes = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = routes.iter().find(|series| series.route == *route) {
            return known.clone();
        }
        let series = Arc::new(RouteSeries::new(
            route.clone(),
            &self.requests,
            &self.request_duration,
            &self.upstream_duration,
        ));
        routes.push(series.clone());
        series
    }

    /// The series of requests no route rule was matched for (`route="other"`).
    pub fn unmatched(&self) -> &Arc<RouteSeries> {
        &self.unmatched
    }

    /// Counts one accepted request (`decision="allow"`), through a handle resolved once.
    pub fn allowed(&self, anonymous: bool) {
        let (slot, reason) = if anonymous {
            (&self.allowed_anonymous, "anonymous")
        } else {
            (&self.allowed_with_token, "valid_token")
        };
        slot.get_or_init(|| {
            self.auth_decisions
                .get_or_create(&DecisionLabels {
                    decision: "allow",
                    reason,
                })
                .clone()
        })
        .inc();
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

/// Distinct statuses per route and method whose request counter is kept at hand; further ones
/// are looked up in the family each time (bounded memory whatever Halo answers).
const CACHED_STATUSES: usize = 8;

/// The per-request series of one route label, resolved once per route rule instead of by a
/// labelled look-up (hash and lock) on every request. Each series still comes into being on
/// first use, exactly as a look-up would create it, so the exposition is the same.
pub struct RouteSeries {
    route: Arc<str>,
    by_method: [MethodSeries; METHOD_LABELS.len()],
    requests: Family<RequestLabels, Counter>,
    request_duration: Seconds,
    upstream_duration: Seconds,
}

#[derive(Default)]
struct MethodSeries {
    request_duration: OnceLock<Histogram>,
    upstream_duration: OnceLock<Histogram>,
    statuses: [OnceLock<(u16, Counter)>; CACHED_STATUSES],
}

impl std::fmt::Debug for RouteSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSeries")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl RouteSeries {
    fn new(
        route: Arc<str>,
        requests: &Family<RequestLabels, Counter>,
        request_duration: &Seconds,
        upstream_duration: &Seconds,
    ) -> Self {
        Self {
            route,
            by_method: Default::default(),
            requests: requests.clone(),
            request_duration: request_duration.clone(),
            upstream_duration: upstream_duration.clone(),
        }
    }

    /// The `route` label.
    pub fn route(&self) -> &Arc<str> {
        &self.route
    }

    /// `request_duration_seconds{method, route}`.
    pub fn observe_request_duration(&self, method: &'static str, seconds: f64) {
        self.histogram(method, |m| &m.request_duration, &self.request_duration)
            .observe(seconds);
    }

    /// `upstream_duration_seconds{method, route}`.
    pub fn observe_upstream_duration(&self, method: &'static str, seconds: f64) {
        self.histogram(method, |m| &m.upstream_duration, &self.upstream_duration)
            .observe(seconds);
    }

    /// `requests_total{method, route, status}` + 1.
    pub fn count_request(&self, method: &'static str, status: u16) {
        let labels = || RequestLabels {
            method,
            route: self.route.clone(),
            status,
        };
        for slot in &self.by_method[method_slot(method)].statuses {
            let (cached, counter) =
                slot.get_or_init(|| (status, self.requests.get_or_create(&labels()).clone()));
            if *cached == status {
                counter.inc();
                return;
            }
        }
        self.requests.get_or_create(&labels()).inc();
    }

    fn histogram(
        &self,
        method: &'static str,
        slot: impl Fn(&MethodSeries) -> &OnceLock<Histogram>,
        family: &Seconds,
    ) -> &Histogram {
        slot(&self.by_method[method_slot(method)]).get_or_init(|| {
            family
                .get_or_create(&RouteLabels {
                    method,
                    route: self.route.clone(),
                })
                .clone()
        })
    }
}

/// Position of a `method` label in [`METHOD_LABELS`] (the last, `OTHER`, for anything else).
fn method_slot(method: &str) -> usize {
    METHOD_LABELS
        .iter()
        .position(|label| *label == method)
        .unwrap_or(METHOD_LABELS.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(metrics: &Metrics, prefix: &str) -> Vec<String> {
        metrics
            .render(None)
            .lines()
            .filter(|line| line.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn route_series_count_what_labelled_look_ups_count() {
        let cached = Metrics::new();
        let looked_up = Metrics::new();
        let policies: Arc<str> = Arc::from("policies");
        let series = cached.route_series(&policies);
        assert!(Arc::ptr_eq(&series, &cached.route_series(&policies)));
        assert!(sample(&cached, "halo_gateway_requests_total").is_empty());
        // More distinct statuses than are cached, twice each, on two methods.
        for status in (200..200 + CACHED_STATUSES as u16 + 3).chain(200..210) {
            for method in ["GET", "OTHER"] {
                series.count_request(method, status);
                series.observe_request_duration(method, 0.25);
                series.observe_upstream_duration(method, 0.125);
                let route = policies.clone();
                looked_up
                    .requests
                    .get_or_create(&RequestLabels {
                        method,
                        route: route.clone(),
                        status,
                    })
                    .inc();
                for family in [&looked_up.request_duration, &looked_up.upstream_duration] {
                    let seconds = if std::ptr::eq(family, &looked_up.request_duration) {
                        0.25
                    } else {
                        0.125
                    };
                    family
                        .get_or_create(&RouteLabels {
                            method,
                            route: route.clone(),
                        })
                        .observe(seconds);
                }
            }
        }
        cached.unmatched().count_request("POST", 401);
        looked_up
            .requests
            .get_or_create(&RequestLabels {
                method: "POST",
                route: Arc::from("other"),
                status: 401,
            })
            .inc();
        cached.allowed(false);
        cached.allowed(true);
        cached.allowed(false);
        looked_up.decision("allow", "valid_token");
        looked_up.decision("allow", "anonymous");
        looked_up.decision("allow", "valid_token");
        for prefix in [
            "halo_gateway_requests_total",
            "halo_gateway_request_duration_seconds",
            "halo_gateway_upstream_duration_seconds",
            "halo_gateway_auth_decisions_total",
        ] {
            let mut cached = sample(&cached, prefix);
            let mut looked_up = sample(&looked_up, prefix);
            cached.sort();
            looked_up.sort();
            assert!(!cached.is_empty(), "{prefix}");
            assert_eq!(cached, looked_up, "{prefix}");
        }
    }
}
