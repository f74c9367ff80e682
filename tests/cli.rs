//! `check-config` and the thin binary's exit codes.

use tokio::process::Command;

use crate::support::{env_for, run_binary, start_issuer};

async fn check_config(vars: Vec<(String, String)>) -> (i32, String) {
    run_binary(&["check-config"], vars).await
}

#[tokio::test]
async fn check_config_prints_settings_and_fetches_keys_once() {
    let issuer = start_issuer().await;
    let (code, out) = check_config(env_for(
        issuer.url(),
        "http://user:s3cret@halo-api:8080",
        &[],
    ))
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Authentication__Schemes__Bearer__ValidAudiences__0 = api://halo"),
        "{out}"
    );
    assert!(
        out.contains("Gateway__Rules__0__Name = health"),
        "Halo's default table is printed: {out}"
    );
    assert!(out.contains("jwks_uri"), "{out}");
    assert!(out.contains(&issuer.current_kid()), "{out}");
    assert!(!out.contains("s3cret"), "secrets are redacted: {out}");
    assert_eq!(issuer.metadata_fetches(), 1);
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn check_config_names_the_missing_setting_with_exit_2() {
    let (code, out) = check_config(vec![("Gateway__Upstream".into(), "http://halo".into())]).await;
    assert_eq!(code, 2);
    assert!(
        out.contains("Authentication__Schemes__Bearer__Authority is required"),
        "{out}"
    );
}

#[tokio::test]
async fn check_config_names_the_failing_url_with_exit_1() {
    let issuer = start_issuer().await;
    let url = issuer.url().to_owned();
    issuer.stop();
    let (code, out) = check_config(env_for(&url, "http://halo", &[])).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{url}/.well-known/openid-configuration")),
        "{out}"
    );
}

#[tokio::test]
async fn serve_refuses_a_bad_configuration_before_binding() {
    let output = Command::new(env!("CARGO_BIN_EXE_halo-gateway"))
        .env_clear()
        .envs(env_for(
            "https://okta.example/oauth2/default",
            "http://halo",
            &[("Authentication__Schemes__Bearer__ClockSkew", "soon")],
        ))
        .output()
        .await
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Authentication__Schemes__Bearer__ClockSkew"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line naming the setting: {stderr}"
    );
}

#[tokio::test]
async fn serve_refuses_a_route_rule_that_does_not_compile_before_binding() {
    let output = Command::new(env!("CARGO_BIN_EXE_halo-gateway"))
        .env_clear()
        .envs(env_for(
            "https://okta.example/oauth2/default",
            "http://halo",
            &[
                ("Gateway__Rules__0__Path", "/api/health"),
                ("Gateway__Rules__1__Path", "/api/**/license"),
            ],
        ))
        .output()
        .await
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Gateway__Rules__1: Path"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}
