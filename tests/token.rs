//! `halo-gateway token` and `token exec`: the real binary against the embedded issuer, with
//! requests counted at the issuer.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use halo_gateway::dev::client_auth::KeyClient;
use halo_gateway::dev::issuer::{DevClient, Issuer, IssuerOptions, TokenFault};
use halo_gateway::token::error::OKTA_DPOP_SETTING;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::support::{client as http_client, loopback, now};

/// An issuer with one secret client (and whatever `options` add), plus a private cache dir.
struct Fixture {
    issuer: Issuer,
    cache: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Self {
        Self::with(IssuerOptions::default()).await
    }

    async fn with(options: IssuerOptions) -> Self {
        Self {
            issuer: Issuer::start(loopback(), options)
                .await
                .expect("issuer starts"),
            cache: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn client(&self) -> &DevClient {
        &self.issuer.clients()[1]
    }

    /// `halo-gateway token ARGS` with only the variables of Halo's guide set.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_halo-gateway"));
        command
            .arg("token")
            .args(args)
            .env_clear()
            .env("OKTA_ISSUER_URI", self.issuer.url())
            .env("CLIENT_ID", &self.client().id)
            .env("CLIENT_SECRET", &self.client().secret)
            .env("HALO_TOKEN_CACHE_DIR", self.cache.path())
            .stdin(Stdio::null());
        command
    }

    async fn run(&self, args: &[&str]) -> Run {
        Run::of(self.command(args).output().await.expect("the binary runs"))
    }

    fn cache_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.cache.path())
            .map(|dir| dir.map(|e| e.expect("entry").path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    fn cache_entries(&self) -> Vec<PathBuf> {
        self.cache_files()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect()
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The token printed by a successful default-format run; it never reaches stderr.
    fn token(&self) -> String {
        assert_eq!(self.code, 0, "{self:?}");
        let token = self.stdout.trim_end_matches('\n');
        assert!(
            token.split('.').count() == 3 && !token.contains('\n'),
            "stdout is the token alone: {self:?}"
        );
        assert!(!self.stderr.contains(token), "token on stderr: {self:?}");
        token.to_owned()
    }

    fn failed_with(&self, code: i32, phrases: &[&str]) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(
            self.stdout.is_empty(),
            "nothing on stdout on failure: {self:?}"
        );
        for phrase in phrases {
            assert!(self.stderr.contains(phrase), "{phrase:?} in {self:?}");
        }
    }
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

fn header_of(jwt: &str) -> Value {
    let header = jwt.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json")
}

fn write_key(dir: &Path, pem: &str) -> String {
    let path = dir.join("client.pem");
    std::fs::write(&path, pem).expect("key written");
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn a_cached_token_is_reused_without_any_request() {
    let f = Fixture::start().await;
    let first = f.run(&[]).await.token();
    assert_eq!(
        (f.issuer.metadata_fetches(), f.issuer.token_requests()),
        (1, 1)
    );
    assert_eq!(claims_of(&first)["sub"], f.client().id.as_str());

    let second = f.run(&["--verbose"]).await;
    assert_eq!(second.token(), first);
    assert!(second.stderr.contains("cached token"), "{second:?}");
    assert_eq!(
        (f.issuer.metadata_fetches(), f.issuer.token_requests()),
        (1, 1),
        "a cache hit makes no HTTP request"
    );
}

#[tokio::test]
async fn force_refresh_fetches_and_caches_a_new_token() {
    let f = Fixture::start().await;
    let first = f.run(&[]).await.token();
    let refreshed = f.run(&["--force-refresh"]).await.token();
    assert_eq!(f.issuer.token_requests(), 2);
    assert_ne!(refreshed, first);
    assert_eq!(
        f.run(&[]).await.token(),
        refreshed,
        "the refreshed token is cached"
    );
    assert_eq!(f.issuer.token_requests(), 2);
}

#[tokio::test]
async fn no_cache_neither_reads_nor_writes() {
    let f = Fixture::start().await;
    f.run(&["--no-cache"]).await.token();
    f.run(&["--no-cache"]).await.token();
    assert_eq!(f.issuer.token_requests(), 2);
    assert!(f.cache_files().is_empty(), "{:?}", f.cache_files());
}

#[tokio::test]
async fn a_token_near_expiry_is_fetched_again() {
    let f = Fixture::start().await;
    f.run(&[]).await.token();
    // A cached one-hour token with 300 s left: under 10 % of its lifetime (360 s).
    let [entry] = f.cache_entries().try_into().expect("one entry");
    let mut cached: Value =
        serde_json::from_slice(&std::fs::read(&entry).expect("read")).expect("json");
    cached["issued_at"] = json!(now() - 3300);
    cached["expires_at"] = json!(now() + 300);
    std::fs::write(&entry, cached.to_string()).expect("write");
    f.run(&[]).await.token();
    assert_eq!(f.issuer.token_requests(), 2);

    // Tokens that live under a minute are never handed out from the cache.
    let short = Fixture::with(IssuerOptions {
        token_lifetime: Duration::from_secs(50),
        ..IssuerOptions::default()
    })
    .await;
    short.run(&[]).await.token();
    short.run(&[]).await.token();
    assert_eq!(short.issuer.token_requests(), 2);
}

#[tokio::test]
async fn a_different_scope_set_is_a_different_entry() {
    let f = Fixture::with(IssuerOptions {
        scopes: vec!["halo.api".into(), "halo.read".into()],
        ..IssuerOptions::default()
    })
    .await;
    let one = f.run(&["--scope", "halo.api"]).await.token();
    let two = f
        .run(&["--scope", "halo.read", "--scope", "halo.api"])
        .await
        .token();
    assert_ne!(one, two);
    assert_eq!(claims_of(&two)["scp"], json!(["halo.api", "halo.read"]));
    assert_eq!(f.issuer.token_requests(), 2);
    assert_eq!(f.cache_entries().len(), 2);
    // Same sets in another order and spelling hit their entries.
    assert_eq!(f.run(&[]).await.token(), one);
    assert_eq!(f.run(&["--scope", "halo.api halo.read"]).await.token(), two);
    assert_eq!(f.issuer.token_requests(), 2);
}

#[tokio::test]
async fn cache_files_are_private_and_hold_no_secret() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::start().await;
    let token = f.run(&[]).await.token();
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    let files = f.cache_files();
    assert_eq!(files.len(), 2, "an entry and its lock: {files:?}");
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        let text = std::fs::read_to_string(file).expect("read");
        assert!(!text.contains(&f.client().secret), "{}", file.display());
        assert!(!file.to_string_lossy().contains(&f.client().id));
    }
    let entry: Value =
        serde_json::from_slice(&std::fs::read(&f.cache_entries()[0]).expect("read")).expect("json");
    assert_eq!(entry["access_token"], token.as_str());
    let expires_at = entry["expires_at"].as_u64().expect("expires_at");
    assert!(expires_at.abs_diff(now() + 3600) < 60, "{entry}");

    // A cache directory that did not exist is created owner-only.
    let nested = f.cache.path().join("a/b");
    let nested_text = nested.to_string_lossy().into_owned();
    f.run(&["--cache-dir", &nested_text, "--force-refresh"])
        .await
        .token();
    assert_eq!(mode(&nested), 0o700);
}

#[tokio::test]
async fn ten_parallel_invocations_make_one_token_request() {
    let f = Fixture::start().await;
    let runs: Vec<_> = (0..10)
        .map(|_| {
            f.command(&[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawns")
                .wait_with_output()
        })
        .collect();
    let outputs = futures_util::future::join_all(runs).await;
    let tokens: Vec<String> = outputs
        .into_iter()
        .map(|o| Run::of(o.expect("runs")).token())
        .collect();
    assert_eq!(f.issuer.token_requests(), 1, "one request between ten jobs");
    assert!(tokens.iter().all(|t| *t == tokens[0]));
}

#[tokio::test]
async fn basic_authentication_form_encodes_an_id_and_secret_with_special_characters() {
    let special = DevClient {
        id: "app+1%:/x".into(),
        secret: "s3+cr%t:/with/slash".into(),
        role: None,
        groups: Vec::new(),
    };
    let f = Fixture::with(IssuerOptions {
        clients: vec![special.clone(), special.clone()],
        ..IssuerOptions::default()
    })
    .await;
    let token = f.run(&[]).await.token();
    assert_eq!(claims_of(&token)["cid"], "app+1%:/x");
    let request = f.issuer.last_token_request().expect("recorded");
    let expected = format!(
        "Basic {}",
        STANDARD.encode("app%2B1%25%3A%2Fx:s3%2Bcr%25t%3A%2Fwith%2Fslash")
    );
    assert_eq!(request.authorization.as_deref(), Some(expected.as_str()));
    let names: Vec<&str> = request.form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["grant_type", "scope"],
        "credentials in the header only"
    );
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_in_the_body_only() {
    let f = Fixture::start().await;
    let secret_file = f.cache.path().join("secret");
    std::fs::write(&secret_file, format!("{}\n", f.client().secret)).expect("write");
    let secret_path = secret_file.to_string_lossy().into_owned();
    let mut command = f.command(&[
        "--auth-method",
        "client_secret_post",
        "--client-secret-file",
        &secret_path,
        "--no-cache",
    ]);
    command.env_remove("CLIENT_SECRET");
    Run::of(command.output().await.expect("runs")).token();
    let request = f.issuer.last_token_request().expect("recorded");
    assert_eq!(request.authorization, None);
    assert_eq!(request.field("client_id"), Some(f.client().id.as_str()));
    assert_eq!(
        request.field("client_secret"),
        Some(f.client().secret.as_str())
    );
}

/// An issuer with one EC and one RSA `private_key_jwt` client.
async fn key_fixture() -> (Fixture, Vec<(KeyClient, String)>) {
    let ec = KeyClient::generate(Some("Admin")).expect("EC key");
    let rsa = KeyClient::generate_rsa(None).expect("RSA key");
    let f = Fixture::with(IssuerOptions {
        key_clients: vec![ec.0.clone(), rsa.0.clone()],
        ..IssuerOptions::default()
    })
    .await;
    (f, vec![ec, rsa])
}

#[tokio::test]
async fn private_key_jwt_sends_an_assertion_with_okta_claims_and_a_single_use_jti() {
    let (f, clients) = key_fixture().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut jtis = Vec::new();
    for ((client, pem), alg) in clients.iter().zip(["ES256", "RS256"]) {
        let key = write_key(dir.path(), pem);
        let mut command = f.command(&[
            "--client-id",
            &client.id,
            "--private-key",
            &key,
            "--key-id",
            client.kid(),
            "--no-cache",
        ]);
        // A secret in the environment does not add a second authentication method.
        command.env("CLIENT_SECRET", "ignored");
        let token = Run::of(command.output().await.expect("runs")).token();
        assert_eq!(claims_of(&token)["sub"], client.id.as_str());
        assert_eq!(
            claims_of(&token).get("role"),
            client.role.as_ref().map(|r| json!(r)).as_ref()
        );

        let request = f.issuer.last_token_request().expect("recorded");
        assert_eq!(request.authorization, None);
        let field = |name: &str| request.field(name).map(str::to_owned);
        assert_eq!(
            field("client_assertion_type").as_deref(),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        assert_eq!(field("client_secret"), None);
        let assertion = field("client_assertion").expect("assertion");
        let header = header_of(&assertion);
        assert_eq!(
            (header["alg"].as_str(), header["kid"].as_str()),
            (Some(alg), Some(client.kid()))
        );
        let claims = claims_of(&assertion);
        assert_eq!(claims["iss"], client.id.as_str());
        assert_eq!(claims["sub"], client.id.as_str());
        assert_eq!(claims["aud"], f.issuer.token_endpoint().as_str());
        let (iat, exp) = (
            claims["iat"].as_u64().expect("iat"),
            claims["exp"].as_u64().expect("exp"),
        );
        assert!(
            iat <= now() && exp > now() && exp <= now() + 300,
            "{claims}"
        );
        jtis.push(claims["jti"].as_str().expect("jti").to_owned());

        // Okta accepts each jti once: the same assertion again is refused.
        let replay = http_client()
            .post(f.issuer.token_endpoint())
            .form(&request.form)
            .send()
            .await
            .expect("sent");
        assert_eq!(replay.status(), 401);
        let body: Value = replay.json().await.expect("json");
        assert_eq!(body["error"], "invalid_client");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap_or_default()
                .contains("already been used")
        );
    }
    assert_ne!(jtis[0], jtis[1], "a fresh jti every time");
    assert_eq!(f.issuer.tokens_issued(), 2);
}

#[tokio::test]
async fn the_issuer_checks_assertions_as_okta_does() {
    let (f, clients) = key_fixture().await;
    let (client, pem) = &clients[0];
    let other = KeyClient::generate(None).expect("key");
    let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).expect("key");
    let other_key = jsonwebtoken::EncodingKey::from_ec_pem(other.1.as_bytes()).expect("key");
    let endpoint = f.issuer.token_endpoint();
    let good = json!({"iss": client.id, "sub": client.id, "aud": endpoint, "iat": now(), "exp": now() + 300});
    let with = |name: &str, value: Value| {
        let mut claims = good.clone();
        claims[name] = value;
        claims
    };
    let cases = [
        (
            "audience",
            with("aud", json!(f.issuer.url())),
            &key,
            "audience",
        ),
        (
            "expiry an hour and more ahead",
            with("exp", json!(now() + 3700)),
            &key,
            "too far into the future",
        ),
        ("expired", with("exp", json!(now() - 10)), &key, "expired"),
        ("subject", with("sub", json!("someone-else")), &key, "'sub'"),
        (
            "signature",
            good.clone(),
            &other_key,
            "signature is invalid",
        ),
    ];
    for (what, claims, signer, phrase) in cases {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(client.kid().to_owned());
        let assertion = jsonwebtoken::encode(&header, &claims, signer).expect("signs");
        let response = client_assertion_request(&endpoint, &assertion).await;
        assert_eq!(response.0, 401, "{what}");
        assert_eq!(response.1["error"], "invalid_client", "{what}");
        let description = response.1["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(phrase), "{what}: {description}");
    }
    // The same assertion without a jti is accepted (Okta makes jti optional).
    let assertion = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &good,
        &key,
    )
    .expect("signs");
    assert_eq!(client_assertion_request(&endpoint, &assertion).await.0, 200);
}

async fn client_assertion_request(endpoint: &str, assertion: &str) -> (u16, Value) {
    let response = http_client()
        .post(endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "halo.api"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn exec_runs_the_command_with_halo_token_and_returns_its_exit_code() {
    let f = Fixture::start().await;
    let token = f.run(&[]).await.token();
    let out = f.cache.path().join("seen");
    let script = format!(
        "printf %s \"$HALO_TOKEN\" > '{}'; cat; echo to-stderr >&2; exit 7",
        out.display()
    );
    let mut child = f
        .command(&["exec", "--", "sh", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"from stdin").await.expect("write");
    drop(stdin);
    let run = Run::of(child.wait_with_output().await.expect("runs"));
    assert_eq!(run.code, 7, "the command's exit code: {run:?}");
    assert_eq!(run.stdout, "from stdin", "stdin and stdout pass through");
    assert_eq!(run.stderr, "to-stderr\n");
    assert_eq!(std::fs::read_to_string(&out).expect("read"), token);
    assert_eq!(f.issuer.token_requests(), 1, "exec uses the cache too");

    let run = f.run(&["exec", "--", "true"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let run = f.run(&["exec", "--", "/nonexistent/command"]).await;
    assert_eq!(run.code, 127, "{run:?}");
    assert!(run.stderr.contains("/nonexistent/command"), "{run:?}");
}

#[tokio::test]
async fn header_and_json_formats() {
    let f = Fixture::start().await;
    let header = f.run(&["--format", "header"]).await;
    assert_eq!(header.code, 0, "{header:?}");
    let token = header
        .stdout
        .strip_prefix("Authorization: Bearer ")
        .and_then(|t| t.strip_suffix('\n'))
        .expect("a header line");
    assert!(!header.stderr.contains(token));
    let json = f.run(&["--format", "json", "--force-refresh"]).await;
    assert_eq!(json.code, 0, "{json:?}");
    let body: Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "halo.api");
    assert!(
        body["expires_at"]
            .as_u64()
            .expect("expires_at")
            .abs_diff(now() + 3600)
            < 60
    );
    let cached = f.run(&["--format", "json"]).await;
    let cached: Value = serde_json::from_str(&cached.stdout).expect("json");
    assert_eq!(cached["access_token"], body["access_token"]);
    assert_eq!(cached["expires_at"], body["expires_at"]);
}

#[tokio::test]
async fn usage_mistakes_exit_2_naming_the_flag_or_variable() {
    let f = Fixture::start().await;
    let mut no_id = f.command(&[]);
    no_id.env_remove("CLIENT_ID");
    Run::of(no_id.output().await.expect("runs")).failed_with(2, &["CLIENT_ID", "--client-id"]);
    let mut no_secret = f.command(&[]);
    no_secret.env_remove("CLIENT_SECRET");
    Run::of(no_secret.output().await.expect("runs")).failed_with(
        2,
        &["CLIENT_SECRET", "--client-secret-file", "--private-key"],
    );
    let mut no_issuer = f.command(&[]);
    no_issuer.env_remove("OKTA_ISSUER_URI");
    Run::of(no_issuer.output().await.expect("runs")).failed_with(2, &["OKTA_ISSUER_URI"]);
    f.run(&["--client-secret-file", "/x", "--private-key", "/y"])
        .await
        .failed_with(2, &["--client-secret-file", "--private-key"]);
    f.run(&["--private-key", "/nonexistent.pem"])
        .await
        .failed_with(2, &["--private-key /nonexistent.pem"]);
    f.run(&["exec"]).await.failed_with(2, &["COMMAND"]);
    assert_eq!(f.issuer.token_requests() + f.issuer.metadata_fetches(), 0);
}

#[tokio::test]
async fn an_unreachable_issuer_or_token_endpoint_exits_1_naming_the_url() {
    let f = Fixture::start().await;
    let metadata = format!("{}/.well-known/oauth-authorization-server", f.issuer.url());
    let endpoint = f.issuer.token_endpoint();
    f.issuer.stop();
    f.run(&[]).await.failed_with(1, &[&metadata]);
    f.run(&["--token-endpoint", &endpoint])
        .await
        .failed_with(1, &[&endpoint]);
}

#[tokio::test]
async fn refusals_exit_3_with_the_servers_error_and_the_fix() {
    let f = Fixture::start().await;
    let mut wrong_secret = f.command(&[]);
    wrong_secret.env("CLIENT_SECRET", "not-the-secret");
    let run = Run::of(wrong_secret.output().await.expect("runs"));
    run.failed_with(
        3,
        &[
            "invalid_client",
            "Client authentication failed",
            "fix: wrong client secret",
        ],
    );
    assert!(
        !run.stderr.contains("not-the-secret"),
        "the secret is never printed"
    );

    f.run(&["--scope", "halo.nothing"]).await.failed_with(
        3,
        &[
            "invalid_scope",
            "halo.nothing",
            "fix: the scope is not defined on the authorization server",
        ],
    );
    f.issuer.set_token_fault(TokenFault::GrantNotEnabled);
    f.run(&[]).await.failed_with(
        3,
        &["unauthorized_client", "fix: the grant type is not enabled"],
    );
    f.issuer.set_token_fault(TokenFault::PolicyDenied);
    f.run(&[])
        .await
        .failed_with(3, &["access_denied", "Access Policies"]);
    assert!(f.cache_entries().is_empty(), "refusals are not cached");
}

#[tokio::test]
async fn an_app_that_requires_dpop_is_explained_with_the_okta_setting() {
    let f = Fixture::start().await;
    for (fault, evidence) in [
        (TokenFault::DpopProofMissing, "invalid_dpop_proof"),
        (TokenFault::DpopNonce, "use_dpop_nonce"),
        (TokenFault::DpopBoundToken, "token_type DPoP"),
    ] {
        f.issuer.set_token_fault(fault);
        f.run(&[])
            .await
            .failed_with(3, &["DPoP", evidence, OKTA_DPOP_SETTING]);
    }
    assert!(
        f.cache_entries().is_empty(),
        "a DPoP-bound token is not cached"
    );
    f.issuer.set_token_fault(TokenFault::None);
    f.run(&[]).await.token();
}

#[tokio::test]
async fn an_explicit_token_endpoint_skips_discovery() {
    let f = Fixture::start().await;
    let endpoint = f.issuer.token_endpoint();
    f.run(&["--token-endpoint", &endpoint]).await.token();
    assert_eq!(
        (f.issuer.metadata_fetches(), f.issuer.token_requests()),
        (0, 1)
    );
}

#[tokio::test]
async fn dpop_key_gets_a_bound_token_through_the_nonce_dance_and_prints_both_header_lines() {
    let f = Fixture::start().await;
    let upstream = crate::support::start_stub().await;
    let config = crate::support::config_for(
        f.issuer.url(),
        &upstream.url(),
        &[("Authentication__Schemes__Bearer__DPoP__Mode", "Required")],
    );
    let gateway = halo_gateway::start(&config).await.expect("gateway starts");
    let url = format!("http://{}/api/v1/policies", gateway.public_addr);
    let keys = tempfile::tempdir().expect("temp dir");
    let key_file = keys.path().join("dpop.pem");
    let key_arg = key_file.to_str().expect("utf-8 path");
    let args = [
        "--dpop-key",
        key_arg,
        "--format",
        "header",
        "--method",
        "get",
        "--url",
        &url,
    ];
    let run = f.run(&args).await;
    assert_eq!(run.code, 0, "{run:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the created key is private");
    }
    assert_eq!(f.issuer.tokens_issued(), 1);
    assert_eq!(
        f.issuer.token_requests(),
        2,
        "Okta's nonce dance: refused once, then issued"
    );
    let recorded = f.issuer.last_token_request().expect("token request");
    assert!(
        recorded.form.iter().all(|(k, _)| k != "dpop"),
        "the proof is a header"
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    let [authorization, dpop] = lines[..] else {
        panic!("two header lines: {run:?}");
    };
    let token = authorization
        .strip_prefix("Authorization: DPoP ")
        .expect("DPoP scheme");
    let proof = dpop.strip_prefix("DPoP: ").expect("DPoP header");
    assert!(claims_of(token)["cnf"]["jkt"].is_string(), "a bound token");
    assert!(!run.stderr.contains(token));
    let send = |proof: String| {
        http_client()
            .get(&url)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .send()
    };
    assert_eq!(send(proof.to_owned()).await.expect("sent").status(), 200);
    assert_eq!(
        upstream.last_request().expect("forwarded").headers["authorization"],
        format!("Bearer {token}")
    );
    assert_eq!(
        send(proof.to_owned()).await.expect("sent").status(),
        401,
        "a proof is used once"
    );
    // The cached token with a fresh proof, from the same key file.
    let again = f.run(&args).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(f.issuer.tokens_issued(), 1, "the token came from the cache");
    let proof = again
        .stdout
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix("DPoP: "))
        .expect("proof");
    assert_eq!(send(proof.to_owned()).await.expect("sent").status(), 200);
}
