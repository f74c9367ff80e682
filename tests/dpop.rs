//! DPoP (RFC 9449) at the gateway: proofs from RSA and EC keys accepted, each proof check
//! failing on its own with its response, the downgrade rule, challenges per mode, nonces
//! across two gateways, the replay cache in memory and in Redis, and what Halo receives.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use halo_gateway::auth::dpop::proof::token_hash;
use halo_gateway::server::RunningGateway;
use halo_gateway::token::dpop::thumbprint;
use halo_gateway::token::private_key::SigningKey;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::support::redis::RedisServer;
use crate::support::{TestEnv, challenge, client, config_for, now};

const MODE: &str = "Authentication__Schemes__Bearer__DPoP__Mode";
const PATH: &str = "/api/v1/policies";

/// A client's proof key and the algorithm it signs with.
struct ProofKey {
    key: SigningKey,
    alg: Algorithm,
}

impl ProofKey {
    fn ec() -> Self {
        Self {
            key: SigningKey::generate_ec().unwrap().0,
            alg: Algorithm::ES256,
        }
    }

    fn rsa(alg: Algorithm) -> Self {
        Self {
            key: SigningKey::generate_rsa().unwrap().0,
            alg,
        }
    }

    fn jkt(&self) -> String {
        thumbprint(&self.key).unwrap()
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": format!("{:?}", self.alg), "jwk": self.key.public_jwk})
    }

    /// Signs any header and claims, so tests can break one thing at a time.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.key.key, self.alg).expect("signs");
        format!("{message}.{signature}")
    }

    fn proof(&self, method: &str, url: &str, token: &str) -> String {
        self.sign(&self.header(), &claims(method, url, token))
    }
}

fn claims(method: &str, url: &str, token: &str) -> Value {
    json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "htm": method,
        "htu": url,
        "iat": now(),
        "ath": token_hash(token),
    })
}

/// A token bound to `key` (`cnf.jkt`), with `role` when given.
fn bound_token(env: &TestEnv, key: &ProofKey, role: Option<&str>) -> String {
    let mut claims = env.claims();
    claims["cnf"] = json!({"jkt": key.jkt()});
    if let Some(role) = role {
        claims["role"] = json!(role);
    }
    env.issuer.sign(&claims)
}

fn url_of(gateway: &RunningGateway, path: &str) -> String {
    format!("http://{}{path}", gateway.public_addr)
}

/// `METHOD url` with `Authorization: <scheme> token` and each given `DPoP` header.
async fn call(
    method: reqwest::Method,
    url: &str,
    authorization: Option<String>,
    proofs: &[&str],
) -> reqwest::Response {
    let mut request = client().request(method, url);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    for proof in proofs {
        request = request.header("dpop", *proof);
    }
    request.send().await.expect("sent")
}

async fn get_dpop(url: &str, token: &str, proof: &str) -> reqwest::Response {
    call(
        reqwest::Method::GET,
        url,
        Some(format!("DPoP {token}")),
        &[proof],
    )
    .await
}

/// Status, challenge and JSON `error` of a response.
async fn outcome(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let challenge = challenge(&response);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        challenge,
        body["error"].as_str().unwrap_or("").to_owned(),
    )
}

async fn allowed() -> TestEnv {
    TestEnv::with_settings(&[(MODE, "Allowed")]).await
}

#[tokio::test]
async fn rs256_ps256_and_es256_proofs_are_accepted_and_halo_gets_a_plain_bearer_request() {
    let env = allowed().await;
    let url = env.url(PATH);
    for key in [
        ProofKey::rsa(Algorithm::RS256),
        ProofKey::rsa(Algorithm::PS256),
        ProofKey::ec(),
    ] {
        let token = bound_token(&env, &key, None);
        let response = get_dpop(&url, &token, &key.proof("GET", &url, &token)).await;
        assert_eq!(response.status(), 200, "{:?}", key.alg);
        let seen = env.upstream.last_request().expect("forwarded");
        assert_eq!(seen.headers["authorization"], format!("Bearer {token}"));
        assert!(
            !seen.headers.contains_key("dpop"),
            "no DPoP header for Halo"
        );
    }
    // A plain bearer token still works in Allowed mode, and a stray DPoP header is dropped.
    let plain = env.token(None);
    let response = call(
        reqwest::Method::GET,
        &url,
        Some(format!("Bearer {plain}")),
        &["x.y.z"],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        !env.upstream
            .last_request()
            .unwrap()
            .headers
            .contains_key("dpop")
    );
}

#[tokio::test]
async fn each_proof_check_fails_on_its_own_with_invalid_dpop_proof() {
    let env = allowed().await;
    let url = env.url(PATH);
    let key = ProofKey::ec();
    let other = ProofKey::ec();
    let token = bound_token(&env, &key, None);
    let good_header = key.header();
    let good_claims = claims("GET", &url, &token);
    let edit_header = |f: &dyn Fn(&mut Value)| {
        let mut header = good_header.clone();
        f(&mut header);
        key.sign(&header, &good_claims)
    };
    let edit_claims = |f: &dyn Fn(&mut Value)| {
        let mut claims = good_claims.clone();
        f(&mut claims);
        key.sign(&good_header, &claims)
    };
    let rsa = ProofKey::rsa(Algorithm::RS256);
    let mut short_rsa = rsa.header();
    short_rsa["jwk"]["n"] = json!(URL_SAFE_NO_PAD.encode([0xC1u8; 128]));
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("no DPoP header", vec![], "no DPoP proof"),
        (
            "two DPoP headers",
            vec![
                key.proof("GET", &url, &token),
                key.proof("GET", &url, &token),
            ],
            "more than one DPoP header",
        ),
        (
            "over 8 KiB",
            vec![format!("{}.e30.", "a".repeat(8200))],
            "longer than 8192",
        ),
        ("not a JWS", vec!["abc".into()], "malformed"),
        (
            "typ JWT",
            vec![edit_header(&|h| h["typ"] = json!("JWT"))],
            "typ is not dpop+jwt",
        ),
        (
            "typ in capitals",
            vec![edit_header(&|h| h["typ"] = json!("DPOP+JWT"))],
            "typ is not dpop+jwt",
        ),
        (
            "alg HS256",
            vec![edit_header(&|h| h["alg"] = json!("HS256"))],
            "algorithm 'HS256' is not accepted",
        ),
        (
            "alg none",
            vec![edit_header(&|h| h["alg"] = json!("none"))],
            "is not accepted",
        ),
        (
            "no jwk",
            vec![edit_header(&|h| {
                h.as_object_mut().unwrap().remove("jwk");
            })],
            "no jwk",
        ),
        (
            "private jwk",
            vec![edit_header(&|h| h["jwk"]["d"] = json!("AAAA"))],
            "private member 'd'",
        ),
        (
            "oct jwk",
            vec![edit_header(&|h| {
                h["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0"})
            })],
            "private member 'k'",
        ),
        (
            "oct jwk without k",
            vec![edit_header(&|h| h["jwk"] = json!({"kty": "oct"}))],
            "symmetric (oct)",
        ),
        (
            "RSA under 2048 bits",
            vec![rsa.sign(&short_rsa, &good_claims)],
            "shorter than 2048 bits",
        ),
        (
            "another key's jwk",
            vec![edit_header(&|h| h["jwk"] = other.key.public_jwk.clone())],
            "signature does not verify",
        ),
        (
            "jti missing",
            vec![edit_claims(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            })],
            "no jti claim",
        ),
        (
            "jti over 256 bytes",
            vec![edit_claims(&|c| c["jti"] = json!("j".repeat(257)))],
            "longer than 256 bytes",
        ),
        (
            "htm lower case",
            vec![edit_claims(&|c| c["htm"] = json!("get"))],
            "is not the request method GET",
        ),
        (
            "htm POST",
            vec![edit_claims(&|c| c["htm"] = json!("POST"))],
            "is not the request method",
        ),
        (
            "htu other path",
            vec![edit_claims(&|c| {
                c["htu"] = json!(env.url("/api/v1/license"))
            })],
            "is not this request's URI",
        ),
        (
            "htu other host",
            vec![edit_claims(&|c| {
                c["htu"] = json!(format!("http://evil.example{PATH}"))
            })],
            "is not this request's URI",
        ),
        (
            "htu https",
            vec![edit_claims(&|c| {
                c["htu"] = json!(url.replace("http://", "https://"))
            })],
            "is not this request's URI",
        ),
        (
            "htu relative",
            vec![edit_claims(&|c| c["htu"] = json!(PATH))],
            "htu is not an absolute",
        ),
        (
            "iat too old",
            vec![edit_claims(&|c| c["iat"] = json!(now() - 120))],
            "s old",
        ),
        (
            "iat in the future",
            vec![edit_claims(&|c| c["iat"] = json!(now() + 60))],
            "in the future",
        ),
        (
            "iat i64::MIN",
            vec![edit_claims(&|c| c["iat"] = json!(i64::MIN))],
            "s old",
        ),
        (
            "iat u64::MAX",
            vec![edit_claims(&|c| c["iat"] = json!(u64::MAX))],
            "in the future",
        ),
        (
            "iat as text",
            vec![edit_claims(&|c| c["iat"] = json!(now().to_string()))],
            "iat is not a number",
        ),
        (
            "ath of another token",
            vec![edit_claims(&|c| c["ath"] = json!(token_hash("other")))],
            "ath is not the hash",
        ),
        (
            "ath missing",
            vec![edit_claims(&|c| {
                c.as_object_mut().unwrap().remove("ath");
            })],
            "no ath claim",
        ),
    ];
    for (name, proofs, phrase) in cases {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let (status, challenge, error) = outcome(
            call(
                reqwest::Method::GET,
                &url,
                Some(format!("DPoP {token}")),
                &proofs,
            )
            .await,
        )
        .await;
        assert_eq!(
            (status, error.as_str()),
            (401, "invalid_dpop_proof"),
            "{name}"
        );
        assert!(
            challenge.starts_with("DPoP error=\"invalid_dpop_proof\", error_description=\"")
                && challenge.contains(phrase)
                && challenge
                    .ends_with("algs=\"RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA\""),
            "{name}: {challenge}"
        );
    }
    assert_eq!(env.upstream.requests().len(), 0, "nothing reached Halo");
    // The untouched proof passes once, then is a replay.
    let proof = key.sign(&good_header, &good_claims);
    assert_eq!(get_dpop(&url, &token, &proof).await.status(), 200);
    let (status, challenge, error) = outcome(get_dpop(&url, &token, &proof).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_dpop_proof"));
    assert!(challenge.contains("already used"), "{challenge}");

    let metrics = env.scrape_metrics().await;
    for reason in ["invalid_dpop_proof", "dpop_replay"] {
        assert!(
            metrics.contains(&format!("decision=\"deny\",reason=\"{reason}\"")),
            "{reason} in:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn the_token_must_be_bound_to_the_proof_key() {
    let env = allowed().await;
    let url = env.url(PATH);
    let key = ProofKey::ec();
    let other = ProofKey::ec();
    let mut unbound = env.claims();
    unbound["cnf"] = json!({});
    let cases = [
        (
            "bound to another key",
            bound_token(&env, &other, None),
            "Invalid DPoP key binding",
        ),
        (
            "cnf without jkt",
            env.issuer.sign(&unbound),
            "not DPoP-bound",
        ),
        ("no cnf", env.token(None), "not DPoP-bound"),
    ];
    for (name, token, phrase) in cases {
        let (status, challenge, error) =
            outcome(get_dpop(&url, &token, &key.proof("GET", &url, &token)).await).await;
        assert_eq!((status, error.as_str()), (401, "invalid_token"), "{name}");
        assert!(
            challenge.starts_with("DPoP error=\"invalid_token\"") && challenge.contains(phrase),
            "{name}: {challenge}"
        );
    }
    // An invalid token under a valid proof: the usual token refusal, with the DPoP challenge.
    let mut expired = env.claims();
    expired["cnf"] = json!({"jkt": key.jkt()});
    expired["exp"] = json!(now() - 3600);
    expired["iat"] = json!(now() - 7200);
    let expired = env.issuer.sign(&expired);
    let (status, challenge, _) =
        outcome(get_dpop(&url, &expired, &key.proof("GET", &url, &expired)).await).await;
    assert_eq!(status, 401);
    assert!(
        challenge.starts_with("DPoP error=\"invalid_token\"") && challenge.contains("expired"),
        "{challenge}"
    );
    // 403 under DPoP carries the DPoP challenge.
    let token = bound_token(&env, &key, None);
    let license = env.url("/api/v1/license");
    let response = call(
        reqwest::Method::POST,
        &license,
        Some(format!("DPoP {token}")),
        &[&key.proof("POST", &license, &token)],
    )
    .await;
    let (status, challenge, _) = outcome(response).await;
    assert_eq!(status, 403);
    assert!(
        challenge.starts_with("DPoP error=\"insufficient_scope\"") && challenge.contains("algs="),
        "{challenge}"
    );
}

#[tokio::test]
async fn challenges_and_the_downgrade_rule_in_each_mode() {
    for mode in ["Disabled", "Allowed", "Required"] {
        let env = TestEnv::with_settings(&[(MODE, mode)]).await;
        let url = env.url(PATH);
        let key = ProofKey::ec();
        let bound = bound_token(&env, &key, None);
        // RFC 9449 §7.2: a DPoP-bound token as a bearer token is refused in every mode.
        let (status, challenge, error) = outcome(
            call(
                reqwest::Method::GET,
                &url,
                Some(format!("Bearer {bound}")),
                &[],
            )
            .await,
        )
        .await;
        assert_eq!((status, error.as_str()), (401, "invalid_token"), "{mode}");
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{mode}: {challenge}"
        );

        let (status, challenge, _) =
            outcome(call(reqwest::Method::GET, &url, None, &[]).await).await;
        assert_eq!(status, 401);
        let algs = "algs=\"RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA\"";
        let expected = match mode {
            "Disabled" => "Bearer".to_owned(),
            "Allowed" => format!("Bearer, DPoP {algs}"),
            _ => format!("DPoP {algs}"),
        };
        assert_eq!(challenge, expected, "{mode}: no credentials");

        let plain = env.token(None);
        let response = call(
            reqwest::Method::GET,
            &url,
            Some(format!("Bearer {plain}")),
            &[],
        )
        .await;
        let proof = key.proof("GET", &url, &bound);
        let dpop = get_dpop(&url, &bound, &proof).await;
        match mode {
            "Disabled" => {
                assert_eq!(response.status(), 200);
                // The DPoP scheme is an unsupported scheme, as before.
                let (status, challenge, _) = outcome(dpop).await;
                assert_eq!((status, challenge.as_str()), (401, "Bearer"));
            }
            "Allowed" => {
                assert_eq!(response.status(), 200);
                assert_eq!(dpop.status(), 200);
            }
            _ => {
                let (status, challenge, error) = outcome(response).await;
                assert_eq!((status, error.as_str()), (401, "invalid_token"));
                assert!(
                    challenge.starts_with("DPoP error=\"invalid_token\"")
                        && challenge.contains(algs),
                    "{challenge}"
                );
                assert_eq!(dpop.status(), 200);
            }
        }
    }
}

#[tokio::test]
async fn nonces_from_one_gateway_are_accepted_by_another_with_the_same_secret() {
    let secret = URL_SAFE_NO_PAD.encode([42u8; 32]);
    let settings = [
        (MODE, "Required"),
        (
            "Authentication__Schemes__Bearer__DPoP__RequireNonce",
            "true",
        ),
        (
            "Authentication__Schemes__Bearer__DPoP__NonceSecret",
            secret.as_str(),
        ),
    ];
    let env = TestEnv::with_settings(&settings).await;
    let second = halo_gateway::start(&config_for(
        env.issuer.url(),
        &env.upstream.url(),
        &settings,
    ))
    .await
    .expect("second gateway");
    let key = ProofKey::ec();
    let token = bound_token(&env, &key, None);
    let url = env.url(PATH);
    let response = get_dpop(&url, &token, &key.proof("GET", &url, &token)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let nonce = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    let (_, challenge, error) = outcome(response).await;
    assert_eq!(error, "use_dpop_nonce");
    assert!(
        challenge.starts_with("DPoP error=\"use_dpop_nonce\""),
        "{challenge}"
    );

    let with_nonce = |url: &str, nonce: &str| {
        let mut claims = claims("GET", url, &token);
        claims["nonce"] = json!(nonce);
        key.sign(&key.header(), &claims)
    };
    let second_url = url_of(&second, PATH);
    assert_eq!(
        get_dpop(&second_url, &token, &with_nonce(&second_url, &nonce))
            .await
            .status(),
        200,
        "the other replica accepts the nonce"
    );
    assert_eq!(
        get_dpop(&url, &token, &with_nonce(&url, &nonce))
            .await
            .status(),
        200
    );
    let mut forged = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
    *forged.last_mut().unwrap() ^= 1;
    let forged = URL_SAFE_NO_PAD.encode(forged);
    let response = get_dpop(&url, &token, &with_nonce(&url, &forged)).await;
    assert_eq!(outcome(response).await.2, "use_dpop_nonce");
}

#[tokio::test]
async fn a_full_replay_cache_refuses_new_proofs_with_503_and_keeps_live_ones() {
    let env = TestEnv::with_settings(&[
        (MODE, "Allowed"),
        (
            "Authentication__Schemes__Bearer__DPoP__ReplayCacheSize",
            "1",
        ),
    ])
    .await;
    let url = env.url(PATH);
    let key = ProofKey::ec();
    let token = bound_token(&env, &key, None);
    let first = key.proof("GET", &url, &token);
    assert_eq!(get_dpop(&url, &token, &first).await.status(), 200);
    let response = get_dpop(&url, &token, &key.proof("GET", &url, &token)).await;
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=67).contains(&retry_after), "{retry_after}");
    // The live entry was not evicted: its replay is still refused.
    let (status, _, error) = outcome(get_dpop(&url, &token, &first).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_dpop_proof"));
}

#[tokio::test]
async fn redis_shares_the_replay_cache_and_its_failure_refuses_with_503() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let redis_url = redis.url();
    let settings = [
        (MODE, "Allowed"),
        ("Gateway__Redis__Url", redis_url.as_str()),
    ];
    let env = TestEnv::with_settings(&settings).await;
    let second = halo_gateway::start(&config_for(
        env.issuer.url(),
        &env.upstream.url(),
        &settings,
    ))
    .await
    .expect("second gateway");
    let key = ProofKey::ec();
    let token = bound_token(&env, &key, None);
    // The same proof to both replicas (same Host, so the same htu): the second is a replay.
    let url = env.url(PATH);
    let proof = key.proof("GET", &url, &token);
    assert_eq!(get_dpop(&url, &token, &proof).await.status(), 200);
    let replay = client()
        .get(url_of(&second, PATH))
        .header("host", env.gateway.public_addr.to_string())
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", &proof)
        .send()
        .await
        .unwrap();
    let (status, challenge, _) = outcome(replay).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("already used"), "{challenge}");

    drop(redis);
    let response = get_dpop(&url, &token, &key.proof("GET", &url, &token)).await;
    assert_eq!(response.status(), 503, "fail closed");
    assert_eq!(response.headers()["retry-after"], "1");
}

#[tokio::test]
async fn explain_checks_a_proof_with_its_token() {
    let env = TestEnv::start().await;
    let key = ProofKey::ec();
    let token = bound_token(&env, &key, None);
    let url = "https://halo.example.com/api/v1/policies";
    let vars = || {
        crate::support::env_for(
            env.issuer.url(),
            "http://127.0.0.1:9",
            &[("Gateway__PublicOrigins__0", "https://halo.example.com")],
        )
    };
    let proof = key.proof("GET", url, &token);
    let args = ["explain", "--dpop", &proof, "--route", "GET", url, &token];
    let (code, text) = crate::support::run_binary(&args, vars()).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("verdict: ACCEPTED"), "{text}");
    // Explaining does not use the proof up: the same explanation again.
    let (code, _) = crate::support::run_binary(&args, vars()).await;
    assert_eq!(code, 0);
    let wrong = key.proof("POST", url, &token);
    let args = ["explain", "--dpop", &wrong, "--route", "GET", url, &token];
    let (code, text) = crate::support::run_binary(&args, vars()).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("REJECTED with 401 invalid_dpop_proof") && text.contains("htm"),
        "{text}"
    );
}
