//! Rate and concurrency limits (issue 17): 429 answers and RateLimit fields, what counts and
//! what does not, concurrency slots held by streamed bodies, and rates shared through a real
//! Redis (`redis-server`, skipped with a message when it is not installed).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::support::process::{Output, ServeProcess};
use crate::support::redis::RedisServer;
use crate::support::*;

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn metrics(env: &TestEnv) -> String {
    env.gateway.metrics.render(None)
}

/// The value of one sample (`name{labels}`), 0 when the series has not been written yet.
fn count(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or(0.0)
}

/// `Retry-After` and the `t` of a `RateLimit` item named `name`.
fn retry_after_and_t(response: &reqwest::Response, name: &str) -> (u64, u64) {
    let retry_after = header(response, "retry-after")
        .parse()
        .expect("Retry-After");
    let fields = header(response, "ratelimit");
    let item = fields
        .split(", ")
        .find(|item| item.starts_with(&format!("\"{name}\";")))
        .unwrap_or_else(|| panic!("no {name} item in {fields}"));
    let t = item
        .split(';')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no t in {item}"));
    (retry_after, t)
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after_and_ratelimit_fields() {
    let env = TestEnv::with_settings(&[
        ("Gateway__RateLimit__Requests", "2"),
        ("Gateway__RateLimit__Period", "60"),
    ])
    .await;
    let token = env.token(None);
    let first = env.get("/api/v1/policies", Some(&token)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "ratelimit-policy"), "\"client\";q=2;w=60");
    assert_eq!(header(&first, "ratelimit"), "\"client\";r=1;t=30");
    let second = env.get("/api/v1/policies", Some(&token)).await;
    // Full again in a minute (less the time since the first).
    let t = header(&second, "ratelimit");
    assert!(
        t == "\"client\";r=0;t=60" || t == "\"client\";r=0;t=59",
        "{t}"
    );

    let before = env.upstream.requests().len();
    let refused = env.get("/api/v1/policies", Some(&token)).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "ratelimit-policy"), "\"client\";q=2;w=60");
    let (retry_after, t) = retry_after_and_t(&refused, "client");
    assert!(
        t >= 1 && retry_after >= t,
        "Retry-After {retry_after}, t {t}"
    );
    assert!(header(&refused, "ratelimit").contains(";r=0;"));
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "rate_limited");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    assert_eq!(
        env.upstream.requests().len(),
        before,
        "Halo saw a limited request"
    );

    // A different client has its own bucket.
    let mut other = env.claims();
    other["cid"] = json!("0oa-other");
    let other = env.issuer.sign(&other);
    assert_eq!(
        env.get("/api/v1/policies", Some(&other)).await.status(),
        200
    );
    let text = metrics(&env).await;
    assert_eq!(
        count(&text, "halo_gateway_rate_limited_total{limit=\"client\"}"),
        1.0
    );
}

#[tokio::test]
async fn refused_401s_and_429s_take_nothing_from_the_clients_quota() {
    let env = TestEnv::with_settings(&[
        ("Gateway__RateLimit__Requests", "1"),
        ("Gateway__RateLimit__Period", "3600"),
        ("Gateway__Rules__0__Path", "/api/v1/rebuild/**"),
        ("Gateway__Rules__0__Name", "rebuild"),
        ("Gateway__Rules__0__RateLimit__Requests", "1"),
        ("Gateway__Rules__0__RateLimit__Period", "3600"),
        ("Gateway__Rules__1__Path", "/api/v1/license/**"),
        ("Gateway__Rules__1__Methods__0", "POST"),
        ("Gateway__Rules__1__Role", "Admin"),
        ("Gateway__Rules__2__Path", "/**"),
        // The big client's own, larger quota instead of the global one.
        ("Gateway__RateLimit__Clients__0__Id", "0oa-big"),
        ("Gateway__RateLimit__Clients__0__Requests", "3"),
    ])
    .await;
    let token = env.token(None);
    // No token, and a valid token without the rule's role: never counted.
    for _ in 0..3 {
        assert_eq!(env.get("/api/v1/policies", None).await.status(), 401);
        assert_eq!(
            env.send(reqwest::Method::POST, "/api/v1/license/x", Some(&token))
                .await
                .status(),
            403
        );
    }
    assert_eq!(
        env.get("/api/v1/policies", Some(&token)).await.status(),
        200
    );
    assert_eq!(
        env.get("/api/v1/policies", Some(&token)).await.status(),
        429
    );

    let mut big = env.claims();
    big["cid"] = json!("0oa-big");
    let big = env.issuer.sign(&big);
    // Whatever Halo answers (the stub wants a form), the gateway let it through.
    let rebuild = env
        .send(reqwest::Method::POST, "/api/v1/rebuild/file", Some(&big))
        .await;
    assert_eq!(rebuild.status(), 415);
    // Both rates that applied are listed.
    assert_eq!(
        header(&rebuild, "ratelimit-policy"),
        "\"client\";q=3;w=3600, \"rule:rebuild\";q=1;w=3600"
    );
    // Over the rule's rate: refused by the rule, and the client's quota is left alone.
    for _ in 0..3 {
        let refused = env
            .send(reqwest::Method::POST, "/api/v1/rebuild/file", Some(&big))
            .await;
        assert_eq!(refused.status(), 429);
        assert_eq!(
            header(&refused, "ratelimit-policy"),
            "\"rule:rebuild\";q=1;w=3600"
        );
    }
    let after = env.get("/api/v1/policies", Some(&big)).await;
    assert_eq!(after.status(), 200);
    assert_eq!(header(&after, "ratelimit-policy"), "\"client\";q=3;w=3600");
    assert!(header(&after, "ratelimit").starts_with("\"client\";r=1;"));
    let text = metrics(&env).await;
    assert_eq!(
        count(&text, "halo_gateway_rate_limited_total{limit=\"rule\"}"),
        3.0
    );
    assert_eq!(
        count(&text, "halo_gateway_rate_limited_total{limit=\"client\"}"),
        1.0
    );
}

#[tokio::test]
async fn the_per_ip_rate_counts_every_request_before_any_token_work() {
    let env = TestEnv::with_settings(&[
        ("Gateway__RateLimit__PerIp__Requests", "3"),
        ("Gateway__RateLimit__PerIp__Period", "3600"),
    ])
    .await;
    let token = env.token(None);
    assert_eq!(env.get("/api/v1/policies", None).await.status(), 401);
    let garbage = env.get("/api/v1/policies", Some("not-a-token")).await;
    assert_eq!(garbage.status(), 401);
    assert!(header(&garbage, "ratelimit").starts_with("\"ip\";r=1;t=2"));
    assert_eq!(
        env.get("/api/v1/policies", Some(&token)).await.status(),
        200
    );
    let verifications = count(
        &metrics(&env).await,
        "halo_gateway_signature_verifications_total",
    );
    let refused = env.get("/api/v1/policies", Some(&env.token(None))).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "ratelimit-policy"), "\"ip\";q=3;w=3600");
    let text = metrics(&env).await;
    assert_eq!(
        count(&text, "halo_gateway_signature_verifications_total"),
        verifications,
        "a refused request's token was verified"
    );
    assert_eq!(
        count(&text, "halo_gateway_rate_limited_total{limit=\"ip\"}"),
        1.0
    );
}

/// An upstream whose responses send half their body, then the rest once `release` is true.
async fn held_upstream(release: watch::Receiver<bool>) -> String {
    let listener = TcpListener::bind(loopback()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut release = release.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {
                    let head = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello";
                    if stream.write_all(head.as_bytes()).await.is_err()
                        || release.wait_for(|go| *go).await.is_err()
                        || stream.write_all(b"world").await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_concurrency_slot_is_held_until_the_body_is_sent_or_the_client_has_gone() {
    let issuer = start_issuer().await;
    let (release, released) = watch::channel(false);
    let upstream = held_upstream(released).await;
    let config = config_for(
        issuer.url(),
        &upstream,
        &[("Gateway__ConcurrencyLimit", "1")],
    );
    let gateway = halo_gateway::start(&config).await.expect("gateway starts");
    let http = client();
    let url = format!("http://{}/api/v1/policies", gateway.public_addr);
    let token = issuer.token_for(&issuer.clients()[0]);
    let get = || send_bearer(&http, reqwest::Method::GET, &url, &token);

    // The response head has arrived, but its body is still being sent: the slot is held.
    let first = get().await;
    assert_eq!(first.status(), 200);
    let refused = get().await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_eq!(
        header(&refused, "ratelimit-policy"),
        "\"concurrency\";q=1;qu=\"concurrent-requests\""
    );
    assert_eq!(
        refused.json::<Value>().await.expect("json")["error"],
        "concurrency_limited"
    );

    // The client goes away mid-body: its slot comes back.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let second = loop {
        let response = get().await;
        if response.status() == 200 {
            break response;
        }
        assert_eq!(response.status(), 429);
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot never given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        get().await.status(),
        429,
        "the second request holds the slot"
    );

    // Its body is sent in full: the slot comes back.
    release.send(true).expect("upstream listening");
    assert_eq!(second.text().await.expect("body"), "helloworld");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get().await.status() != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot never given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = gateway.metrics.render(None);
    assert!(
        count(
            &text,
            "halo_gateway_rate_limited_total{limit=\"concurrency\"}"
        ) >= 2.0
    );
}

#[tokio::test]
async fn two_gateway_processes_sharing_one_redis_hold_one_quota() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let issuer = start_issuer().await;
    let upstream = start_stub().await;
    let vars = env_for(
        issuer.url(),
        &upstream.url(),
        &[
            ("Gateway__RateLimit__Requests", "4"),
            ("Gateway__RateLimit__Period", "3600"),
            ("Gateway__Redis__Url", &redis.url()),
            // Generous, so a busy test machine does not turn a slow answer into a fallback.
            ("Gateway__Redis__Timeout", "5s"),
        ],
    );
    let replica_a = ServeProcess::start(vars.clone(), Output::Discarded).await;
    let replica_b = ServeProcess::start(vars, Output::Discarded).await;
    let (a, b) = (&replica_a.base, &replica_b.base);
    let http = client();
    let token = issuer.token_for(&issuer.clients()[0]);
    let mut statuses = Vec::new();
    for base in [&a, &b, &a, &b, &a, &b] {
        let url = format!("{base}/api/v1/policies");
        statuses.push(
            send_bearer(&http, reqwest::Method::GET, url, &token)
                .await
                .status()
                .as_u16(),
        );
    }
    // Four between them, not four each.
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    let client_id = &issuer.clients()[0].id;
    assert_eq!(
        redis.keys("halo-gw:rl:*").await,
        [format!("halo-gw:rl:client:{{{client_id}}}")]
    );
}

#[tokio::test]
async fn when_redis_stops_limits_are_kept_per_process_and_shared_again_when_it_is_back() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let env = TestEnv::with_settings(&[
        ("Gateway__RateLimit__Requests", "3"),
        ("Gateway__RateLimit__Period", "3600"),
        ("Gateway__Redis__Url", &redis.url()),
        ("Gateway__Redis__Timeout", "5s"),
    ])
    .await;
    let token = env.token(None);
    let statuses = |n: usize| {
        let env = &env;
        let token = &token;
        async move {
            let mut statuses = Vec::new();
            for _ in 0..n {
                statuses.push(
                    env.get("/api/v1/policies", Some(token))
                        .await
                        .status()
                        .as_u16(),
                );
            }
            statuses
        }
    };
    assert_eq!(statuses(4).await, [200, 200, 200, 429]);
    assert_eq!(redis.keys("halo-gw:rl:*").await.len(), 1);
    let errors = |text: &str| count(text, "halo_gateway_ratelimit_backend_errors_total");
    assert_eq!(errors(&metrics(&env).await), 0.0);

    // Redis gone: the same quota, counted in this process (which has not counted yet): no
    // error reaches the client, and it is not unlimited.
    redis.stop();
    assert_eq!(statuses(4).await, [200, 200, 200, 429]);
    assert!(errors(&metrics(&env).await) >= 4.0);

    // Redis back (empty): shared counting resumes without a restart. The process's own bucket
    // is spent, so the first 200 is Redis's answer.
    redis.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status = env.get("/api/v1/policies", Some(&token)).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "no error reaches the client");
        assert!(
            tokio::time::Instant::now() < deadline,
            "shared counting never resumed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        redis.keys("halo-gw:rl:*").await.len(),
        1,
        "counted in Redis again"
    );
    let errors_after_resume = errors(&metrics(&env).await);
    assert_eq!(statuses(3).await, [200, 200, 429]);
    assert_eq!(errors(&metrics(&env).await), errors_after_resume);
}
