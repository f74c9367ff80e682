//! halo-gateway: a reverse proxy in front of Glasswall Halo's REST API that validates Okta
//! bearer tokens and enforces Halo's roles.
//!
//! ```text
//! client ──► public listener (server.rs: header timeout, limits (431 with a JSON body:
//!            head_errors.rs), graceful shutdown)
//!            └► middleware/: the tower stack, ordered in middleware::public_stack
//!               sensitive headers ► request id ► span ► access log ► request checks
//!               └► auth/ (AuthLayer): route policy ► bearer token ► validate (keys from JWKS) ► role
//!                  └► body limit ► proxy/ (ProxyService): rewrite headers ► stream ► Halo
//! client ◄── response streamed back untouched (hop-by-hop headers removed), access log at end
//!
//! admin listener (health.rs): /healthz /readyz /metrics
//! http/: helpers below both auth and proxy (normalized path, safe text, JSON errors, bodies)
//! dev/: the embedded Okta-like issuer and stub Halo used by `halo-gateway dev` and the tests
//! token/: `halo-gateway token`, the client-credentials token command for Halo API clients
//! ```

pub mod auth;
pub mod cli;
pub mod config;
pub mod dev;
mod error;
pub mod explain;
pub(crate) mod head_errors;
pub(crate) mod health;
pub mod http;
pub mod metrics;
pub mod middleware;
pub mod proxy;
pub mod ratelimit;
pub mod redis;
pub mod server;
pub mod telemetry;
pub mod token;

pub use config::Config;
pub use server::{RunningGateway, StartError, start};
