//! Configuration loading, with figment::Jail so the process environment is never mutated.

// figment::Jail closures return figment::Error, which is large; fine in tests.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use figment::Jail;

use super::{Config, ConfigError};

const BEARER: &str = "Authentication__Schemes__Bearer__";

/// Sets the environment of one case.
type Setup = Box<dyn FnOnce(&mut Jail)>;

fn minimal(jail: &mut Jail) {
    jail.set_env(
        format!("{BEARER}Authority"),
        "https://example.okta.com/oauth2/default",
    );
    jail.set_env(format!("{BEARER}ValidAudiences__0"), "api://halo");
    jail.set_env("Gateway__Upstream", "http://halo-api:8080");
}

fn error_of(jail_setup: impl FnOnce(&mut Jail)) -> ConfigError {
    let mut found = None;
    Jail::expect_with(|jail| {
        jail_setup(jail);
        found = Config::load(None).err();
        Ok(())
    });
    found.expect("the configuration must be refused")
}

#[test]
fn defaults_apply_to_a_minimal_environment() {
    Jail::expect_with(|jail| {
        minimal(jail);
        let config = Config::load(None).expect("valid");
        assert_eq!(
            config.auth.valid_issuers,
            ["https://example.okta.com/oauth2/default"]
        );
        assert_eq!(config.auth.clock_skew, Duration::from_secs(300));
        assert!(config.auth.require_https_metadata);
        assert_eq!(config.auth.role_claim, "role");
        assert_eq!(config.auth.default_role, "User");
        assert_eq!(config.gateway.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(config.gateway.admin_listen.to_string(), "0.0.0.0:9090");
        assert_eq!(config.gateway.upstream_timeout, Duration::from_secs(300));
        assert!(config.gateway.forward_authorization);
        Ok(())
    });
}

#[test]
fn indexed_audiences_become_a_list_including_gaps() {
    Jail::expect_with(|jail| {
        minimal(jail);
        jail.set_env(format!("{BEARER}ValidAudiences__1"), "api://b");
        jail.set_env(format!("{BEARER}ValidAudiences__2"), "api://c");
        assert_eq!(
            Config::load(None).expect("valid").auth.valid_audiences,
            ["api://halo", "api://b", "api://c"]
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        minimal(jail);
        jail.set_env(format!("{BEARER}ValidAudiences__2"), "api://c");
        jail.set_env(format!("{BEARER}ValidAudience"), "api://single");
        jail.set_env(format!("{BEARER}ValidIssuers__0"), "https://other/oauth2/x");
        let config = Config::load(None).expect("valid");
        assert_eq!(
            config.auth.valid_audiences,
            ["api://halo", "api://c", "api://single"]
        );
        assert_eq!(
            config.auth.valid_issuers,
            [
                "https://example.okta.com/oauth2/default",
                "https://other/oauth2/x"
            ]
        );
        Ok(())
    });
}

#[test]
fn environment_names_match_case_insensitively_and_override_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "gateway.toml",
            r#"
            [authentication.schemes.bearer]
            authority = "https://file.okta.com/oauth2/default"
            ValidAudiences = ["api://file"]
            ClockSkew = 60
            RequireHttpsMetadata = false
            [Gateway]
            Upstream = "http://file-halo"
            Listen = "127.0.0.1:7000"
            "#,
        )?;
        jail.set_env("AUTHENTICATION__SCHEMES__BEARER__CLOCKSKEW", "00:00:30");
        jail.set_env("gateway__upstream", "http://env-halo");
        let config = Config::load(Some(std::path::Path::new("gateway.toml"))).expect("valid");
        assert_eq!(
            config.auth.authority.as_str(),
            "https://file.okta.com/oauth2/default"
        );
        assert_eq!(config.auth.valid_audiences, ["api://file"]);
        assert_eq!(
            config.auth.clock_skew,
            Duration::from_secs(30),
            "env beats file"
        );
        assert!(!config.auth.require_https_metadata);
        assert_eq!(config.gateway.upstream.as_str(), "http://env-halo/");
        assert_eq!(config.gateway.listen.to_string(), "127.0.0.1:7000");
        Ok(())
    });
}

#[test]
fn every_mistake_names_its_setting() {
    let cases: Vec<(Setup, &str)> = vec![
        (
            Box::new(|j: &mut Jail| {
                minimal(j);
                j.set_env(format!("{BEARER}Authority"), "");
            }),
            "Authentication__Schemes__Bearer__Authority",
        ),
        (
            Box::new(|j: &mut Jail| {
                minimal(j);
                j.set_env(format!("{BEARER}ValidAudiences__0"), "");
            }),
            "ValidAudiences__0",
        ),
        (
            Box::new(|j: &mut Jail| {
                minimal(j);
                j.set_env("Gateway__Upstream", "");
            }),
            "Gateway__Upstream",
        ),
        (
            Box::new(|j: &mut Jail| {
                minimal(j);
                j.set_env("Gateway__Upstream", "not a url");
            }),
            "Gateway__Upstream",
        ),
        (
            Box::new(|j: &mut Jail| {
                minimal(j);
                j.set_env(
                    format!("{BEARER}Authority"),
                    "http://okta.example/oauth2/default",
                );
            }),
            "RequireHttpsMetadata",
        ),
        (
            Box::new(|j: &mut Jail| {
                minimal(j);
                j.set_env(format!("{BEARER}ClockSkew"), "five minutes");
            }),
            "Authentication__Schemes__Bearer__ClockSkew",
        ),
        (
            Box::new(|j: &mut Jail| {
                minimal(j);
                j.set_env("AuthenticationScheme", "Basic");
            }),
            "AuthenticationScheme",
        ),
        (
            Box::new(|j: &mut Jail| {
                minimal(j);
                j.set_env("Gateway__Listen", "everywhere");
            }),
            "Gateway__Listen",
        ),
        (
            Box::new(|j: &mut Jail| {
                minimal(j);
                j.set_env("Gateway__ForwardAuthorization", "maybe");
            }),
            "Gateway__ForwardAuthorization",
        ),
        (
            Box::new(|j: &mut Jail| {
                minimal(j);
                j.set_env("Gateway__TrustedProxies__0", "10.0.0.0/33");
            }),
            "Gateway__TrustedProxies__0",
        ),
        (
            Box::new(|j: &mut Jail| {
                minimal(j);
                j.set_env("Gateway__Typo", "1");
            }),
            "Gateway__Typo",
        ),
    ];
    for (setup, setting) in cases {
        let error = error_of(setup);
        assert!(
            error.to_string().contains(setting),
            "'{error}' should name {setting}"
        );
    }
    let error = error_of(|j| {
        minimal(j);
        j.set_env("AuthenticationScheme", "Basic");
    });
    assert!(
        error.to_string().contains("accepted values: Bearer"),
        "{error}"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    Jail::expect_with(|_jail| {
        let error =
            Config::load(Some(std::path::Path::new("nope.toml"))).expect_err("missing file");
        assert!(error.to_string().contains("nope.toml"), "{error}");
        Ok(())
    });
}

#[test]
fn the_example_file_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/gateway.example.toml");
    Jail::expect_with(|_jail| {
        let config = Config::load(Some(&path)).expect("the shipped example loads");
        assert_eq!(config.auth.valid_audiences, ["api://halo"]);
        assert_eq!(
            config.gateway.rules.len(),
            crate::auth::policy::halo_default_rules().len()
        );
        Ok(())
    });
}
