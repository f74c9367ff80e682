//! Test harness: the embedded issuer and stub Halo (the same code `halo-gateway dev` runs)
//! plus a gateway, all on 127.0.0.1 port 0, configured through ASP.NET-style variables.

#![allow(dead_code)]

pub mod process;
pub mod redis;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use halo_gateway::config::{AspNetEnv, Config};
use halo_gateway::dev::issuer::{Issuer, IssuerOptions};
use halo_gateway::dev::upstream::StubUpstream;
use halo_gateway::server::RunningGateway;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

pub const AUDIENCE: &str = "api://halo";

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Gateway variables pointing at `issuer` and `upstream`, plus `extra` (which wins).
pub fn env_for(issuer: &str, upstream: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = vec![
        (
            "Authentication__Schemes__Bearer__Authority".into(),
            issuer.into(),
        ),
        (
            "Authentication__Schemes__Bearer__ValidAudiences__0".into(),
            AUDIENCE.into(),
        ),
        (
            "Authentication__Schemes__Bearer__RequireHttpsMetadata".into(),
            "false".into(),
        ),
        ("Gateway__Upstream".into(), upstream.into()),
        ("Gateway__Listen".into(), "127.0.0.1:0".into()),
        ("Gateway__AdminListen".into(), "127.0.0.1:0".into()),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| !name.eq_ignore_ascii_case(k));
        vars.push(((*k).into(), (*v).into()));
    }
    vars
}

pub fn config_for(issuer: &str, upstream: &str, extra: &[(&str, &str)]) -> Config {
    Config::load_with_env(None, AspNetEnv::from_vars(env_for(issuer, upstream, extra)))
        .expect("valid test configuration")
}

/// The embedded issuer with default options, on loopback.
pub async fn start_issuer() -> Issuer {
    Issuer::start(loopback(), IssuerOptions::default())
        .await
        .expect("issuer starts")
}

/// The stub Halo API, on loopback.
pub async fn start_stub() -> StubUpstream {
    StubUpstream::start(loopback()).await.expect("stub starts")
}

/// Issuer + stub + gateway.
pub struct TestEnv {
    pub issuer: Issuer,
    pub upstream: StubUpstream,
    pub gateway: RunningGateway,
    pub http: reqwest::Client,
}

impl TestEnv {
    pub async fn start() -> Self {
        Self::start_with(IssuerOptions::default(), &[]).await
    }

    pub async fn with_settings(extra: &[(&str, &str)]) -> Self {
        Self::start_with(IssuerOptions::default(), extra).await
    }

    pub async fn start_with(options: IssuerOptions, extra: &[(&str, &str)]) -> Self {
        let issuer = Issuer::start(loopback(), options)
            .await
            .expect("issuer starts");
        let upstream = start_stub().await;
        let config = config_for(issuer.url(), &upstream.url(), extra);
        let gateway = halo_gateway::start(&config).await.expect("gateway starts");
        Self {
            issuer,
            upstream,
            gateway,
            http: client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.public_addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.admin_addr)
    }

    /// The admin listener's `/metrics` page, as Prometheus scrapes it.
    pub async fn scrape_metrics(&self) -> String {
        self.http
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("metrics answered")
            .text()
            .await
            .expect("metrics text")
    }

    /// Valid claims for a client, as Okta issues them; tests edit them.
    pub fn claims(&self) -> Value {
        json!({
            "ver": 1,
            "jti": format!("AT.{}", halo_gateway::dev::issuer::random_token(20)),
            "iss": self.issuer.url(),
            "aud": AUDIENCE,
            "iat": now(),
            "exp": now() + 3600,
            "cid": "0oa-test-client",
            "scp": ["halo.api"],
            "sub": "0oa-test-client",
        })
    }

    /// A valid token with `role` (no role claim when `None`).
    pub fn token(&self, role: Option<&str>) -> String {
        let mut claims = self.claims();
        if let Some(role) = role {
            claims["role"] = json!(role);
        }
        self.issuer.sign(&claims)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, token).await
    }

    /// Sends a request without a body to the gateway, with the bearer token if given.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    /// Sends a request with a raw, unnormalized target (reqwest would normalize it).
    pub async fn raw(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> RawResponse {
        raw_request(
            self.gateway.public_addr,
            method,
            target,
            headers,
            Bytes::new(),
        )
        .await
    }
}

/// Sends `method url` without a body and with a bearer token, for tests without a [`TestEnv`].
pub async fn send_bearer(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: impl reqwest::IntoUrl,
    token: &str,
) -> reqwest::Response {
    http.request(method, url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("client")
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// One HTTP/1.1 request over a fresh connection, target sent exactly as given.
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> RawResponse {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut builder = Request::builder().method(method).uri(target);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        builder = builder.header("host", addr.to_string());
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(Full::new(body)).expect("request");
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    RawResponse {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// Waits until `condition` holds (polling), failing after `limit`.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the async `condition` holds (polling), failing after `limit`.
pub async fn eventually_async<F, Fut>(limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `WWW-Authenticate` header of a response, or "".
pub fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A loopback port that was free a moment ago (for child processes that need a fixed one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Runs the `halo-gateway` binary with only `vars` in its environment; returns the exit code
/// and stdout + stderr.
pub async fn run_binary(args: &[&str], vars: Vec<(String, String)>) -> (i32, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_halo-gateway"))
        .args(args)
        .env_clear()
        .envs(vars)
        .output()
        .await
        .expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// The value of one sample `name{labels} value` in a Prometheus text exposition.
pub fn sample(exposition: &str, name_and_labels: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        (series == name_and_labels)
            .then(|| value.parse().ok())
            .flatten()
    })
}

/// The access-log events (target `halo_gateway::access`) among the lines of a JSON log.
pub fn access_events(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["target"] == "halo_gateway::access")
        .collect()
}
