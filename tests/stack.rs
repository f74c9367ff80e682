//! The tower stack in process: requests built in the test and sent with `oneshot`, no client
//! sockets. The issuer runs on loopback only so the key store can load its JWKS once; every
//! decision below is then made without the network.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use halo_gateway::auth::validate::VerifiedToken;
use halo_gateway::auth::{AuthLayer, Authenticator};
use halo_gateway::config::Config;
use halo_gateway::dev::issuer::Issuer;
use halo_gateway::metrics::{KindLabels, Metrics};
use halo_gateway::middleware::{StackSettings, UpstreamBody, public_stack};
use halo_gateway::proxy::{ForwardingOptions, ProxyService, Upstream};
use halo_gateway::ratelimit::Limits;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt, service_fn};

use crate::support::{config_for, free_port, now, start_issuer};

type TestBody = Full<Bytes>;

/// A status, the headers and the JSON document of a response.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl Answer {
    async fn from<B>(response: Response<B>) -> Self
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Debug,
    {
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        Self {
            status: parts.status,
            headers: parts.headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    fn challenge(&self) -> &str {
        self.headers
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// The issuer and a configuration for it, with keys loaded into a fresh authenticator.
struct Fixture {
    issuer: Issuer,
    config: Config,
    authenticator: Arc<Authenticator>,
    metrics: Arc<Metrics>,
}

impl Fixture {
    async fn start() -> Self {
        Self::with_settings(&[]).await
    }

    async fn with_settings(settings: &[(&str, &str)]) -> Self {
        let issuer = start_issuer().await;
        // Nothing listens on the upstream port: a request that reaches the proxy fails there.
        let upstream = format!("http://127.0.0.1:{}", free_port());
        let config = config_for(issuer.url(), &upstream, settings);
        let metrics = Arc::new(Metrics::new());
        let authenticator =
            Arc::new(Authenticator::from_config(&config, metrics.clone()).expect("authenticator"));
        assert!(
            authenticator
                .validator()
                .keys()
                .refresh()
                .await
                .result
                .is_ok()
        );
        Self {
            issuer,
            config,
            authenticator,
            metrics,
        }
    }

    fn claims(&self) -> Value {
        json!({
            "iss": self.issuer.url(),
            "aud": crate::support::AUDIENCE,
            "iat": now(),
            "exp": now() + 600,
            "cid": "0oa-in-process",
            "sub": "0oa-in-process",
        })
    }

    fn token(&self, role: Option<&str>) -> String {
        let mut claims = self.claims();
        if let Some(role) = role {
            claims["role"] = json!(role);
        }
        self.issuer.sign(&claims)
    }

    fn settings(&self) -> StackSettings {
        StackSettings {
            authenticator: self.authenticator.clone(),
            metrics: self.metrics.clone(),
            forwarding: Arc::new(ForwardingOptions::default()),
            max_body: Some(1024),
            body_idle_timeout: Duration::from_secs(5),
            limits: Arc::new(Limits::from_config(
                &self.config.gateway,
                None,
                self.metrics.clone(),
            )),
        }
    }

    fn upstream(&self) -> Upstream<UpstreamBody<TestBody>> {
        Upstream::new(
            &self.config.gateway.upstream,
            Duration::from_secs(5),
            self.config.gateway.upstream_max_idle_connections,
        )
        .expect("upstream")
    }
}

fn get(path: &str, token: Option<&str>) -> http::request::Builder {
    let builder = Request::get(path).header(header::HOST, "gateway.test");
    match token {
        Some(token) => builder.header(header::AUTHORIZATION, format!("Bearer {token}")),
        None => builder,
    }
}

fn empty(builder: http::request::Builder) -> Request<TestBody> {
    builder.body(Full::default()).expect("request")
}

/// An app behind the auth layer that counts its calls and reports the token it was given.
fn protected_app(
    authenticator: Arc<Authenticator>,
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<Request<TestBody>, Response = Response<TestBody>, Error = Infallible> {
    AuthLayer::<TestBody>::new(authenticator).layer(service_fn(
        move |request: Request<halo_gateway::auth::AuthorizedBody<TestBody>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let seen = match request.extensions().get::<Arc<VerifiedToken>>() {
                Some(token) => json!({
                    "sub": token.subject,
                    "cid": token.client_id(),
                    "roles": token.access.role_names(),
                }),
                None => json!(null),
            };
            async move { Ok::<_, Infallible>(Response::new(Full::from(seen.to_string()))) }
        },
    ))
}

#[tokio::test]
async fn each_auth_refusal_has_its_status_challenge_and_json_and_never_reaches_the_app() {
    let fixture = Fixture::start().await;
    let user = fixture.token(None);
    let mut expired = fixture.claims();
    expired["exp"] = json!(now() - 3600);
    expired["iat"] = json!(now() - 7200);
    let expired = fixture.issuer.sign(&expired);
    let mut foreign = fixture.claims();
    foreign["aud"] = json!("api://other");
    let foreign = fixture.issuer.sign(&foreign);
    let mut tampered = user.clone();
    let last = tampered.pop().expect("signature");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let form = Request::post("/api/v1/policies")
        .header(header::HOST, "gateway.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::from("a=1&access_token=abc"))
        .expect("request");
    let two_headers =
        empty(get("/api/v1/policies", Some(&user)).header(header::AUTHORIZATION, "Bearer other"));

    // (case, request, status, challenge starts with, JSON error)
    let cases: Vec<(&str, Request<TestBody>, u16, &str, &str)> = vec![
        (
            "no token",
            empty(get("/api/v1/policies", None)),
            401,
            "Bearer",
            "missing_token",
        ),
        (
            "token in the query",
            empty(get("/api/v1/policies?access_token=abc", Some(&user))),
            400,
            "Bearer error=\"invalid_request\"",
            "invalid_request",
        ),
        (
            "two Authorization headers",
            two_headers,
            400,
            "Bearer error=\"invalid_request\"",
            "invalid_request",
        ),
        (
            "token in a form body",
            form,
            400,
            "Bearer error=\"invalid_request\"",
            "invalid_request",
        ),
        (
            "not a JWS",
            empty(get("/api/v1/policies", Some("a.b"))),
            401,
            "Bearer error=\"invalid_token\"",
            "invalid_token",
        ),
        (
            "bad signature",
            empty(get("/api/v1/policies", Some(&tampered))),
            401,
            "Bearer error=\"invalid_token\"",
            "invalid_token",
        ),
        (
            "expired",
            empty(get("/api/v1/policies", Some(&expired))),
            401,
            "Bearer error=\"invalid_token\"",
            "invalid_token",
        ),
        (
            "wrong audience",
            empty(get("/api/v1/policies", Some(&foreign))),
            401,
            "Bearer error=\"invalid_token\"",
            "invalid_token",
        ),
        (
            "user token on an admin route",
            empty(
                Request::post("/api/v1/license")
                    .header(header::HOST, "gateway.test")
                    .header(header::AUTHORIZATION, format!("Bearer {user}")),
            ),
            403,
            "Bearer error=\"insufficient_scope\"",
            "AdminRoleMissing",
        ),
    ];
    for (case, request, status, challenge, error) in cases {
        let calls = Arc::new(AtomicUsize::new(0));
        let app = protected_app(fixture.authenticator.clone(), calls.clone());
        let answer = Answer::from(app.oneshot(request).await.expect("infallible")).await;
        assert_eq!(answer.status.as_u16(), status, "{case}");
        assert!(
            answer.challenge().starts_with(challenge),
            "{case}: {}",
            answer.challenge()
        );
        assert_eq!(answer.json["error"], error, "{case}");
        assert!(
            answer.json["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{case}"
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "{case}: the app was called"
        );
    }
}

/// Client, scope and role checks (issue 16): each refusal is decided by the layer in the
/// gateway's order, with its own JSON error and challenge, and the app never sees it.
#[tokio::test]
async fn client_scope_and_role_refusals_answer_in_process_in_order() {
    let fixture = Fixture::with_settings(&[
        (
            "Authentication__Schemes__Bearer__AllowedClients__0",
            "0oa-in-process",
        ),
        (
            "Authentication__Schemes__Bearer__RequiredScopes__0",
            "halo.api",
        ),
        ("Gateway__Rules__0__Path", "/api/v1/ops/**"),
        ("Gateway__Rules__0__Role", "Ops"),
        ("Gateway__Rules__0__Scopes__0", "halo.ops"),
        ("Gateway__Rules__1__Path", "/api/**"),
    ])
    .await;
    let token = |cid: &str, scp: &[&str], role: Option<&str>| {
        let mut claims = fixture.claims();
        claims["cid"] = json!(cid);
        claims["scp"] = json!(scp);
        if let Some(role) = role {
            claims["role"] = json!(role);
        }
        fixture.issuer.sign(&claims)
    };
    let other_client = token("0oa-other", &["halo.api", "halo.ops"], Some("Ops"));
    let no_scope = token("0oa-in-process", &["halo.admin"], Some("Ops"));
    let api_only = token("0oa-in-process", &["halo.api"], Some("Ops"));
    let no_role = token("0oa-in-process", &["halo.api", "halo.ops"], None);
    let ops = token("0oa-in-process", &["halo.api", "halo.ops"], Some("Ops"));

    // (case, path, token, status, exact challenge prefix, JSON error)
    let cases: [(&str, &str, &str, u16, &str, &str); 5] = [
        (
            "client not allowed, though scopes and role would pass",
            "/api/v1/ops/run",
            &other_client,
            403,
            "Bearer error=\"insufficient_scope\", error_description=",
            "ClientNotAllowed",
        ),
        (
            "global scope missing",
            "/api/v1/policies",
            &no_scope,
            403,
            "Bearer error=\"insufficient_scope\", scope=\"halo.api\", error_description=",
            "insufficient_scope",
        ),
        (
            "rule scope missing: the challenge names every scope the route needs",
            "/api/v1/ops/run",
            &api_only,
            403,
            "Bearer error=\"insufficient_scope\", scope=\"halo.api halo.ops\", error_description=",
            "insufficient_scope",
        ),
        (
            "role other than Admin missing",
            "/api/v1/ops/run",
            &no_role,
            403,
            "Bearer error=\"insufficient_scope\", error_description=",
            "RoleMissing",
        ),
        ("everything granted", "/api/v1/ops/run", &ops, 200, "", ""),
    ];
    for (case, path, token, status, challenge, error) in cases {
        let calls = Arc::new(AtomicUsize::new(0));
        let app = protected_app(fixture.authenticator.clone(), calls.clone());
        let request = empty(get(path, Some(token)));
        let answer = Answer::from(app.oneshot(request).await.expect("infallible")).await;
        assert_eq!(answer.status.as_u16(), status, "{case}");
        if status == 200 {
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{case}");
            assert_eq!(answer.json["roles"], json!(["Ops"]), "{case}");
            continue;
        }
        assert!(
            answer.challenge().starts_with(challenge),
            "{case}: {}",
            answer.challenge()
        );
        assert_eq!(answer.json["error"], error, "{case}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "{case}: the app was called"
        );
    }
    let metrics = fixture.metrics.render(None);
    for (reason, count) in [
        ("client_not_allowed", 1),
        ("insufficient_scope", 2),
        ("role_missing", 1),
    ] {
        let line = format!(
            "halo_gateway_auth_decisions_total{{decision=\"deny\",reason=\"{reason}\"}} {count}\n"
        );
        assert!(metrics.contains(&line), "{line}{metrics}");
    }
}

#[tokio::test]
async fn an_accepted_request_carries_the_verified_token_to_the_app() {
    let fixture = Fixture::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let app = protected_app(fixture.authenticator.clone(), calls.clone());
    let admin = fixture.token(Some("Admin"));
    let request = empty(
        Request::post("/api/v1/license")
            .header(header::HOST, "gateway.test")
            .header(header::AUTHORIZATION, format!("Bearer {admin}")),
    );
    let answer = Answer::from(app.oneshot(request).await.expect("infallible")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json,
        json!({ "sub": "0oa-in-process", "cid": "0oa-in-process", "roles": ["Admin"] })
    );

    // An anonymous route passes without a token, and without one in the extensions.
    let app = protected_app(fixture.authenticator.clone(), calls.clone());
    let answer = Answer::from(
        app.oneshot(empty(get("/api/health", None)))
            .await
            .expect("infallible"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json, Value::Null);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn without_keys_the_layer_answers_503_with_retry_after_and_no_challenge() {
    let fixture = Fixture::start().await;
    // An authenticator whose issuer is not there: no keys, and none to fetch on demand.
    let gone = format!("http://127.0.0.1:{}/oauth2/default", free_port());
    let config = config_for(&gone, fixture.config.gateway.upstream.as_str(), &[]);
    let cold = Arc::new(
        Authenticator::from_config(&config, Arc::new(Metrics::new())).expect("authenticator"),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let app = protected_app(cold, calls.clone());
    let token = fixture.token(None);
    let answer = Answer::from(
        app.oneshot(empty(get("/api/v1/policies", Some(&token))))
            .await
            .expect("infallible"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(answer.challenge(), "");
    assert_eq!(answer.json["error"], "temporarily_unavailable");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_stack_checks_requests_before_tokens_and_tokens_before_body_size() {
    let fixture = Fixture::start().await;
    let stack = public_stack(&fixture.settings(), fixture.upstream());
    let token = fixture.token(None);
    let upload = |token: Option<&str>| {
        let builder = Request::post("/api/v1/rebuild/file")
            .header(header::HOST, "gateway.test")
            .header(header::CONTENT_LENGTH, "4096");
        let builder = match token {
            Some(token) => builder.header(header::AUTHORIZATION, format!("Bearer {token}")),
            None => builder,
        };
        builder.body(Full::from(vec![0u8; 4096])).expect("request")
    };
    let trace = Request::builder()
        .method("TRACE")
        .uri("/api/v1/policies")
        .header(header::HOST, "gateway.test")
        .header(header::AUTHORIZATION, "Bearer a.b")
        .body(Full::default())
        .expect("request");
    let two_hosts = empty(get("/api/v1/policies", None).header(header::HOST, "other.test"));
    let encoded_slash = empty(get("/api/v1%2fpolicies", None));

    // (case, request, status, JSON error)
    let cases: Vec<(&str, Request<TestBody>, u16, &str)> = vec![
        (
            "TRACE, before the bad token",
            trace,
            405,
            "method_not_allowed",
        ),
        ("two Host headers", two_hosts, 400, "invalid_request"),
        ("an encoded slash", encoded_slash, 400, "invalid_request"),
        (
            "a token-less oversize upload",
            upload(None),
            401,
            "missing_token",
        ),
        (
            "an oversize upload with a token",
            upload(Some(&token)),
            413,
            "request_too_large",
        ),
    ];
    for (case, request, status, error) in cases {
        let answer = Answer::from(stack.clone().oneshot(request).await.expect("infallible")).await;
        assert_eq!(answer.status.as_u16(), status, "{case}");
        assert_eq!(answer.json["error"], error, "{case}");
        let id = answer.headers["x-request-id"].to_str().expect("ascii");
        assert!(uuid_like(id), "{case}: request id {id}");
    }
}

#[tokio::test]
async fn client_limits_answer_before_the_proxy_and_passing_requests_carry_the_fields() {
    let fixture = Fixture::with_settings(&[
        ("Gateway__RateLimit__Requests", "2"),
        ("Gateway__RateLimit__Period", "10"),
        // No peer address in process: the per-IP rate has nothing to key on and stays out.
        ("Gateway__RateLimit__PerIp__Requests", "1"),
        ("Gateway__RateLimit__PerIp__Period", "10"),
    ])
    .await;
    let stack = public_stack(&fixture.settings(), fixture.upstream());
    let token = fixture.token(None);
    let send = || {
        let stack = stack.clone();
        let request = empty(get("/api/v1/policies", Some(&token)));
        async move { Answer::from(stack.oneshot(request).await.expect("infallible")).await }
    };
    // The proxy answers 502 (nothing listens upstream), with the client's fields added.
    for remaining in [1, 0] {
        let passed = send().await;
        assert_eq!(passed.status, StatusCode::BAD_GATEWAY);
        assert_eq!(passed.headers["ratelimit-policy"], "\"client\";q=2;w=10");
        let state = passed.headers["ratelimit"].to_str().expect("ascii");
        assert!(
            state.starts_with(&format!("\"client\";r={remaining};t=")),
            "{state}"
        );
    }
    let refused = send().await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.json["error"], "rate_limited");
    assert_eq!(refused.headers["retry-after"], "5");
    assert_eq!(refused.headers["ratelimit"], "\"client\";r=0;t=5");
    // Only the two that passed reached the proxy.
    let text = fixture.metrics.render(None);
    assert!(
        text.contains("halo_gateway_upstream_errors_total{kind=\"connect\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("halo_gateway_rate_limited_total{limit=\"client\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn the_request_id_is_the_clients_when_safe_and_a_uuid_otherwise() {
    let fixture = Fixture::start().await;
    let stack = public_stack(&fixture.settings(), fixture.upstream());
    for (sent, kept) in [
        (Some("abc-123"), true),
        (Some("has space"), false),
        (None, false),
    ] {
        let mut builder = get("/api/v1/policies", None);
        if let Some(id) = sent {
            builder = builder.header("x-request-id", id);
        }
        let response = stack
            .clone()
            .oneshot(empty(builder))
            .await
            .expect("infallible");
        let id = response.headers()["x-request-id"].to_str().expect("ascii");
        if kept {
            assert_eq!(Some(id), sent);
        } else {
            assert!(uuid_like(id), "{sent:?} -> {id}");
        }
    }
}

#[tokio::test]
async fn the_proxy_service_answers_an_unreachable_upstream_with_502_and_counts_it() {
    let fixture = Fixture::start().await;
    let metrics = Arc::new(Metrics::new());
    let proxy = ProxyService::new(
        fixture.upstream(),
        Arc::new(ForwardingOptions::default()),
        metrics.clone(),
    );
    let request = empty(get("/api/v1/policies", None)).map(|body| {
        halo_gateway::http::RequestBody::new(
            halo_gateway::auth::AuthorizedBody::Left(body),
            None,
            Duration::from_secs(5),
            None,
        )
    });
    let answer = Answer::from(proxy.clone().oneshot(request).await.expect("infallible")).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.json["error"], "upstream_unavailable");
    assert_eq!(
        metrics
            .upstream_errors
            .get_or_create(&KindLabels { kind: "connect" })
            .get(),
        1
    );

    // Without the request-checks layer in front, the proxy still refuses an ambiguous path.
    let request = empty(get("/api/%2e%2e/%2e%2e/etc", None)).map(|body| {
        halo_gateway::http::RequestBody::new(
            halo_gateway::auth::AuthorizedBody::Left(body),
            None,
            Duration::from_secs(5),
            None,
        )
    });
    let answer = Answer::from(proxy.oneshot(request).await.expect("infallible")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json["error"], "invalid_request");
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36
        && id.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        })
}
