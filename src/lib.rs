//! halo-gateway: a reverse proxy in front of Glasswall Halo's REST API that validates Okta
//! bearer tokens and enforces Halo's roles.
//!
//! ```text
//! client ──► public listener (server.rs: header timeout, limits, graceful shutdown)
//!            └► front.rs: sensitive headers ► request id ► trace span
//!               └► handler.rs: method/Host/path checks
//!                  └► auth/: route policy ► bearer token ► validate (keys from JWKS) ► role
//!                     └► proxy/: rewrite headers ► stream body ► Halo upstream
//! client ◄── response streamed back untouched (hop-by-hop headers removed), access log at end
//!
//! admin listener (health.rs): /healthz /readyz /metrics
//! dev/: the embedded Okta-like issuer and stub Halo used by `halo-gateway dev` and the tests
//! ```

pub mod auth;
pub mod cli;
pub mod config;
pub mod dev;
pub mod explain;
pub mod front;
pub mod handler;
pub mod health;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod telemetry;

pub use config::Config;
pub use server::{RunningGateway, StartError, start};

/// The git commit this binary was built from.
pub const GIT_SHA: &str = env!("HALO_GATEWAY_GIT_SHA");

/// An error and its `source()` chain on one line (`a: b: c`), skipping a source whose text the
/// line already contains (reqwest and hyper often repeat their cause in their own message).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
