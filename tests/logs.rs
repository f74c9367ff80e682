//! Log-output tests, in their own test binary. Each sets its subscriber as the thread's default
//! (`set_default`, not process-wide) and runs on a single-threaded runtime, so every task the
//! gateway spawns logs into it. A shared test process could not give them that: tracing caches
//! each callsite's interest globally, so a callsite other test threads reached first, with no
//! subscriber, could stay disabled for this one.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;

use halo_gateway::dev::issuer::JwksFault;

use crate::support::TestEnv;

/// Collects formatted log output in memory.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

// One thread, so every task the gateway spawns logs into this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn failing_refreshes_log_once_per_state_change_not_per_attempt() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let env = TestEnv::start().await;
    let token = env.token(None);
    env.issuer.set_fault(JwksFault::Status(503));
    for _ in 0..5 {
        assert!(env.gateway.keys.refresh().await.result.is_err());
        assert_eq!(
            env.get("/api/v1/policies", Some(&token)).await.status(),
            200
        );
    }
    env.issuer.set_fault(JwksFault::Html);
    for _ in 0..3 {
        assert!(env.gateway.keys.refresh().await.result.is_err());
    }
    env.issuer.set_fault(JwksFault::None);
    for _ in 0..3 {
        assert!(env.gateway.keys.refresh().await.result.is_ok());
    }
    let log = captured.text();
    let failures = log
        .lines()
        .filter(|l| l.contains("key refresh failed"))
        .count();
    assert_eq!(failures, 2, "one line for 503, one for HTML:\n{log}");
    let recoveries = log
        .lines()
        .filter(|l| l.contains("signing keys loaded"))
        .count();
    assert_eq!(
        recoveries, 2,
        "one line for the first load, one for the recovery:\n{log}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_rate_limited_issuer_is_logged_once_with_its_wait_and_the_key_count_is_real() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let issuer = support::start_issuer().await;
    issuer.rotate(false);
    let upstream = support::start_stub().await;
    let gateway = halo_gateway::start(&support::config_for(issuer.url(), &upstream.url(), &[]))
        .await
        .expect("starts");
    let loaded: Vec<String> = captured
        .text()
        .lines()
        .filter(|l| l.contains("signing keys loaded; issuer reachable"))
        .map(str::to_owned)
        .collect();
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    assert!(
        loaded[0].contains("keys=2"),
        "two published keys: {loaded:?}"
    );

    issuer.set_fault(JwksFault::RateLimited {
        status: 429,
        retry_after: "1".into(),
    });
    let keys = &gateway.keys;
    assert!(keys.refresh().await.result.is_err());
    let after_first = issuer.jwks_fetches();
    // Skipped attempts during the wait, then a second 429 once it has passed: one episode.
    while issuer.jwks_fetches() == after_first {
        assert!(keys.refresh().await.result.is_err());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let log = captured.text();
    let asked: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("the issuer asked to wait"))
        .collect();
    assert_eq!(asked.len(), 1, "{log}");
    assert!(asked[0].contains("wait_s=1"), "{}", asked[0]);
    assert!(asked[0].contains("HTTP 429"), "{}", asked[0]);
    assert!(!log.contains("key refresh failed"), "{log}");
}
