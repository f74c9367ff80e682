//! Every row of the responses table in docs/operating.md, over real sockets.

use serde_json::{Value, json};

use crate::support::{TestEnv, challenge, config_for, now, start_issuer, start_stub};

async fn body(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

#[tokio::test]
async fn missing_token_gets_401_with_a_bare_bearer_challenge() {
    let env = TestEnv::start().await;
    let response = env.get("/api/v1/policies", None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(challenge(&response), "Bearer");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(body(response).await["error"], "missing_token");
    assert!(env.upstream.requests().is_empty(), "nothing reaches Halo");
}

#[tokio::test]
async fn valid_token_is_forwarded_and_halo_answer_returned() {
    let env = TestEnv::start().await;
    let response = env.get("/api/v1/policies", Some(&env.token(None))).await;
    assert_eq!(response.status(), 200);
    let json = body(response).await;
    assert_eq!(json["policies"][0]["name"], "default");
    assert_eq!(env.upstream.requests().len(), 1);
}

/// Asserts a 401 `invalid_token` whose description contains `needle`.
async fn assert_invalid_token(env: &TestEnv, token: &str, needle: &str) {
    let response = env.get("/api/v1/policies", Some(token)).await;
    assert_eq!(response.status(), 401, "expected 401 for '{needle}'");
    let www = challenge(&response);
    assert!(
        www.starts_with("Bearer error=\"invalid_token\", error_description=\""),
        "{www}"
    );
    assert!(
        www.contains(needle),
        "challenge '{www}' should mention '{needle}'"
    );
    assert!(!www.contains(token), "the token must never be echoed");
    let json = body(response).await;
    assert_eq!(json["error"], "invalid_token");
    assert!(
        json["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains(needle)
    );
}

#[tokio::test]
async fn each_invalid_token_gets_401_naming_the_failed_check() {
    let env = TestEnv::start().await;
    assert_invalid_token(&env, "not-a-jwt", "malformed").await;
    assert_invalid_token(&env, "a.b.c", "not base64url").await;

    let good = env.token(None);
    let (message, signature) = good.rsplit_once('.').expect("jws");
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    assert_invalid_token(
        &env,
        &format!("{message}.{flipped}{}", &signature[1..]),
        "signature does not verify",
    )
    .await;

    let mut expired = env.claims();
    expired["exp"] = json!(now() - 3600);
    expired["iat"] = json!(now() - 7200);
    assert_invalid_token(&env, &env.issuer.sign(&expired), "expired").await;

    let mut early = env.claims();
    early["nbf"] = json!(now() + 3600);
    assert_invalid_token(&env, &env.issuer.sign(&early), "not valid for another").await;

    let mut wrong_iss = env.claims();
    wrong_iss["iss"] = json!("https://evil.example/oauth2/default");
    assert_invalid_token(
        &env,
        &env.issuer.sign(&wrong_iss),
        "the issuer 'https://evil.example/oauth2/default' is not accepted",
    )
    .await;

    let mut wrong_aud = env.claims();
    wrong_aud["aud"] = json!("api://other");
    assert_invalid_token(
        &env,
        &env.issuer.sign(&wrong_aud),
        "the audience 'api://other' is not accepted",
    )
    .await;

    let hs256 = env.issuer.sign_with_header(
        &json!({ "alg": "HS256", "kid": env.issuer.current_kid() }),
        &env.claims(),
    );
    assert_invalid_token(&env, &hs256, "algorithm 'HS256' is not accepted").await;
    let none = env.issuer.sign_with_header(
        &json!({ "alg": "none", "kid": env.issuer.current_kid() }),
        &env.claims(),
    );
    assert_invalid_token(&env, &none, "algorithm 'none' is not accepted").await;

    let unknown = env.issuer.sign_with_header(
        &json!({ "alg": "RS256", "kid": "no-such-key" }),
        &env.claims(),
    );
    assert_invalid_token(
        &env,
        &unknown,
        "'no-such-key' is not in the issuer's key set",
    )
    .await;

    let okta_org = env.issuer.sign_with_header(
        &json!({ "alg": "RS256", "kid": env.issuer.current_kid(), "typ": "application/okta-internal-at+jwt" }),
        &env.claims(),
    );
    assert_invalid_token(&env, &okta_org, "Okta org authorization server").await;
    assert!(env.upstream.requests().is_empty());
}

#[tokio::test]
async fn token_in_query_form_or_two_headers_is_an_invalid_request() {
    let env = TestEnv::start().await;
    let token = env.token(None);

    let response = env
        .get(&format!("/api/v1/policies?access_token={token}"), None)
        .await;
    assert_eq!(response.status(), 400);
    assert!(challenge(&response).starts_with("Bearer error=\"invalid_request\""));

    let response = env
        .http
        .post(env.url("/api/v1/policies/x"))
        .form(&[("access_token", token.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    assert!(challenge(&response).starts_with("Bearer error=\"invalid_request\""));

    let auth = format!("Bearer {token}");
    let raw = env
        .raw(
            "GET",
            "/api/v1/policies",
            &[("authorization", &auth), ("authorization", &auth)],
        )
        .await;
    assert_eq!(raw.status, 400);
    assert_eq!(raw.json()["error"], "invalid_request");

    let raw = env
        .raw("GET", "/api/v1/policies", &[("authorization", "Bearer ")])
        .await;
    assert_eq!(raw.status, 400);
    assert!(env.upstream.requests().is_empty());
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_tolerates_extra_spaces() {
    let env = TestEnv::start().await;
    let token = env.token(None);
    for header in [format!("bearer {token}"), format!("BEARER    {token}")] {
        let raw = env
            .raw("GET", "/api/v1/policies", &[("authorization", &header)])
            .await;
        assert_eq!(raw.status, 200, "{header:.12}");
    }
}

#[tokio::test]
async fn admin_route_without_admin_role_is_403_admin_role_missing() {
    let env = TestEnv::start().await;
    let response = env
        .http
        .post(env.url("/api/v1/license"))
        .bearer_auth(env.token(None))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 403);
    assert!(challenge(&response).starts_with("Bearer error=\"insufficient_scope\""));
    assert_eq!(body(response).await["error"], "AdminRoleMissing");
    assert!(env.upstream.requests().is_empty());
}

#[tokio::test]
async fn keys_unavailable_is_503_with_retry_after_never_401() {
    let issuer = start_issuer().await;
    let upstream = start_stub().await;
    issuer.stop();
    let gateway = halo_gateway::start(&config_for(issuer.url(), &upstream.url(), &[]))
        .await
        .expect("starts although the issuer is down");
    let token = issuer.token_for(&issuer.clients()[0]);
    let response = crate::support::client()
        .get(format!("http://{}/api/v1/policies", gateway.public_addr))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(body(response).await["error"], "temporarily_unavailable");
    let ready = crate::support::client()
        .get(format!("http://{}/readyz", gateway.admin_addr))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 503);
    let reason = body(ready).await["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("issuer unreachable"), "{reason}");
}

#[tokio::test]
async fn upstream_refusing_connections_is_502() {
    let issuer = start_issuer().await;
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let gateway = halo_gateway::start(&config_for(issuer.url(), &format!("http://{closed}"), &[]))
        .await
        .expect("starts");
    let response = crate::support::client()
        .get(format!("http://{}/api/v1/policies", gateway.public_addr))
        .bearer_auth(issuer.token_for(&issuer.clients()[1]))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 502);
    assert_eq!(body(response).await["error"], "upstream_unavailable");
}

#[tokio::test]
async fn slow_upstream_is_504_after_the_upstream_timeout() {
    let env = TestEnv::with_settings(&[("Gateway__UpstreamTimeout", "1")]).await;
    let response = env.get("/stub/slow?ms=3000", Some(&env.token(None))).await;
    assert_eq!(response.status(), 504);
    assert_eq!(body(response).await["error"], "upstream_timeout");
    let fast = env.get("/stub/slow?ms=10", Some(&env.token(None))).await;
    assert_eq!(fast.status(), 200);
}

#[tokio::test]
async fn halo_error_statuses_and_bodies_pass_through_untouched() {
    let env = TestEnv::start().await;
    for code in [400u16, 415, 422, 500] {
        let response = env
            .get(&format!("/stub/status/{code}"), Some(&env.token(None)))
            .await;
        assert_eq!(response.status().as_u16(), code);
        assert_eq!(body(response).await["error"], "stub error body");
    }
}
