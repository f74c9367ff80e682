//! Metrics, access logs, request ids, and `halo-gateway explain`.

use halo_gateway::dev::issuer::Issuer;
use serde_json::json;

use crate::support::process::{Output, ServeProcess};
use crate::support::{
    TestEnv, access_events, client, env_for, now, run_binary, sample, send_bearer, start_issuer,
    start_stub,
};

#[tokio::test]
async fn metrics_count_a_scripted_mix_of_requests() {
    let env = TestEnv::start().await;
    let user = env.token(None);
    let mut expired = env.claims();
    expired["exp"] = json!(now() - 3600);
    expired["iat"] = json!(now() - 7200);
    let expired = env.issuer.sign(&expired);
    assert_eq!(env.get("/api/v1/policies", Some(&user)).await.status(), 200);
    assert_eq!(env.get("/api/v1/policies", Some(&user)).await.status(), 200);
    assert_eq!(env.get("/api/v1/policies", None).await.status(), 401);
    assert_eq!(
        env.get("/api/v1/policies", Some(&expired)).await.status(),
        401
    );
    assert_eq!(
        env.send(reqwest::Method::POST, "/api/v1/license", Some(&user))
            .await
            .status(),
        403
    );
    assert_eq!(env.get("/api/health", None).await.status(), 200);
    assert_eq!(env.get("/whatever", Some(&user)).await.status(), 404);

    let text = env.scrape_metrics().await;
    let count = |series: &str| {
        sample(&text, series).unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
    };
    assert_eq!(
        count(r#"halo_gateway_requests_total{method="GET",route="policies",status="200"}"#),
        2.0
    );
    assert_eq!(
        count(r#"halo_gateway_requests_total{method="GET",route="policies",status="401"}"#),
        2.0
    );
    assert_eq!(
        count(r#"halo_gateway_requests_total{method="POST",route="license_write",status="403"}"#),
        1.0
    );
    assert_eq!(
        count(r#"halo_gateway_requests_total{method="GET",route="health",status="200"}"#),
        1.0
    );
    assert_eq!(
        count(r#"halo_gateway_requests_total{method="GET",route="other",status="404"}"#),
        1.0,
        "raw paths never become labels"
    );
    for (reason_series, expected) in [
        (r#"{decision="allow",reason="valid_token"}"#, 3.0),
        (r#"{decision="allow",reason="anonymous"}"#, 1.0),
        (r#"{decision="deny",reason="missing_token"}"#, 1.0),
        (r#"{decision="deny",reason="expired"}"#, 1.0),
        (r#"{decision="deny",reason="admin_role_missing"}"#, 1.0),
    ] {
        let series = format!("halo_gateway_auth_decisions_total{reason_series}");
        assert_eq!(count(&series), expected, "{series}");
    }
    assert_eq!(
        count(r#"halo_gateway_jwks_fetches_total{result="success"}"#),
        1.0
    );
    assert_eq!(count("halo_gateway_jwks_keys"), 1.0);
    assert!(count("halo_gateway_jwks_age_seconds") >= 0.0);
    assert_eq!(
        count("halo_gateway_signature_verifications_total"),
        2.0,
        "user token once, expired token once"
    );
    assert!(count("halo_gateway_token_cache_hits_total") >= 2.0);
    assert_eq!(count("halo_gateway_inflight_requests"), 0.0);
    assert!(
        count(r#"halo_gateway_request_duration_seconds_count{method="GET",route="policies"}"#)
            >= 4.0
    );
    assert_eq!(
        count(r#"halo_gateway_upstream_duration_seconds_count{method="GET",route="policies"}"#),
        2.0
    );
    assert!(count("halo_gateway_response_bytes_total") > 0.0);
    assert!(
        text.contains(r#"halo_gateway_build_info{version=""#),
        "{text}"
    );
}

#[tokio::test]
async fn upstream_errors_are_counted_by_kind() {
    let env = TestEnv::with_settings(&[("Gateway__UpstreamTimeout", "1")]).await;
    assert_eq!(
        env.get("/stub/slow?ms=2500", Some(&env.token(None)))
            .await
            .status(),
        504
    );
    let text = env.scrape_metrics().await;
    assert_eq!(
        sample(
            &text,
            r#"halo_gateway_upstream_errors_total{kind="timeout"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn request_ids_are_made_kept_forwarded_and_bounded() {
    let env = TestEnv::start().await;
    let token = env.token(None);
    let made = env.get("/api/v1/policies", Some(&token)).await;
    let id = made.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID is made: {id}");
    assert_eq!(
        env.upstream.last_request().expect("forwarded").headers["x-request-id"],
        id.as_str()
    );

    let auth = format!("Bearer {token}");
    let kept = env
        .raw(
            "GET",
            "/api/v1/policies",
            &[("authorization", &auth), ("x-request-id", "client-id-42")],
        )
        .await;
    assert_eq!(kept.headers["x-request-id"], "client-id-42");
    let long = "x".repeat(200);
    let replaced = env
        .raw(
            "GET",
            "/api/v1/policies",
            &[("authorization", &auth), ("x-request-id", &long)],
        )
        .await;
    assert_ne!(
        replaced.headers["x-request-id"],
        long.as_str(),
        "over-long ids are replaced"
    );
    assert_eq!(
        env.upstream.last_request().expect("forwarded").headers["x-request-id"],
        replaced.headers["x-request-id"]
    );
}

#[tokio::test]
async fn the_access_log_has_one_line_per_request_and_never_the_token() {
    let issuer = start_issuer().await;
    let upstream = start_stub().await;
    let vars = env_for(
        issuer.url(),
        &upstream.url(),
        &[("Gateway__LogFormat", "json")],
    );
    let gateway = ServeProcess::start(vars, Output::Captured).await;
    let http = client();
    let client_id = issuer.clients()[1].id.clone();
    let token = issuer.token_for(&issuer.clients()[1]);
    let base = gateway.base.clone();
    assert_eq!(
        send_bearer(
            &http,
            reqwest::Method::GET,
            format!("{base}/api/v1/policies"),
            &token
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        send_bearer(
            &http,
            reqwest::Method::POST,
            format!("{base}/api/v1/license"),
            &token
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        http.get(format!(
            "{base}/api/v1/policies?access_token={token}&client_secret=hunter2"
        ))
        .send()
        .await
        .expect("sent")
        .status(),
        400
    );
    let mut garbled = token.clone();
    garbled.push('x');
    assert_eq!(
        send_bearer(
            &http,
            reqwest::Method::GET,
            format!("{base}/api/v1/policies"),
            &garbled
        )
        .await
        .status(),
        401
    );
    // Stop it as Kubernetes does: SIGTERM, graceful drain, logs flushed.
    let output = gateway.stop().await;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    assert!(!log.contains(&token), "the token must never be logged");
    assert!(
        !log.contains(token.split('.').nth(1).expect("payload")),
        "not even the token's payload"
    );
    assert!(
        !log.contains("Bearer"),
        "no Authorization header value in the log"
    );
    assert!(!log.contains("hunter2"), "secret query values are redacted");
    let access = access_events(&log);
    assert_eq!(access.len(), 4, "one access event per request:\n{log}");
    let ok = &access[0];
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/api/v1/policies");
    assert_eq!(ok["client_id"], client_id.as_str());
    assert_eq!(ok["sub"], client_id.as_str());
    assert_eq!(ok["role"], "User");
    assert!(ok["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(ok["duration_ms"].is_number() && ok["upstream_ms"].is_number());
    assert!(ok["bytes_out"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(access[1]["deny_reason"], "admin_role_missing");
    assert_eq!(access[2]["deny_reason"], "invalid_request");
    assert_eq!(access[3]["deny_reason"], "bad_signature");
}

/// Runs `explain` against `issuer`; returns (exit code, output).
async fn explain(issuer: &Issuer, token: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["explain"];
    args.extend_from_slice(extra);
    args.push(token);
    run_binary(&args, env_for(issuer.url(), "http://127.0.0.1:9", &[])).await
}

#[tokio::test]
async fn explain_names_each_failure_with_its_fix_and_exit_code() {
    let issuer = start_issuer().await;
    let user = issuer.clients()[1].clone();
    let admin = issuer.clients()[0].clone();
    let base = issuer.claims_for(&user, &["halo.api"]);
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = base.clone();
        edit(&mut claims);
        issuer.sign(&claims)
    };

    let (code, out) = explain(&issuer, &issuer.token_for(&user), &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verdict: ACCEPTED"), "{out}");
    assert!(
        !out.contains(issuer.token_for(&user).rsplit('.').next().expect("sig")),
        "never the signature"
    );

    let expired = with(&|c| {
        c["exp"] = json!(now() - 7200);
        c["iat"] = json!(now() - 10_000);
    });
    let wrong_aud = with(&|c| c["aud"] = json!("api://other"));
    let issuer_url = issuer.url().to_owned();
    let slash = with(&|c| c["iss"] = json!(format!("{issuer_url}/")));
    let unknown = issuer.sign_with_header(
        &json!({ "alg": "RS256", "kid": "from-another-server" }),
        &base,
    );
    let org = issuer.sign_with_header(&json!({ "alg": "RS256", "kid": issuer.current_kid(), "typ": "application/okta-internal-at+jwt" }), &base);
    let dpop = with(&|c| c["cnf"] = json!({ "jkt": "abc" }));
    // Each refused token: exit code 1 and every expected phrase in the report.
    let refused: [(&str, &str, &[&str]); 7] = [
        (
            "expired",
            &expired,
            &["[FAIL] expiry", "request a new token"],
        ),
        (
            "audience",
            &wrong_aud,
            &["[FAIL] audience", "api://other", "api://halo"],
        ),
        ("issuer", &slash, &["[FAIL] issuer", "trailing slash"]),
        (
            "unknown kid",
            &unknown,
            &["[FAIL] signing key", "another authorization server"],
        ),
        ("org server", &org, &["custom authorization server"]),
        ("DPoP", &dpop, &["[FAIL] sender constraint", "DPoP"]),
        ("garbage", "garbage", &["[FAIL] token structure"]),
    ];
    for (case, token, phrases) in refused {
        let (code, out) = explain(&issuer, token, &[]).await;
        assert_eq!(code, 1, "{case}: {out}");
        assert!(phrases.iter().all(|p| out.contains(p)), "{case}: {out}");
    }

    let (code, out) = explain(
        &issuer,
        &issuer.token_for(&user),
        &["--route", "POST", "/api/v1/license"],
    )
    .await;
    assert_eq!(code, 1, "a User token cannot upload a license");
    assert!(
        out.contains("AdminRoleMissing") && out.contains("role claim"),
        "{out}"
    );
    let (code, out) = explain(
        &issuer,
        &issuer.token_for(&admin),
        &["--route", "POST", "/api/v1/license"],
    )
    .await;
    assert_eq!(code, 0, "{out}");

    let (code, out) = explain(&issuer, &issuer.token_for(&user), &["--show-claims"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("\"cid\""), "claims shown on request: {out}");
    let (_, out) = explain(&issuer, &issuer.token_for(&user), &[]).await;
    assert!(!out.contains("\"cid\""), "claims hidden by default");
}
