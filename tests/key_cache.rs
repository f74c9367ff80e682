//! The signing-key cache: discovery, rotation, single flight, cooldown, outages, faults, and
//! the verified-token cache. Fetch counts come from the embedded issuer's counters.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use halo_gateway::dev::issuer::{Issuer, IssuerOptions, JwksFault};
use serde_json::json;

use crate::support::{
    TestEnv, client, config_for, eventually, loopback, now, send_bearer, start_issuer, start_stub,
};

#[tokio::test]
async fn keys_are_discovered_from_openid_configuration_before_serving() {
    let env = TestEnv::start().await;
    assert_eq!(env.issuer.metadata_fetches(), 1);
    assert_eq!(
        env.issuer.jwks_fetches(),
        1,
        "warmed up before the first request"
    );
    let ready = env
        .http
        .get(env.admin_url("/readyz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 200);
    assert_eq!(
        env.get("/api/v1/policies", Some(&env.token(None)))
            .await
            .status(),
        200
    );
    assert_eq!(env.issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn oauth_authorization_server_metadata_is_the_fallback() {
    let options = IssuerOptions {
        openid_configuration: false,
        ..IssuerOptions::default()
    };
    let env = TestEnv::start_with(options, &[]).await;
    assert_eq!(
        env.issuer.metadata_fetches(),
        2,
        "openid-configuration 404, then the fallback"
    );
    assert_eq!(
        env.get("/api/v1/policies", Some(&env.token(None)))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_explicit_metadata_address_is_used() {
    let issuer = Issuer::start(
        loopback(),
        IssuerOptions {
            openid_configuration: false,
            ..IssuerOptions::default()
        },
    )
    .await
    .expect("issuer");
    let upstream = start_stub().await;
    let metadata = format!("{}/.well-known/oauth-authorization-server", issuer.url());
    let config = config_for(
        issuer.url(),
        &upstream.url(),
        &[(
            "Authentication__Schemes__Bearer__MetadataAddress",
            &metadata,
        )],
    );
    let gateway = halo_gateway::start(&config).await.expect("starts");
    assert!(gateway.keys.is_ready());
    assert_eq!(issuer.metadata_fetches(), 1);
}

#[tokio::test]
async fn issuer_mismatch_in_metadata_keeps_the_gateway_not_ready() {
    let issuer = start_issuer().await;
    let upstream = start_stub().await;
    let config = config_for(
        issuer.url(),
        &upstream.url(),
        &[(
            "Authentication__Schemes__Bearer__ValidIssuer",
            "https://other.example/oauth2/default",
        )],
    );
    let gateway = halo_gateway::start(&config).await.expect("starts");
    let ready = client()
        .get(format!("http://{}/readyz", gateway.admin_addr))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert!(
        body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("issuer mismatch"),
        "{body}"
    );
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_exactly_one_refetch() {
    let env = TestEnv::start().await;
    let old_token = env.token(None);
    assert_eq!(env.issuer.jwks_fetches(), 1);
    env.issuer.rotate(false);
    let new_token = env.token(None);
    assert_eq!(
        env.get("/api/v1/policies", Some(&new_token)).await.status(),
        200,
        "no 401 after a rotation"
    );
    assert_eq!(env.issuer.jwks_fetches(), 2, "exactly one extra fetch");
    assert_eq!(
        env.get("/api/v1/policies", Some(&new_token)).await.status(),
        200
    );
    assert_eq!(
        env.get("/api/v1/policies", Some(&old_token)).await.status(),
        200,
        "old key still published"
    );
    assert_eq!(env.issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_removed_key_stays_usable_for_the_grace_period_only() {
    let env = TestEnv::with_settings(&[
        ("Authentication__Schemes__Bearer__KeyGracePeriod", "2s"),
        ("Authentication__Schemes__Bearer__KeyRefetchCooldown", "0"),
    ])
    .await;
    let old_token = env.token(None);
    assert_eq!(
        env.get("/api/v1/policies", Some(&old_token)).await.status(),
        200
    );
    let verifications = env.gateway.metrics.signature_verifications.get();
    env.issuer.rotate(true);
    let new_token = env.token(None);
    assert_eq!(
        env.get("/api/v1/policies", Some(&new_token)).await.status(),
        200,
        "refetch picks up the new key"
    );
    // The old key left the set: its cached token was evicted, and it re-verifies during grace.
    assert_eq!(
        env.get("/api/v1/policies", Some(&old_token)).await.status(),
        200,
        "within the grace period"
    );
    assert_eq!(
        env.gateway.metrics.signature_verifications.get(),
        verifications + 2,
        "new token + re-verified old token"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        env.get("/api/v1/policies", Some(&old_token)).await.status(),
        401,
        "after the grace period"
    );
}

#[tokio::test]
async fn a_thousand_concurrent_requests_with_one_unknown_kid_cause_one_fetch() {
    let env = Arc::new(TestEnv::start().await);
    env.issuer.rotate(false);
    let token = Arc::new(env.token(None));
    let before = env.issuer.jwks_fetches();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let env = env.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            env.gateway.validator.validate(&token).await.is_ok()
        }));
    }
    for task in tasks {
        assert!(
            task.await.expect("task"),
            "every request decided with the fresh keys"
        );
    }
    assert_eq!(env.issuer.jwks_fetches() - before, 1);
}

#[tokio::test]
async fn a_flood_of_random_kids_within_the_cooldown_causes_at_most_one_fetch() {
    let env = TestEnv::start().await;
    let before = env.issuer.jwks_fetches();
    let claims = env.claims();
    let header = |kid: String| json!({ "alg": "RS256", "kid": kid });
    // One signature reused: the kid is what is looked up first.
    let template = env.issuer.sign_with_header(&header("x".into()), &claims);
    let (_, rest) = template.split_once('.').expect("jws");
    for i in 0..10_000 {
        let encoded = base64_url(&header(format!("random-{i}")).to_string());
        let token = format!("{encoded}.{rest}");
        let result = env.gateway.validator.validate(&token).await;
        assert_eq!(
            result.err().map(|e| e.reason),
            Some(halo_gateway::auth::DenyReason::UnknownKid)
        );
    }
    assert!(
        env.issuer.jwks_fetches() - before <= 1,
        "fetches: {}",
        env.issuer.jwks_fetches() - before
    );
    // And over HTTP, an unknown kid is a 401.
    let token = format!(
        "{}.{rest}",
        base64_url(&header("random-http".into()).to_string())
    );
    assert_eq!(
        env.get("/api/v1/policies", Some(&token)).await.status(),
        401
    );
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn issuer_down_at_start_then_up_becomes_ready_without_restart() {
    let issuer = start_issuer().await;
    let upstream = start_stub().await;
    issuer.stop();
    let gateway = halo_gateway::start(&config_for(issuer.url(), &upstream.url(), &[]))
        .await
        .expect("starts anyway");
    let token = issuer.token_for(&issuer.clients()[1]);
    let http = client();
    let url = format!("http://{}/api/v1/policies", gateway.public_addr);
    assert_eq!(
        send_bearer(&http, reqwest::Method::GET, &url, &token)
            .await
            .status(),
        503
    );
    issuer.resume().await.expect("issuer back");
    // The first retry is 1 s after start, the next 2 s later: ready within one backoff step.
    let keys = gateway.keys.clone();
    eventually(Duration::from_secs(5), || keys.is_ready()).await;
    assert_eq!(
        send_bearer(&http, reqwest::Method::GET, &url, &token)
            .await
            .status(),
        200
    );
    let ready = http
        .get(format!("http://{}/readyz", gateway.admin_addr))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn an_issuer_outage_after_start_fails_no_request() {
    let env =
        TestEnv::with_settings(&[("Authentication__Schemes__Bearer__KeyRefetchCooldown", "0")])
            .await;
    let token = env.token(None);
    env.issuer.stop();
    for _ in 0..50 {
        assert_eq!(
            env.get("/api/v1/policies", Some(&token)).await.status(),
            200
        );
        let refresh = env.gateway.keys.refresh().await;
        assert!(refresh.result.is_err(), "the issuer is down");
    }
    assert!(
        env.gateway.keys.is_ready(),
        "still ready on the last good keys"
    );
}

#[tokio::test]
async fn hostile_or_broken_key_responses_keep_the_old_keys() {
    let env = TestEnv::start().await;
    let token = env.token(None);
    for fault in [
        JwksFault::Html,
        JwksFault::Status(500),
        JwksFault::Oversized(5 * 1024 * 1024),
        JwksFault::RedirectLoop,
        JwksFault::EmptySet,
        JwksFault::Delay(Duration::from_secs(12)),
    ] {
        env.issuer.set_fault(fault.clone());
        let outcome = env.gateway.keys.refresh().await;
        assert!(
            outcome.result.is_err(),
            "{fault:?} must be a failed refresh"
        );
        assert_eq!(
            env.get("/api/v1/policies", Some(&token)).await.status(),
            200,
            "{fault:?} must not fail requests"
        );
        assert!(env.gateway.keys.is_ready());
    }
    env.issuer.set_fault(JwksFault::None);
    assert!(env.gateway.keys.refresh().await.result.is_ok());
}

#[tokio::test]
async fn cache_control_max_age_sets_the_next_refresh_and_etag_gets_304() {
    let options = IssuerOptions {
        jwks_max_age: Some(Duration::from_secs(120)),
        ..IssuerOptions::default()
    };
    let env = TestEnv::start_with(options, &[]).await;
    let outcome = env.gateway.keys.refresh().await;
    assert!(outcome.result.is_ok());
    assert_eq!(
        outcome.next,
        Duration::from_secs(120),
        "max-age=120 is sooner than the hourly interval"
    );
    assert_eq!(
        env.issuer.jwks_not_modified(),
        1,
        "the conditional request was answered 304"
    );
    assert_eq!(
        env.get("/api/v1/policies", Some(&env.token(None)))
            .await
            .status(),
        200,
        "304 kept the keys"
    );
}

#[tokio::test]
async fn max_age_is_clamped_to_at_least_a_minute() {
    let options = IssuerOptions {
        jwks_max_age: Some(Duration::from_secs(5)),
        ..IssuerOptions::default()
    };
    let env = TestEnv::start_with(options, &[]).await;
    assert_eq!(
        env.gateway.keys.refresh().await.next,
        Duration::from_secs(60)
    );
}

#[tokio::test]
async fn a_reused_token_is_verified_once_but_its_expiry_still_applies() {
    let env = TestEnv::with_settings(&[("Authentication__Schemes__Bearer__ClockSkew", "0")]).await;
    let token = env.token(None);
    let metrics = &env.gateway.metrics;
    assert_eq!(
        env.get("/api/v1/policies", Some(&token)).await.status(),
        200
    );
    let verified = metrics.signature_verifications.get();
    for _ in 0..5 {
        assert_eq!(
            env.get("/api/v1/policies", Some(&token)).await.status(),
            200
        );
    }
    assert_eq!(
        metrics.signature_verifications.get(),
        verified,
        "no further signature checks"
    );
    assert!(metrics.token_cache_hits.get() >= 5);

    // At least two whole seconds of validity whenever in a second the test starts (the
    // gateway's clock is not floored to the second), then wait until `exp` has passed.
    let expires_at = now() + 3;
    let mut claims = env.claims();
    claims["exp"] = json!(expires_at);
    let short = env.issuer.sign(&claims);
    assert_eq!(
        env.get("/api/v1/policies", Some(&short)).await.status(),
        200
    );
    let until_expired = UNIX_EPOCH + Duration::from_secs(expires_at) + Duration::from_millis(50);
    if let Ok(wait) = until_expired.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
    assert_eq!(
        env.get("/api/v1/policies", Some(&short)).await.status(),
        401,
        "an expired cached token is rejected"
    );
}

/// `halo_gateway_jwks_fetches_total{result="rate_limited"}` as the admin listener reports it.
async fn rate_limited_fetches(admin: std::net::SocketAddr) -> u64 {
    let text = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with("halo_gateway_jwks_fetches_total{result=\"rate_limited\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_issuer_answering_429_with_retry_after_is_not_asked_again_before_the_wait() {
    // No cooldown: without Retry-After, every unknown kid below would cause a fetch.
    let env =
        TestEnv::with_settings(&[("Authentication__Schemes__Bearer__KeyRefetchCooldown", "0")])
            .await;
    let old_token = env.token(None);
    env.issuer.set_fault(JwksFault::RateLimited {
        status: 429,
        retry_after: "6".into(),
    });
    env.issuer.rotate(false);
    let new_token = env.token(None);
    let asked = tokio::time::Instant::now();
    assert_eq!(
        env.get("/api/v1/policies", Some(&new_token)).await.status(),
        401,
        "the rotated key could not be fetched"
    );
    assert_eq!(env.issuer.jwks_fetches(), 2, "start-up + the refetch");
    assert_eq!(rate_limited_fetches(env.gateway.admin_addr).await, 1);
    env.issuer.set_fault(JwksFault::None);

    // Unknown-kid refetches and refreshes within the 6 s send nothing; the last good keys serve.
    while asked.elapsed() < Duration::from_millis(5500) {
        assert_eq!(
            env.get("/api/v1/policies", Some(&old_token)).await.status(),
            200
        );
        assert_eq!(
            env.get("/api/v1/policies", Some(&new_token)).await.status(),
            401
        );
        let refresh = env.gateway.keys.refresh().await;
        assert_eq!(refresh.result.err().map(|e| e.kind()), Some("rate_limited"));
        assert!(refresh.next <= Duration::from_secs(6), "{:?}", refresh.next);
        assert_eq!(env.issuer.jwks_fetches(), 2, "at {:?}", asked.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // After the wait, the next unknown kid refetches and the new key is accepted.
    let http = env.http.clone();
    let url = env.url("/api/v1/policies");
    let mut accepted = false;
    let deadline = asked + Duration::from_secs(15);
    while !accepted && tokio::time::Instant::now() < deadline {
        accepted = send_bearer(&http, reqwest::Method::GET, &url, &new_token)
            .await
            .status()
            == 200;
        if !accepted {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(accepted, "the new key is fetched once the wait has passed");
    assert!(asked.elapsed() >= Duration::from_secs(6));
    assert_eq!(
        env.issuer.jwks_fetches(),
        3,
        "exactly one fetch after the wait"
    );
    assert_eq!(rate_limited_fetches(env.gateway.admin_addr).await, 1);
}

#[tokio::test]
async fn a_rate_limited_start_up_retries_no_sooner_than_the_http_date_it_was_given() {
    let issuer = start_issuer().await;
    let upstream = start_stub().await;
    let asked = tokio::time::Instant::now();
    // An HTTP-date 4 s ahead (whole seconds): at least 3 s from `asked`, where the gateway's
    // own back-off would have retried after 1 s and 2 s more.
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(4));
    issuer.set_metadata_fault(JwksFault::RateLimited {
        status: 503,
        retry_after: date,
    });
    let gateway = halo_gateway::start(&config_for(issuer.url(), &upstream.url(), &[]))
        .await
        .expect("starts anyway");
    assert!(!gateway.keys.is_ready());
    assert_eq!(issuer.metadata_fetches(), 1);
    assert_eq!(rate_limited_fetches(gateway.admin_addr).await, 1);
    issuer.set_metadata_fault(JwksFault::None);
    let keys = gateway.keys.clone();
    eventually(Duration::from_secs(15), || keys.is_ready()).await;
    assert!(
        asked.elapsed() >= Duration::from_secs(3),
        "retried after {:?}",
        asked.elapsed()
    );
    assert_eq!(issuer.metadata_fetches(), 2, "one retry, after the wait");
}

#[tokio::test]
async fn a_hostile_retry_after_is_capped_at_key_retry_max_backoff() {
    let env =
        TestEnv::with_settings(&[("Authentication__Schemes__Bearer__KeyRetryMaxBackoff", "2s")])
            .await;
    env.issuer.set_fault(JwksFault::RateLimited {
        status: 429,
        retry_after: "31536000".into(),
    });
    let outcome = env.gateway.keys.refresh().await;
    assert_eq!(outcome.result.err().map(|e| e.kind()), Some("rate_limited"));
    assert_eq!(outcome.next, Duration::from_secs(2), "a year, capped");
    let fetches = env.issuer.jwks_fetches();
    let again = env.gateway.keys.refresh().await;
    assert!(again.next <= Duration::from_secs(2));
    assert_eq!(
        env.issuer.jwks_fetches(),
        fetches,
        "still waiting: no fetch"
    );
    env.issuer.set_fault(JwksFault::None);
    let keys = env.gateway.keys.clone();
    let recovered = async {
        while keys.refresh().await.result.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), recovered)
        .await
        .expect("fetches again once the capped wait has passed");
    assert!(env.gateway.keys.is_ready());
}
