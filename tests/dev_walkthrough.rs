//! Drives the real `halo-gateway dev` binary the way the printed walkthrough does.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{client, free_port, send_bearer};

/// Runs `dev` and reads the `export NAME='value'` lines of its walkthrough.
async fn start_dev() -> (tokio::process::Child, HashMap<String, String>) {
    let (child, exports, _) = start_dev_with_text().await;
    (child, exports)
}

/// Runs `dev`; the `export` lines of its walkthrough, and the whole text.
async fn start_dev_with_text() -> (tokio::process::Child, HashMap<String, String>, String) {
    start_dev_with(&[]).await
}

/// Runs `dev` with `extra` arguments; the `export` lines and the whole text.
async fn start_dev_with(
    extra: &[&str],
) -> (tokio::process::Child, HashMap<String, String>, String) {
    let [gw, admin, issuer, stub] = [free_port(), free_port(), free_port(), free_port()];
    let mut child = Command::new(env!("CARGO_BIN_EXE_halo-gateway"))
        .arg("dev")
        .args(extra)
        .args([
            "--listen",
            &format!("127.0.0.1:{gw}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
        .args([
            "--issuer-listen",
            &format!("127.0.0.1:{issuer}"),
            "--upstream-listen",
            &format!("127.0.0.1:{stub}"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("dev starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut exports = HashMap::new();
    let mut text = String::new();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            text.push_str(&line);
            text.push('\n');
            if let Some(rest) = line.strip_prefix("export ")
                && let Some((name, value)) = rest.split_once('=')
            {
                exports.insert(name.to_owned(), value.trim_matches('\'').to_owned());
            }
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("walkthrough printed");
    // Keep draining stdout so the child never writes into a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, exports, text)
}

/// The (unverified) claims of a token the embedded issuer returned.
fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json")
}

async fn token(
    http: &reqwest::Client,
    issuer: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut request = http.post(format!("{issuer}/v1/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.expect("token request")
}

#[tokio::test]
async fn the_dev_walkthrough_works_end_to_end() {
    let (child, env) = start_dev().await;
    let http = client();
    let issuer = &env["OKTA_ISSUER_URI"];
    let halo = &env["HALO_API_URL"];
    let (user_id, user_secret) = (&env["CLIENT_ID"], &env["CLIENT_SECRET"]);
    let (admin_id, admin_secret) = (&env["ADMIN_CLIENT_ID"], &env["ADMIN_CLIENT_SECRET"]);

    // No token: 401.
    let response = http
        .get(format!("{halo}/api/v1/policies"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);

    // client_secret_basic.
    let response = token(
        &http,
        issuer,
        &[("grant_type", "client_credentials"), ("scope", "halo.api")],
        Some((user_id, user_secret)),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "halo.api");
    let user_token = body["access_token"].as_str().expect("token").to_owned();

    // client_secret_post.
    let response = token(
        &http,
        issuer,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "halo.api"),
            ("client_id", admin_id),
            ("client_secret", admin_secret),
        ],
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let admin_token = response.json::<Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_owned();

    // Token: 200.
    let response = http
        .get(format!("{halo}/api/v1/policies"))
        .bearer_auth(&user_token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);

    // A 5 MB file through /api/v1/rebuild/file, byte-identical.
    let content: Vec<u8> = (0..5_000_000u32).map(|i| (i % 241) as u8).collect();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(content.clone()).file_name("sample.bin"),
    );
    let response = http
        .post(format!("{halo}/api/v1/rebuild/file"))
        .bearer_auth(&user_token)
        .multipart(form)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.expect("body").as_ref() == content.as_slice());

    // License upload: User 403 AdminRoleMissing, Admin 2xx.
    let response = http
        .post(format!("{halo}/api/v1/license"))
        .bearer_auth(&user_token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "AdminRoleMissing"
    );
    let response = http
        .post(format!("{halo}/api/v1/license"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .expect("sent");
    assert!(response.status().is_success(), "{}", response.status());

    // The Groups client: no role claim, its group "Halo Admins" is mapped to Admin.
    let (group_id, group_secret) = (&env["GROUP_CLIENT_ID"], &env["GROUP_CLIENT_SECRET"]);
    let response = token(
        &http,
        issuer,
        &[("grant_type", "client_credentials"), ("scope", "halo.api")],
        Some((group_id, group_secret)),
    )
    .await;
    let group_token = response.json::<Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        claims_of(&group_token)["groups"],
        serde_json::json!(["Halo Admins", "Everyone"])
    );
    let response = http
        .post(format!("{halo}/api/v1/license"))
        .bearer_auth(&group_token)
        .send()
        .await
        .expect("sent");
    assert!(response.status().is_success(), "{}", response.status());

    // Requested scopes out of the allowed set land in scp; without halo.api: 403.
    let response = token(
        &http,
        issuer,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "halo.api halo.admin"),
        ],
        Some((user_id, user_secret)),
    )
    .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["scope"], "halo.api halo.admin");
    let both = body["access_token"].as_str().expect("token");
    assert_eq!(
        claims_of(both)["scp"],
        serde_json::json!(["halo.api", "halo.admin"])
    );
    let response = token(
        &http,
        issuer,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "halo.admin"),
        ],
        Some((user_id, user_secret)),
    )
    .await;
    let narrow = response.json::<Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let response = http
        .get(format!("{halo}/api/v1/policies"))
        .bearer_auth(&narrow)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 403);
    let challenge = crate::support::challenge(&response);
    assert!(
        challenge.contains(r#"error="insufficient_scope", scope="halo.api""#),
        "{challenge}"
    );

    // Errors of the token endpoint.
    let response = token(
        &http,
        issuer,
        &[("grant_type", "client_credentials"), ("scope", "openid")],
        Some((user_id, user_secret)),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_scope"
    );
    let response = token(
        &http,
        issuer,
        &[("grant_type", "client_credentials"), ("scope", "halo.api")],
        Some((user_id, "wrong")),
    )
    .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_client"
    );
    let response = token(
        &http,
        issuer,
        &[("grant_type", "password"), ("scope", "halo.api")],
        Some((user_id, user_secret)),
    )
    .await;
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "unsupported_grant_type"
    );

    // Key rotation, then a new-key token succeeds.
    let rotated: Value = http
        .post(format!("{issuer}/dev/rotate-keys"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let response = token(
        &http,
        issuer,
        &[("grant_type", "client_credentials"), ("scope", "halo.api")],
        Some((user_id, user_secret)),
    )
    .await;
    let new_token = response.json::<Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let header = new_token.split('.').next().expect("header");
    use base64::Engine;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(
        header["kid"], rotated["signing_kid"],
        "signed with the new key"
    );
    let response = http
        .get(format!("{halo}/api/v1/policies"))
        .bearer_auth(&new_token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);

    stop_dev(child).await;
}

#[tokio::test]
async fn dev_refuses_non_loopback_without_the_override() {
    let output = Command::new(env!("CARGO_BIN_EXE_halo-gateway"))
        .args([
            "dev",
            "--issuer-listen",
            "0.0.0.0:0",
            "--upstream-listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--issuer-listen") && stderr.contains("--allow-non-loopback"),
        "{stderr}"
    );
}

#[tokio::test]
async fn dev_can_run_only_the_issuer() {
    let issuer_port = free_port();
    let gateway_port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_halo-gateway"))
        .args([
            "dev",
            "--issuer-only",
            "--issuer-listen",
            &format!("127.0.0.1:{issuer_port}"),
            "--listen",
            &format!("127.0.0.1:{gateway_port}"),
        ])
        .args([
            "--admin-client-id",
            "admin-app",
            "--admin-client-secret",
            "admin-pass",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starts");
    let http = client();
    let issuer = format!("http://127.0.0.1:{issuer_port}/oauth2/default");
    let mut answered = None;
    for _ in 0..100 {
        let request = http
            .post(format!("{issuer}/v1/token"))
            .basic_auth("admin-app", Some("admin-pass"))
            .form(&[("grant_type", "client_credentials"), ("scope", "halo.api")]);
        if let Ok(response) = request.send().await {
            answered = Some(response.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        answered.map(|s| s.as_u16()),
        Some(200),
        "the issuer issues tokens to the given client"
    );
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", gateway_port))
            .await
            .is_err(),
        "no gateway in --issuer-only"
    );
    stop_dev(child).await;
}

/// Stops `dev` as Ctrl-C would (SIGTERM through `sh`'s `kill`), so it removes its temp files.
async fn stop_dev(mut child: tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .await;
    }
    let stopped = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    assert!(stopped.is_ok(), "dev stops on SIGTERM");
}

/// `halo-gateway token` with the walkthrough's exports as its whole environment.
async fn token_command(env: &HashMap<String, String>, args: &[&str]) -> (i32, String, String) {
    let names = [
        "OKTA_ISSUER_URI",
        "CLIENT_ID",
        "CLIENT_SECRET",
        "HALO_TOKEN_CACHE_DIR",
    ];
    let output = Command::new(env!("CARGO_BIN_EXE_halo-gateway"))
        .arg("token")
        .args(args)
        .env_clear()
        .envs(names.iter().map(|n| (n, &env[*n])))
        .output()
        .await
        .expect("runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_walkthrough_gets_its_tokens_with_halo_gateway_token() {
    use std::os::unix::fs::PermissionsExt;
    let (child, env, text) = start_dev_with_text().await;
    // One raw curl token request stays, the others use the command.
    assert_eq!(text.matches("/v1/token").count(), 1, "{text}");
    assert!(text.contains("TOKEN=$(halo-gateway token)"), "{text}");
    assert!(text.contains("halo-gateway token exec --"), "{text}");
    assert!(
        text.contains("--private-key \"$SIGNER_PRIVATE_KEY\""),
        "{text}"
    );

    // The signer's private key: named in the banner, 0600, in a private temp directory.
    let key = std::path::PathBuf::from(&env["SIGNER_PRIVATE_KEY"]);
    assert!(text.contains(&format!("key '{}'", key.display())), "{text}");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(key.parent().expect("dir")), 0o700);
    assert!(key.starts_with(std::env::temp_dir()), "{}", key.display());

    let http = client();
    let halo = &env["HALO_API_URL"];
    let policies = format!("{halo}/api/v1/policies");
    // Step 3: the User client through the exports.
    let (code, user_token, stderr) = token_command(&env, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains(&user_token));
    let response = send_bearer(&http, reqwest::Method::GET, &policies, &user_token).await;
    assert_eq!(response.status(), 200);
    // Step 7: the Groups client, as the walkthrough runs it (its id and secret as CLIENT_*).
    let mut group_env = env.clone();
    group_env.insert("CLIENT_ID".into(), env["GROUP_CLIENT_ID"].clone());
    group_env.insert("CLIENT_SECRET".into(), env["GROUP_CLIENT_SECRET"].clone());
    let (code, group_token, stderr) = token_command(&group_env, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_ne!(group_token, user_token);
    let license = format!("{halo}/api/v1/license");
    let response = send_bearer(&http, reqwest::Method::POST, &license, &group_token).await;
    assert!(response.status().is_success(), "{}", response.status());
    // Step 8: a token granted only halo.admin: 403 insufficient_scope naming halo.api.
    let (code, narrow, stderr) = token_command(&env, &["--scope", "halo.admin"]).await;
    assert_eq!(code, 0, "{stderr}");
    let response = send_bearer(&http, reqwest::Method::GET, &policies, &narrow).await;
    assert_eq!(response.status(), 403);
    let challenge = crate::support::challenge(&response);
    assert!(
        challenge.contains(r#"error="insufficient_scope", scope="halo.api""#),
        "{challenge}"
    );
    // Step 9: the private_key_jwt client.
    let key = key.to_string_lossy().into_owned();
    let (code, signer_token, stderr) = token_command(
        &env,
        &[
            "--client-id",
            &env["SIGNER_CLIENT_ID"],
            "--private-key",
            &key,
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_ne!(signer_token, user_token);
    let response = send_bearer(&http, reqwest::Method::GET, &policies, &signer_token).await;
    assert_eq!(response.status(), 200);
    // Step 10: after a key rotation, --force-refresh gets a token the gateway accepts.
    http.post(format!("{}/dev/rotate-keys", env["OKTA_ISSUER_URI"]))
        .send()
        .await
        .expect("rotated");
    let (code, rotated, stderr) = token_command(&env, &["--force-refresh"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_ne!(rotated, user_token);
    let response = send_bearer(&http, reqwest::Method::GET, &policies, &rotated).await;
    assert_eq!(response.status(), 200);

    stop_dev(child).await;
    assert!(
        !std::path::Path::new(&key).exists(),
        "the private key is removed when dev stops"
    );
}

#[tokio::test]
async fn dev_dpop_accepts_the_walkthroughs_dpop_call_once() {
    let (_child, env, text) = start_dev_with(&["--dpop"]).await;
    assert!(text.contains("# 9. DPoP"), "{text}");
    let url = format!("{}/api/v1/policies", env["HALO_API_URL"]);
    let key = format!("{}/dpop.pem", env["HALO_TOKEN_CACHE_DIR"]);
    let args = [
        "--dpop-key",
        &key,
        "--format",
        "header",
        "--method",
        "GET",
        "--url",
        &url,
    ];
    let (code, lines, stderr) = token_command(&env, &args).await;
    assert_eq!(code, 0, "{stderr}");
    let send = || {
        let mut request = client().get(&url);
        for line in lines.lines() {
            let (name, value) = line.split_once(": ").expect("a header line");
            request = request.header(name, value);
        }
        request.send()
    };
    assert_eq!(send().await.expect("sent").status(), 200);
    assert_eq!(
        send().await.expect("sent").status(),
        401,
        "a proof is used once"
    );
    // Without --dpop the step is not printed (and the gateway does not accept DPoP).
    let (_plain, _, text) = start_dev_with_text().await;
    assert!(!text.contains("# 9. DPoP"), "{text}");
}
