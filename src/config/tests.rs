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
        assert_eq!(config.gateway.rules, None, "Halo's table applies");
        Ok(())
    });
}

#[test]
fn typed_values_name_their_setting_in_environment_spelling() {
    let cases: &[(&str, &str, &str)] = &[
        ("Gateway__MaxConnections", "many", "Gateway__MaxConnections"),
        ("Gateway__MaxConnections", "0", "Gateway__MaxConnections"),
        (
            "Gateway__UpstreamMaxIdleConnections",
            "-1",
            "Gateway__UpstreamMaxIdleConnections",
        ),
        ("Gateway__MaxHeaderBytes", "100", "Gateway__MaxHeaderBytes"),
        ("Gateway__LogFormat", "xml", "accepted values: json, pretty"),
        ("Gateway__HttpsProxy", "ftp://proxy", "Gateway__HttpsProxy"),
        (
            "Gateway__TrustedProxies__1",
            "nope",
            "Gateway__TrustedProxies__1",
        ),
        (
            "Gateway__Rules__0__Methods__0",
            "G ET",
            "Gateway__Rules__0__Methods__0",
        ),
        ("Gateway__Rules__0__Path", "api", "Gateway__Rules__0__Path"),
        (
            "Gateway__Rules__0__Role",
            "Ops",
            "Gateway__Rules__0__Path is required",
        ),
        (
            "Gateway__Rules__0__Colour",
            "red",
            "Gateway__Rules__0__Colour",
        ),
        (
            "Authentication__Schemes__Bearer__MaxTokenLength",
            "10",
            "MaxTokenLength: must be at least 64",
        ),
        (
            "Authentication__Schemes__Bearer__KeyRefreshInterval",
            "0",
            "KeyRefreshInterval: must be greater than zero",
        ),
    ];
    for (name, value, expected) in cases {
        let error = error_of(|j| {
            minimal(j);
            j.set_env("Gateway__TrustedProxies__0", "10.0.0.0/8");
            j.set_env(name, value);
        });
        assert!(
            error.to_string().contains(expected),
            "{name}={value}: '{error}' should contain {expected}"
        );
    }
}

#[test]
fn a_single_value_is_a_list_of_one_and_an_empty_value_is_unset() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "gateway.toml",
            r#"
            [Authentication.Schemes.Bearer]
            Authority = "https://file.okta.com/oauth2/default"
            ValidAudiences = "api://file"
            [Gateway]
            Upstream = "http://file-halo"
            Listen = "127.0.0.1:7000"
            LogLevel = ""
            "#,
        )?;
        jail.set_env("Gateway__TrustedProxies", "10.1.2.3");
        jail.set_env("Gateway__Listen", " ");
        jail.set_env("Gateway__Rules__0__Methods", "put");
        jail.set_env("Gateway__Rules__0__Path", "/x");
        let config = Config::load(Some(std::path::Path::new("gateway.toml"))).expect("valid");
        assert_eq!(config.auth.valid_audiences, ["api://file"]);
        assert_eq!(config.gateway.trusted_proxies[0].to_string(), "10.1.2.3/32");
        assert_eq!(config.gateway.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(config.gateway.log_level, None);
        let rules = config.gateway.rules.as_deref().expect("configured");
        assert_eq!(rules[0].methods, [http::Method::PUT]);
        Ok(())
    });
}

#[test]
fn defaults_come_from_the_settings_structs_and_derived_values_are_shown() {
    Jail::expect_with(|jail| {
        minimal(jail);
        jail.set_env("Gateway__HttpsProxy", "http://user:pw-123@proxy:3128");
        let config = Config::load(None).expect("valid");
        let defaults = super::GatewaySettings::default();
        assert_eq!(
            config.gateway.header_read_timeout,
            defaults.header_read_timeout
        );
        assert_eq!(config.gateway.max_request_body_size, Some(4 << 30));
        let lines = config.settings().redacted_lines();
        for expected in [
            "AuthenticationScheme = Bearer",
            "Authentication__Schemes__Bearer__ValidIssuer = https://example.okta.com/oauth2/default",
            "Authentication__Schemes__Bearer__ClockSkew = 300s",
            "Gateway__HttpsProxy = http://user:***@proxy:3128/",
            "Gateway__Listen = 0.0.0.0:8080",
        ] {
            assert!(
                lines.iter().any(|l| l == expected),
                "{expected} in {lines:#?}"
            );
        }
        assert!(!lines.iter().any(|l| l.contains("pw-123")), "{lines:#?}");
        Ok(())
    });
}

#[test]
fn the_printed_settings_read_back_to_the_same_configuration() {
    Jail::expect_with(|jail| {
        minimal(jail);
        jail.set_env(format!("{BEARER}ClockSkew"), "00:00:01.5");
        jail.set_env("Gateway__TrustedProxies__0", "10.0.0.0/8");
        jail.set_env("Gateway__Rules__0__Path", "/a/**");
        let printed = Config::load(None)
            .expect("valid")
            .settings()
            .redacted_lines();
        let vars = printed.iter().filter_map(|line| {
            let (name, value) = line.split_once(" = ")?;
            Some((name.to_owned(), value.to_owned()))
        });
        let reread = Config::load_with_env(None, super::AspNetEnv::from_vars(vars))
            .expect("printed settings load");
        assert_eq!(reread.auth.clock_skew, Duration::from_millis(1500));
        assert_eq!(reread.gateway.trusted_proxies[0].to_string(), "10.0.0.0/8");
        assert_eq!(reread.settings().redacted_lines(), printed);
        Ok(())
    });
}

#[test]
fn secret_like_settings_are_redacted_whole() {
    let value =
        serde_json::json!({"Dpop": {"ClientSecret": "hunter2", "Keys": ["a"]}, "ApiKey": 7});
    let mut lines = Vec::new();
    super::print::walk("", &value, false, &mut lines);
    assert_eq!(
        lines,
        [
            "ApiKey = ***",
            "Dpop__ClientSecret = ***",
            "Dpop__Keys__0 = a"
        ]
    );
}

#[test]
fn rate_limits_are_read_with_their_defaults() {
    Jail::expect_with(|jail| {
        minimal(jail);
        jail.set_env("Gateway__RateLimit__Requests", "100");
        jail.set_env("Gateway__RateLimit__Period", "00:01:00");
        jail.set_env("Gateway__RateLimit__Clients__0__Id", "0oa-big");
        jail.set_env("Gateway__RateLimit__Clients__0__Requests", "1000");
        jail.set_env("Gateway__RateLimit__PerIp__Requests", "50");
        jail.set_env("Gateway__RateLimit__PerIp__Period", "1s");
        jail.set_env("Gateway__RateLimit__PerIp__Burst", "200");
        jail.set_env("Gateway__ConcurrencyLimit", "4");
        jail.set_env("Gateway__Rules__0__Path", "/api/v1/rebuild/**");
        jail.set_env("Gateway__Rules__0__RateLimit__Requests", "10");
        jail.set_env("Gateway__Rules__0__RateLimit__Period", "10s");
        jail.set_env("Gateway__Rules__0__ConcurrencyLimit", "2");
        jail.set_env("Gateway__Rules__1__Path", "/**");
        let config = Config::load(None).expect("valid");
        let limits = &config.gateway.limits;
        let minute = Duration::from_secs(60);
        let quota = |requests, period, burst| super::Quota {
            requests,
            period,
            burst,
        };
        assert_eq!(limits.client, Some(quota(100, minute, 100)));
        // An override's Period is the global one; its Burst its own Requests.
        assert_eq!(
            limits.clients,
            [("0oa-big".to_owned(), quota(1000, minute, 1000))]
        );
        assert_eq!(limits.per_ip, Some(quota(50, Duration::from_secs(1), 200)));
        assert_eq!(limits.concurrency, Some(4));
        assert_eq!(
            limits.rules[0].rate,
            Some(quota(10, Duration::from_secs(10), 10))
        );
        assert_eq!(limits.rules[0].concurrency, Some(2));
        assert_eq!(limits.rules[1].rate, None);
        assert!(limits.has_client_limits());
        assert_eq!(config.gateway.redis.timeout, Duration::from_millis(50));
        assert_eq!(config.gateway.redis.url, None);
        Ok(())
    });
}

#[test]
fn rate_limit_mistakes_name_their_setting() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("Gateway__RateLimit__Requests", "0"),
                ("Gateway__RateLimit__Period", "1s"),
            ],
            "Gateway__RateLimit__Requests: must be at least 1",
        ),
        (
            &[
                ("Gateway__RateLimit__Requests", "-5"),
                ("Gateway__RateLimit__Period", "1s"),
            ],
            "Gateway__RateLimit__Requests",
        ),
        (
            &[("Gateway__RateLimit__Requests", "5")],
            "Gateway__RateLimit__Period is required",
        ),
        (
            &[
                ("Gateway__RateLimit__Requests", "5"),
                ("Gateway__RateLimit__Period", "0"),
            ],
            "Gateway__RateLimit__Period: must be a whole number of seconds",
        ),
        (
            &[
                ("Gateway__RateLimit__Requests", "5"),
                ("Gateway__RateLimit__Period", "1.5s"),
            ],
            "Gateway__RateLimit__Period: must be a whole number of seconds",
        ),
        (
            &[
                ("Gateway__RateLimit__Requests", "5"),
                ("Gateway__RateLimit__Period", "1s"),
                ("Gateway__RateLimit__Burst", "0"),
            ],
            "Gateway__RateLimit__Burst: must be at least 1",
        ),
        (
            &[("Gateway__RateLimit__Burst", "5")],
            "Gateway__RateLimit__Requests is required",
        ),
        (
            &[
                ("Gateway__RateLimit__Period", "1s"),
                ("Gateway__RateLimit__Clients__0__Requests", "5"),
            ],
            "Gateway__RateLimit__Clients__0__Id is required",
        ),
        (
            &[
                ("Gateway__RateLimit__Clients__0__Id", "a"),
                ("Gateway__RateLimit__Clients__0__Requests", "5"),
            ],
            "Gateway__RateLimit__Clients__0__Period is required",
        ),
        (
            &[
                ("Gateway__RateLimit__Clients__0__Id", "a"),
                ("Gateway__RateLimit__Clients__0__Period", "1s"),
            ],
            "Gateway__RateLimit__Clients__0__Requests is required",
        ),
        (
            &[("Gateway__RateLimit__PerIp__Requests", "5")],
            "Gateway__RateLimit__PerIp__Period is required",
        ),
        (
            &[("Gateway__ConcurrencyLimit", "0")],
            "Gateway__ConcurrencyLimit: must be at least 1",
        ),
        (
            &[
                ("Gateway__Rules__0__Path", "/a"),
                ("Gateway__Rules__0__RateLimit__Requests", "3"),
            ],
            "Gateway__Rules__0__RateLimit__Period is required",
        ),
        (
            &[
                ("Gateway__Rules__0__Path", "/a"),
                ("Gateway__Rules__0__ConcurrencyLimit", "0"),
            ],
            "Gateway__Rules__0__ConcurrencyLimit: must be at least 1",
        ),
        (
            &[("Gateway__Redis__Url", "http://cache:6379")],
            "Gateway__Redis__Url: scheme 'http' is not supported",
        ),
        (
            &[("Gateway__Redis__Url", "redis://:hunter2@")],
            "Gateway__Redis__Url",
        ),
        (
            &[("Gateway__Redis__Url", "redis://:hunter2@cache:6379/notadb")],
            "Gateway__Redis__Url",
        ),
        (
            &[("Gateway__Redis__Timeout", "0")],
            "Gateway__Redis__Timeout: must be greater than zero",
        ),
    ];
    for (vars, expected) in cases {
        let error = error_of(|j| {
            minimal(j);
            for (name, value) in *vars {
                j.set_env(name, value);
            }
        })
        .to_string();
        assert!(error.contains(expected), "'{error}' should say {expected}");
        assert!(!error.contains("hunter2"), "password in '{error}'");
    }
}

#[test]
fn a_redis_password_is_never_printed() {
    Jail::expect_with(|jail| {
        minimal(jail);
        jail.set_env(
            "Gateway__Redis__Url",
            "rediss://gw:hunter2@cache.example:6380/2",
        );
        let config = Config::load(None).expect("valid");
        let lines = config.settings().redacted_lines();
        assert!(
            lines
                .contains(&"Gateway__Redis__Url = rediss://gw:***@cache.example:6380/2".to_owned()),
            "{lines:?}"
        );
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!lines.iter().any(|l| l.contains("hunter2")));
        Ok(())
    });
}

/// The environment provider's known keys come from the serialized defaults; this checks that
/// derivation sees every field serde reads, in every struct of the tree.
#[test]
fn every_struct_field_is_a_known_key() {
    use super::settings::*;
    let mut fields = std::collections::BTreeSet::new();
    fields.extend(field_names::<Settings>());
    fields.extend(field_names::<Authentication>());
    fields.extend(field_names::<Schemes>());
    fields.extend(field_names::<BearerSettings>());
    fields.extend(field_names::<GatewaySettings>());
    fields.extend(field_names::<RuleConfig>());
    fields.extend(field_names::<RoleMapping>());
    fields.extend(field_names::<DPoPSettings>());
    fields.extend(field_names::<QuotaSettings>());
    fields.extend(field_names::<RateLimitSettings>());
    fields.extend(field_names::<ClientQuotaSettings>());
    fields.extend(field_names::<RedisSettings>());
    let known: std::collections::BTreeSet<&str> =
        super::env::KNOWN_KEYS.iter().map(String::as_str).collect();
    assert_eq!(fields, known);
}

/// The field names serde's derive asks for, captured from `deserialize_struct`.
fn field_names<'de, T: serde::Deserialize<'de>>() -> Vec<&'static str> {
    use serde::de::{self, Visitor};

    struct Capture<'a>(&'a mut Vec<&'static str>);
    impl<'de> de::Deserializer<'de> for Capture<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend_from_slice(fields);
            Err(de::Error::custom("captured"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields = Vec::new();
    let _ = T::deserialize(Capture(&mut fields));
    fields
}

/// A new setting is not done until operators can read about it.
#[test]
fn every_setting_is_documented_in_docs_configuration_md() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let doc = std::fs::read_to_string(&path).expect("docs/configuration.md");
    let missing: Vec<&String> = super::env::KNOWN_KEYS
        .iter()
        .filter(|key| {
            [format!("__{key}"), format!("`{key}__"), format!("`{key}`")]
                .iter()
                .all(|spelling| !doc.contains(spelling.as_str()))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}

#[test]
fn scopes_clients_and_role_mappings_load_from_file_and_environment() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "gateway.toml",
            r#"
            [Authentication.Schemes.Bearer]
            RequiredScopes = ["halo.api"]
            ScopeClaim = "scope"
            [[Authentication.Schemes.Bearer.RoleMappings]]
            Claim = "groups"
            Value = "Halo Admins"
            Role = "Admin"
            [[Gateway.Rules]]
            Path = "/api/v1/license/**"
            Role = "Admin"
            Scopes = "halo.admin"
            Clients = ["a", "b"]
            "#,
        )?;
        minimal(jail);
        jail.set_env(format!("{BEARER}AllowedClients"), "a");
        jail.set_env(format!("{BEARER}ClientIdClaim"), "azp");
        jail.set_env(format!("{BEARER}RoleMappings__1__Claim"), "cid");
        jail.set_env(format!("{BEARER}rolemappings__1__value"), "0oa-bot");
        jail.set_env(format!("{BEARER}RoleMappings__1__Role"), "Admin");
        let config = Config::load(Some(std::path::Path::new("gateway.toml"))).expect("valid");
        assert_eq!(config.auth.required_scopes, ["halo.api"]);
        assert_eq!(
            config.auth.allowed_clients,
            ["a"],
            "a single value is a list of one"
        );
        assert_eq!(config.auth.scope_claim.as_deref(), Some("scope"));
        assert_eq!(config.auth.client_id_claim.as_deref(), Some("azp"));
        // An environment list replaces the file's list as a whole.
        assert_eq!(
            config.auth.role_mappings,
            [super::RoleMapping {
                claim: "cid".into(),
                value: "0oa-bot".into(),
                role: "Admin".into(),
            }]
        );
        let rules = config.gateway.rules.as_deref().expect("rules set");
        assert_eq!(rules[0].scopes, ["halo.admin"]);
        assert_eq!(rules[0].clients, ["a", "b"]);
        Ok(())
    });
}

#[test]
fn scope_client_and_mapping_defaults_are_empty() {
    Jail::expect_with(|jail| {
        minimal(jail);
        let config = Config::load(None).expect("valid");
        assert!(config.auth.required_scopes.is_empty());
        assert!(config.auth.allowed_clients.is_empty());
        assert!(config.auth.role_mappings.is_empty());
        assert_eq!(config.auth.scope_claim, None);
        assert_eq!(config.auth.client_id_claim, None);
        Ok(())
    });
}

#[test]
fn scope_client_and_mapping_mistakes_name_the_setting_with_its_index() {
    let cases: Vec<(Setup, &str)> = vec![
        (
            Box::new(|j: &mut Jail| {
                j.set_env(format!("{BEARER}RequiredScopes__0"), "halo.api");
                j.set_env(format!("{BEARER}RequiredScopes__1"), "halo api");
            }),
            "Authentication__Schemes__Bearer__RequiredScopes__1: 'halo api' contains a space",
        ),
        (
            Box::new(|j: &mut Jail| {
                j.set_env("Gateway__Rules__0__Path", "/api/**");
                j.set_env("Gateway__Rules__0__Scopes", "HALO\"API");
            }),
            "Gateway__Rules__0__Scopes__0: ",
        ),
        (
            Box::new(|j: &mut Jail| {
                j.set_env(format!("{BEARER}RoleMappings__0__Claim"), "groups");
                j.set_env(format!("{BEARER}RoleMappings__0__Value"), "Halo Admins");
            }),
            "Authentication__Schemes__Bearer__RoleMappings__0__Role is required",
        ),
    ];
    for (setup, expected) in cases {
        let error = error_of(|j| {
            minimal(j);
            setup(j);
        });
        assert!(error.to_string().starts_with(expected), "{error}");
    }
    // Settings built in code, which no source trims: an empty client id is refused too.
    let mut settings = crate::config::Settings::default();
    let bearer = &mut settings.authentication.schemes.bearer;
    bearer.authority = url::Url::parse("https://example.okta.com/oauth2/default").ok();
    bearer.valid_audiences = vec!["api://halo".into()];
    bearer.allowed_clients = vec!["a".into(), String::new()];
    settings.gateway.upstream = url::Url::parse("http://halo").ok();
    let error = Config::validate(settings).expect_err("empty client id");
    assert_eq!(
        error.setting(),
        Some("Authentication__Schemes__Bearer__AllowedClients__1")
    );
}
