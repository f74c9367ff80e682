//! Integration tests: real sockets on 127.0.0.1, the embedded issuer and stub Halo API (the
//! same code as `halo-gateway dev`), tokens minted per test from visible claims.

// Test helpers panic on setup failure by design.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

mod cli;
mod dev_walkthrough;
mod dpop;
mod early_answers;
mod hardening;
mod key_cache;
mod monitoring;
mod observability;
mod proxying;
mod rate_limits;
mod responses;
mod route_policy;
mod scopes;
mod stack;
mod token;
mod traces;
