//! Issue 8's protections, each with a test that fails without it: strict tokens, strict keys,
//! a front that cannot be tricked, and upstream responses that cannot smuggle.

use std::time::Duration;

use bytes::Bytes;
use halo_gateway::dev::issuer::{Issuer, IssuerOptions, JwksFault};
use halo_gateway::dev::upstream::raw_upstream;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    TestEnv, challenge, client, config_for, now, raw_request, start_issuer, start_stub,
};

async fn status_of(env: &TestEnv, token: &str) -> (u16, String) {
    let response = env.get("/api/v1/policies", Some(token)).await;
    (response.status().as_u16(), challenge(&response))
}

#[tokio::test]
async fn required_claims_must_be_present_and_of_the_right_type() {
    let env = TestEnv::start().await;
    for missing in ["iss", "aud", "sub", "exp"] {
        let mut claims = env.claims();
        claims.as_object_mut().expect("object").remove(missing);
        let (status, www) = status_of(&env, &env.issuer.sign(&claims)).await;
        assert_eq!(status, 401, "missing {missing}");
        assert!(www.contains(missing), "{www}");
    }
    let issuer = env.issuer.url().to_owned();
    for (name, value) in [
        ("iss", json!([issuer])),
        ("aud", json!(42)),
        ("aud", json!(["api://halo", 7])),
        ("exp", json!("tomorrow")),
        ("nbf", json!(true)),
        ("iat", json!({})),
        ("sub", json!(1)),
        ("cid", json!(["x"])),
    ] {
        let mut claims = env.claims();
        claims[name] = value.clone();
        let (status, www) = status_of(&env, &env.issuer.sign(&claims)).await;
        assert_eq!(status, 401, "{name} = {value} must be invalid, not absent");
        assert!(www.contains(name), "{www}");
    }
}

#[tokio::test]
async fn iat_in_the_future_and_overlong_lifetimes_are_refused() {
    let env = TestEnv::with_settings(&[("Authentication__Schemes__Bearer__ClockSkew", "60")]).await;
    let mut claims = env.claims();
    claims["iat"] = json!(now() + 600);
    assert_eq!(status_of(&env, &env.issuer.sign(&claims)).await.0, 401);
    claims["iat"] = json!(now() + 30);
    assert_eq!(
        status_of(&env, &env.issuer.sign(&claims)).await.0,
        200,
        "within the skew"
    );

    let mut claims = env.claims();
    claims["exp"] = json!(now() + 2 * 86_400);
    let (status, www) = status_of(&env, &env.issuer.sign(&claims)).await;
    assert_eq!(status, 401);
    assert!(www.contains("lives"), "{www}");
    claims.as_object_mut().expect("object").remove("iat");
    assert_eq!(
        status_of(&env, &env.issuer.sign(&claims)).await.0,
        401,
        "no iat: lifetime counted from now"
    );
}

#[tokio::test]
async fn typ_must_be_absent_or_at_jwt() {
    let env = TestEnv::start().await;
    let kid = env.issuer.current_kid();
    for (typ, expected) in [
        ("at+jwt", 200),
        ("application/at+jwt", 200),
        ("AT+JWT", 200),
        ("JWT", 401),
        ("dpop+jwt", 401),
        ("application/okta-internal-at+jwt", 401),
    ] {
        let token = env.issuer.sign_with_header(
            &json!({ "alg": "RS256", "kid": kid, "typ": typ }),
            &env.claims(),
        );
        assert_eq!(status_of(&env, &token).await.0, expected, "typ {typ}");
    }
}

#[tokio::test]
async fn header_extensions_and_key_sources_are_refused() {
    let env = TestEnv::start().await;
    let kid = env.issuer.current_kid();
    for member in ["crit", "b64", "cty", "jku", "x5u", "jwk", "x5c"] {
        let mut header = json!({ "alg": "RS256", "kid": kid });
        header[member] = json!(if member == "b64" {
            json!(false)
        } else {
            json!("https://evil.example/keys")
        });
        let (status, www) =
            status_of(&env, &env.issuer.sign_with_header(&header, &env.claims())).await;
        assert_eq!(status, 401, "{member}");
        assert!(www.contains(member), "{www}");
    }
}

#[tokio::test]
async fn what_jsonwebtoken_cannot_read_is_refused_as_malformed() {
    let env = TestEnv::start().await;
    let kid = env.issuer.current_kid();
    // RFC 7515 §4.1.7: x5t is a string; jsonwebtoken's header reading refuses a number.
    for (x5t, expected) in [(json!(5), 401), (json!("dGh1bWJwcmludA"), 200)] {
        let header = json!({ "alg": "RS256", "kid": kid, "x5t": x5t });
        let (status, www) =
            status_of(&env, &env.issuer.sign_with_header(&header, &env.claims())).await;
        assert_eq!(status, expected, "x5t {x5t}: {www}");
        if expected == 401 {
            assert!(www.contains("does not fit RFC 7515"), "{www}");
        }
    }
    // A NumericDate before 1970 (RFC 7519 §2) is one jsonwebtoken cannot read.
    let mut claims = env.claims();
    claims["nbf"] = json!(-1);
    let (status, www) = status_of(&env, &env.issuer.sign(&claims)).await;
    assert_eq!(status, 401);
    assert!(www.contains("'nbf' is not a valid number"), "{www}");
}

#[tokio::test]
async fn dpop_bound_tokens_are_refused_under_bearer() {
    let env = TestEnv::start().await;
    let mut claims = env.claims();
    claims["cnf"] = json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" });
    let (status, www) = status_of(&env, &env.issuer.sign(&claims)).await;
    assert_eq!(status, 401);
    assert!(www.contains("DPoP is not accepted"), "{www}");
}

#[tokio::test]
async fn a_certificate_bound_token_is_refused_naming_its_binding_not_dpop() {
    let env = TestEnv::start().await;
    let mut claims = env.claims();
    claims["cnf"] = json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" });
    let (status, www) = status_of(&env, &env.issuer.sign(&claims)).await;
    assert_eq!(status, 401);
    assert!(www.contains("sender-constrained token (cnf)"), "{www}");
    assert!(www.contains("client certificate (x5t#S256"), "{www}");
    assert!(!www.contains("DPoP"), "{www}");
}

#[tokio::test]
async fn absurd_numeric_claims_are_echoed_briefly() {
    let env = TestEnv::start().await;
    for (name, shown) in [("exp", "lives 1.000e300 s"), ("nbf", "another 1.000e300 s")] {
        let mut claims = env.claims();
        claims[name] = json!(1e300);
        let response = env
            .get("/api/v1/policies", Some(&env.issuer.sign(&claims)))
            .await;
        assert_eq!(response.status(), 401);
        let www = challenge(&response);
        let json: serde_json::Value = response.json().await.expect("json");
        let description = json["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(shown), "{name}: {description}");
        assert!(description.len() < 100, "{name}: {description}");
        assert!(www.len() < 200, "{www}");
    }
}

#[tokio::test]
async fn duplicate_json_members_are_refused() {
    let env = TestEnv::start().await;
    let kid = env.issuer.current_kid();
    let claims = env.claims().to_string();
    let header = format!(r#"{{"alg":"RS256","kid":"{kid}","alg":"RS256"}}"#);
    assert_eq!(
        status_of(
            &env,
            &env.issuer.sign_raw(header.as_bytes(), claims.as_bytes())
        )
        .await
        .0,
        401
    );
    let header = format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#);
    let duplicated = claims.replacen('{', r#"{"aud":"api://evil","#, 1);
    assert_eq!(
        status_of(
            &env,
            &env.issuer
                .sign_raw(header.as_bytes(), duplicated.as_bytes())
        )
        .await
        .0,
        401
    );
    assert_eq!(
        status_of(
            &env,
            &env.issuer.sign_raw(header.as_bytes(), claims.as_bytes())
        )
        .await
        .0,
        200,
        "control"
    );
}

#[tokio::test]
async fn overlong_tokens_and_kids_are_refused_before_parsing() {
    let env =
        TestEnv::with_settings(&[("Authentication__Schemes__Bearer__MaxTokenLength", "2048")])
            .await;
    let mut claims = env.claims();
    claims["padding"] = json!("x".repeat(4096));
    let (status, www) = status_of(&env, &env.issuer.sign(&claims)).await;
    assert_eq!(status, 401);
    assert!(www.contains("longer than 2048"), "{www}");
    assert!(
        www.contains("Authentication__Schemes__Bearer__MaxTokenLength"),
        "names the setting: {www}"
    );
    let token = env.issuer.sign_with_header(
        &json!({ "alg": "RS256", "kid": "k".repeat(300) }),
        &env.claims(),
    );
    assert_eq!(status_of(&env, &token).await.0, 401);
    assert_eq!(
        env.issuer.jwks_fetches(),
        1,
        "an overlong kid triggers no fetch"
    );
}

#[tokio::test]
async fn descriptions_are_valid_headers_whatever_the_token_carries() {
    let env = TestEnv::start().await;
    let mut claims = env.claims();
    claims["aud"] = json!("api://\"evil\"\\\u{7f}\u{1b}[31m\u{202e}ünï");
    let response = env
        .get("/api/v1/policies", Some(&env.issuer.sign(&claims)))
        .await;
    assert_eq!(response.status(), 401);
    let www = challenge(&response);
    assert!(
        www.is_ascii() && !www.contains('\\') && !www.contains("\"evil\""),
        "{www}"
    );
    assert!(www.contains("'api://'evil'"), "{www}");
}

#[tokio::test]
async fn unusable_or_ambiguous_keys_are_skipped_one_by_one() {
    let env = TestEnv::start().await;
    let token = env.token(None);
    let current = env.issuer.current_kid();
    // A second copy of the current kid: the kid becomes ambiguous and is refused.
    let jwks: serde_json::Value = client()
        .get(format!("{}/v1/keys", env.issuer.url()))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let mut copy = jwks["keys"][0].clone();
    copy["alg"] = json!("RS384");
    env.issuer.publish_extra_jwks(vec![
        copy,
        json!({ "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" }),
        json!({ "kty": "RSA", "kid": "enc", "use": "enc", "n": jwks["keys"][0]["n"], "e": "AQAB" }),
        json!({ "kty": "RSA", "n": jwks["keys"][0]["n"], "e": "AQAB" }),
        json!("not even an object"),
    ]);
    assert!(
        env.gateway.keys.refresh().await.result.is_err(),
        "no usable key left: the set is refused, old keys kept"
    );
    assert_eq!(
        status_of(&env, &token).await.0,
        200,
        "stale-if-error keeps the last good keys"
    );

    // With a usable key beside them, the set is accepted and the ambiguous kid is not.
    env.issuer.rotate(false);
    let new_token = env.token(None);
    assert!(env.gateway.keys.refresh().await.result.is_ok());
    let status = env.gateway.keys.status();
    assert!(
        !status.key_ids.iter().any(|k| **k == *current),
        "the duplicated kid is refused"
    );
    assert!(
        !status
            .key_ids
            .iter()
            .any(|k| &**k == "hmac" || &**k == "enc")
    );
    assert_eq!(status_of(&env, &new_token).await.0, 200);
}

#[tokio::test]
async fn a_jwk_alg_binds_the_key_to_that_algorithm() {
    let env = TestEnv::start().await;
    let kid = env.issuer.current_kid();
    // The issuer's key says alg RS256; a PS256 header with the same key is refused.
    let token = env
        .issuer
        .sign_with_header(&json!({ "alg": "PS256", "kid": kid }), &env.claims());
    let (status, www) = status_of(&env, &token).await;
    assert_eq!(status, 401);
    assert!(www.contains("does not allow the algorithm"), "{www}");
}

#[tokio::test]
async fn a_jwks_uri_on_another_host_needs_to_be_allowed() {
    let upstream = start_stub().await;
    let probe = start_issuer().await;
    let port = probe.addr().port();
    drop(probe);
    let jwks_uri = format!("http://localhost:{port}/oauth2/default/v1/keys");
    // The probe's port frees once its aborted server task is dropped.
    let mut issuer = None;
    for _ in 0..100 {
        let options = IssuerOptions {
            jwks_uri: Some(jwks_uri.clone()),
            ..IssuerOptions::default()
        };
        if let Ok(started) = Issuer::start(([127, 0, 0, 1], port).into(), options).await {
            issuer = Some(started);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let issuer = issuer.expect("issuer on the probed port");
    let refused = halo_gateway::start(&config_for(issuer.url(), &upstream.url(), &[]))
        .await
        .expect("starts");
    assert!(!refused.keys.is_ready());
    let reason = refused.keys.status().last_error.clone().unwrap_or_default();
    assert!(reason.contains("not the issuer's host"), "{reason}");
    let allowed = halo_gateway::start(&config_for(
        issuer.url(),
        &upstream.url(),
        &[(
            "Authentication__Schemes__Bearer__AllowedJwksHosts__0",
            "localhost",
        )],
    ))
    .await
    .expect("starts");
    assert!(allowed.keys.is_ready());
}

#[tokio::test]
async fn key_fetches_never_follow_a_redirect_to_another_origin() {
    let env = TestEnv::start().await;
    let other = start_issuer().await;
    env.issuer
        .set_fault(JwksFault::Redirect(format!("{}/v1/keys", other.url())));
    let outcome = env.gateway.keys.refresh().await;
    assert!(outcome.result.is_err());
    assert_eq!(
        other.jwks_fetches(),
        0,
        "the other origin was never contacted"
    );
}

/// A new raw connection to the gateway's public listener.
async fn connect(env: &TestEnv) -> TcpStream {
    TcpStream::connect(env.gateway.public_addr)
        .await
        .expect("connect")
}

/// Writes `request` as-is on a new connection to the gateway and returns the response head.
async fn send_raw(env: &TestEnv, request: &[u8]) -> String {
    let mut stream = connect(env).await;
    stream.write_all(request).await.expect("write");
    read_response(&mut stream).await
}

async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 16 * 1024];
    let mut text = String::new();
    while !text.contains("\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
    }
    text
}

#[tokio::test]
async fn a_slowloris_connection_is_closed_after_the_header_read_timeout() {
    let env = TestEnv::with_settings(&[("Gateway__HeaderReadTimeout", "1")]).await;
    let mut stream = connect(&env).await;
    stream
        .write_all(b"GET /api/v1/policies HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true), "the server closed the connection");
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    let env = TestEnv::with_settings(&[
        ("Gateway__MaxHeaderCount", "20"),
        ("Gateway__MaxHeaderBytes", "8192"),
    ])
    .await;
    let many: Vec<(String, String)> = (0..30).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut request = String::from("GET /api/v1/policies HTTP/1.1\r\nHost: x\r\n");
    for (k, v) in &many {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let big = format!(
        "GET /api/v1/policies HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    for (what, request) in [("header count", request), ("header size", big)] {
        let (head, body) = exchange_to_close(&env, request.as_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 431"), "{what}: {head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
        assert_eq!(json["error"], "headers_too_large", "{what}");
        let description = json["error_description"].as_str().unwrap_or_default();
        assert!(
            description.contains("Gateway__MaxHeaderBytes (8192 bytes)")
                && description.contains("Gateway__MaxHeaderCount (20 fields)"),
            "{description}"
        );
    }
}

#[tokio::test]
async fn an_unparseable_request_head_gets_400_with_a_json_body() {
    let env = TestEnv::start().await;
    let (head, body) = exchange_to_close(
        &env,
        b"GET /api/v1/policies HTTP/1.1\r\nHost: x\r\nNo Colon\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
    assert_eq!(json["error"], "invalid_request");
}

/// Writes `request` on a new connection and reads until the gateway closes it; returns the
/// response head and body.
async fn exchange_to_close(env: &TestEnv, request: &[u8]) -> (String, Vec<u8>) {
    let mut stream = connect(env).await;
    stream.write_all(request).await.expect("write");
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received))
        .await
        .expect("the connection closes");
    let text = String::from_utf8_lossy(&received).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_owned(), body.as_bytes().to_vec())
}

#[tokio::test]
async fn the_connection_cap_holds_further_connections_back() {
    let env = TestEnv::with_settings(&[("Gateway__MaxConnections", "1")]).await;
    let token = env.token(None);
    let request = format!(
        "GET /api/v1/policies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    // The first connection is being served (so it holds the one slot) and stays open.
    let mut first = connect(&env).await;
    first.write_all(request.as_bytes()).await.expect("write");
    assert!(read_response(&mut first).await.starts_with("HTTP/1.1 200"));
    let mut second = TcpStream::connect(env.gateway.public_addr)
        .await
        .expect("kernel accepts");
    second.write_all(request.as_bytes()).await.expect("write");
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), second.read(&mut buf))
            .await
            .is_err(),
        "not served while at the cap"
    );
    drop(first);
    assert!(
        read_response(&mut second).await.starts_with("HTTP/1.1 200"),
        "served once a slot frees"
    );
}

#[tokio::test]
async fn a_stalled_request_body_is_cut_off() {
    let env = TestEnv::with_settings(&[("Gateway__BodyIdleTimeout", "1")]).await;
    let token = env.token(None);
    let mut stream = connect(&env).await;
    let head = format!(
        "POST /stub/sink HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(&[0u8; 100]).await.expect("write");
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    let upstream = &env.upstream;
    crate::support::eventually(Duration::from_secs(5), || upstream.aborted_uploads() == 1).await;
}

#[tokio::test]
async fn trace_connect_and_unknown_methods_are_refused() {
    let env = TestEnv::start().await;
    let auth = format!("Bearer {}", env.token(Some("Admin")));
    for method in ["TRACE", "PROPFIND", "PURGE"] {
        let response = env
            .raw(method, "/api/v1/policies", &[("authorization", &auth)])
            .await;
        assert_eq!(response.status, 405, "{method}");
    }
    let response = send_raw(
        &env,
        b"CONNECT halo.example:443 HTTP/1.1\r\nHost: halo.example:443\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 405"));
    assert!(env.upstream.requests().is_empty());
}

#[tokio::test]
async fn absolute_form_targets_never_choose_the_upstream() {
    let env = TestEnv::start().await;
    let token = env.token(None);
    let request = format!(
        "GET http://evil.example:1/api/v1/policies HTTP/1.1\r\nHost: evil.example:1\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    assert!(
        send_raw(&env, request.as_bytes())
            .await
            .starts_with("HTTP/1.1 200")
    );
    let seen = env
        .upstream
        .last_request()
        .expect("the configured upstream got it");
    assert_eq!(seen.target, "/api/v1/policies");
}

#[tokio::test]
async fn missing_or_duplicate_host_is_400() {
    let env = TestEnv::start().await;
    let token = env.token(None);
    for head in ["Host: a\r\nHost: b\r\n", ""] {
        let request =
            format!("GET /api/v1/policies HTTP/1.1\r\n{head}Authorization: Bearer {token}\r\n\r\n");
        let response = send_raw(&env, request.as_bytes()).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{head:?}: {response}");
    }
}

#[tokio::test]
async fn expect_continue_is_answered_only_after_the_token_is_accepted() {
    let env = TestEnv::start().await;
    let response = send_raw(
        &env,
        b"POST /api/v1/rebuild/file HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    assert!(
        response.starts_with("HTTP/1.1 401"),
        "refused before any body is sent: {response}"
    );

    let token = env.token(None);
    let mut stream = connect(&env).await;
    let head = format!(
        "POST /stub/sink HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let interim = read_response(&mut stream).await;
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    stream.write_all(b"hello").await.expect("body");
    let response = read_response(&mut stream).await;
    assert!(response.contains("200 OK"), "{response}");
}

#[tokio::test]
async fn request_bodies_over_the_limit_get_413_declared_or_streamed() {
    let env = TestEnv::with_settings(&[("Gateway__MaxRequestBodySize", "1000")]).await;
    let token = env.token(None);
    let response = env
        .http
        .post(env.url("/stub/sink"))
        .bearer_auth(&token)
        .body(vec![0u8; 2000])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 413);
    assert_eq!(
        env.upstream.sink_bytes(),
        0,
        "refused from the declared length, nothing forwarded"
    );

    let chunks = futures_util::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 500]))),
    );
    let response = env
        .http
        .post(env.url("/stub/sink"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(response) = response {
        assert_eq!(response.status(), 413);
    }
    let upstream = &env.upstream;
    crate::support::eventually(Duration::from_secs(5), || upstream.aborted_uploads() == 1).await;
    assert!(upstream.sink_bytes() <= 1000);
}

async fn gateway_in_front_of(raw: &'static [u8]) -> (u16, Issuer) {
    let issuer = start_issuer().await;
    let (addr, _task) = raw_upstream(raw).await.expect("raw upstream");
    let gateway = halo_gateway::start(&config_for(issuer.url(), &format!("http://{addr}"), &[]))
        .await
        .expect("starts");
    let token = format!("Bearer {}", issuer.token_for(&issuer.clients()[1]));
    let response = raw_request(
        gateway.public_addr,
        "GET",
        "/api/v1/policies",
        &[("authorization", &token)],
        Bytes::new(),
    )
    .await;
    (response.status, issuer)
}

#[tokio::test]
async fn an_upstream_101_becomes_502() {
    let (status, _issuer) = gateway_in_front_of(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    assert_eq!(status, 502);
}

#[tokio::test]
async fn conflicting_upstream_framing_becomes_502() {
    let (status, _issuer) =
        gateway_in_front_of(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").await;
    assert_eq!(status, 502);
}

#[tokio::test]
async fn upstream_bodies_pass_through_byte_exact_without_decompression() {
    let (status, _issuer) = gateway_in_front_of(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x08\x00",
    )
    .await;
    assert_eq!(status, 200);
    let issuer = start_issuer().await;
    let (addr, _task) = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x08\x00",
    )
    .await
    .expect("raw");
    let gateway = halo_gateway::start(&config_for(issuer.url(), &format!("http://{addr}"), &[]))
        .await
        .expect("starts");
    let token = format!("Bearer {}", issuer.token_for(&issuer.clients()[1]));
    let response = raw_request(
        gateway.public_addr,
        "GET",
        "/x",
        &[("authorization", &token), ("accept-encoding", "gzip")],
        Bytes::new(),
    )
    .await;
    assert_eq!(response.headers["content-encoding"], "gzip");
    assert_eq!(response.body.as_ref(), b"\x1f\x8b\x08\x00");
}

#[tokio::test]
async fn raw_utf8_paths_cannot_bypass_the_policy_and_are_forwarded_percent_encoded() {
    let env = TestEnv::start().await;
    let token = env.token(None);
    let mut request =
        b"POST /api/v1/licen\xC5\xBFe HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n".to_vec();
    request.extend_from_slice(format!("Authorization: Bearer {token}\r\n\r\n").as_bytes());
    let response = send_raw(&env, &request).await;
    assert!(
        response.starts_with("HTTP/1.1 403"),
        "hyper passes raw UTF-8; the policy must still see 'license': {response}"
    );
    assert!(env.upstream.requests().is_empty());

    let mut request = b"GET /api/v1/policies/caf\xC3\xA9 HTTP/1.1\r\nHost: x\r\n".to_vec();
    request.extend_from_slice(format!("Authorization: Bearer {token}\r\n\r\n").as_bytes());
    let response = send_raw(&env, &request).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(
        env.upstream.last_request().expect("forwarded").target,
        "/api/v1/policies/caf%C3%A9"
    );
}

/// Claims like Okta's with 100 groups (its cap for the groups claim) of long names.
fn with_many_groups(mut claims: serde_json::Value) -> serde_json::Value {
    let groups: Vec<String> = (0..100)
        .map(|i| format!("halo-{i:03}-{}", "engineering-department-".repeat(10)))
        .collect();
    claims["groups"] = json!(groups);
    claims
}

#[tokio::test]
async fn a_token_with_100_long_okta_groups_needs_a_larger_max_token_length() {
    let env = TestEnv::start().await;
    let token = env.issuer.sign(&with_many_groups(env.claims()));
    assert!(token.len() > 30_000, "{}", token.len());
    let (status, www) = status_of(&env, &token).await;
    assert_eq!(status, 401);
    assert!(
        www.contains("longer than 16384 bytes")
            && www.contains("Authentication__Schemes__Bearer__MaxTokenLength"),
        "{www}"
    );

    // Sized as docs/configuration.md says: accepted, and within the default MaxHeaderBytes.
    let env =
        TestEnv::with_settings(&[("Authentication__Schemes__Bearer__MaxTokenLength", "49152")])
            .await;
    let token = env.issuer.sign(&with_many_groups(env.claims()));
    assert_eq!(status_of(&env, &token).await.0, 200);
}
