//! What the layers of one exchange learn for the access log and the metrics, written by the
//! layer that knows it and read by the access-log layer when the response ends.
//!
//! The access-log layer puts an [`Exchange`] in the request's extensions; inner layers record
//! into it when it is there and skip it when it is not (the auth layer wrapping another app).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{Method, Request};

use crate::metrics::RouteSeries;

/// Every value of the `method` label ([`method_label`]), `OTHER` last.
pub const METHOD_LABELS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER",
];

/// Route label of a request no rule matched (or that never reached the route policy).
pub const UNMATCHED_ROUTE: &str = "other";

/// The peer of the connection a request came on, set per connection by the server.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Notes about one exchange; each is written at most once.
#[derive(Debug, Default)]
pub struct Exchange {
    route: OnceLock<Arc<RouteSeries>>,
    path: OnceLock<Arc<str>>,
    principal: OnceLock<Arc<dyn Principal>>,
    deny_reason: OnceLock<&'static str>,
    refusal: OnceLock<Refusal>,
    dpop_jkt: OnceLock<String>,
    dpop_failed_check: OnceLock<&'static str>,
    limited_by: OnceLock<&'static str>,
    upstream: OnceLock<Duration>,
    bytes_in: AtomicU64,
}

/// Who sent an accepted request, as the access log names them (never the token).
pub trait Principal: Send + Sync + std::fmt::Debug {
    fn client_id(&self) -> Option<&str>;
    fn subject(&self) -> &str;
    /// Role names, each once.
    fn roles(&self) -> Vec<&str>;
    /// Which configured mappings granted roles (`Admin=RoleMappings__0`), if any did.
    fn granted_by(&self) -> Option<String> {
        None
    }
}

/// What the access log says about a valid token that was refused (403): the token's client id
/// and the required scopes it was not granted. Never the token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusal {
    pub client_id: Option<String>,
    pub missing_scopes: Vec<String>,
}

/// The shared notes of a request, if the access-log layer is in the stack.
pub fn exchange<B>(request: &Request<B>) -> Option<&Arc<Exchange>> {
    request.extensions().get::<Arc<Exchange>>()
}

impl Exchange {
    /// The matched route, as the series its metrics go to (which also name it).
    pub fn set_route(&self, route: Arc<RouteSeries>) {
        let _ = self.route.set(route);
    }

    pub fn set_path(&self, path: Arc<str>) {
        let _ = self.path.set(path);
    }

    pub fn set_principal(&self, principal: Arc<dyn Principal>) {
        let _ = self.principal.set(principal);
    }

    pub fn set_deny_reason(&self, reason: &'static str) {
        let _ = self.deny_reason.set(reason);
    }

    pub fn set_refusal(&self, refusal: Refusal) {
        let _ = self.refusal.set(refusal);
    }

    /// The DPoP proof's key thumbprint and, on refusal, the proof check that failed.
    pub fn set_dpop(&self, jkt: Option<&str>, failed_check: Option<&'static str>) {
        if let Some(jkt) = jkt {
            let _ = self.dpop_jkt.set(jkt.to_owned());
        }
        if let Some(check) = failed_check {
            let _ = self.dpop_failed_check.set(check);
        }
    }

    /// The limit (`ip`, `client`, `rule`, `concurrency`) that refused the request.
    pub fn set_limited_by(&self, limit: &'static str) {
        let _ = self.limited_by.set(limit);
    }

    pub fn set_upstream_time(&self, time: Duration) {
        let _ = self.upstream.set(time);
    }

    pub fn add_bytes_in(&self, bytes: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The matched route's label; `None` until the policy has run.
    pub fn route(&self) -> Option<&Arc<str>> {
        self.route.get().map(|series| series.route())
    }

    /// The matched route's metric series; `None` until the policy has run.
    pub fn route_series(&self) -> Option<&Arc<RouteSeries>> {
        self.route.get()
    }

    pub fn path(&self) -> Option<&str> {
        self.path.get().map(AsRef::as_ref)
    }

    pub fn principal(&self) -> Option<&dyn Principal> {
        self.principal.get().map(Arc::as_ref)
    }

    pub fn deny_reason(&self) -> Option<&'static str> {
        self.deny_reason.get().copied()
    }

    pub fn refusal(&self) -> Option<&Refusal> {
        self.refusal.get()
    }

    pub fn dpop_jkt(&self) -> Option<&str> {
        self.dpop_jkt.get().map(String::as_str)
    }

    pub fn dpop_failed_check(&self) -> Option<&'static str> {
        self.dpop_failed_check.get().copied()
    }

    pub fn limited_by(&self) -> Option<&'static str> {
        self.limited_by.get().copied()
    }

    pub fn upstream_time(&self) -> Option<Duration> {
        self.upstream.get().copied()
    }

    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }
}

/// The bounded `method` label of metrics and logs.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
