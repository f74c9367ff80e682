//! The raw configuration tree as figment merges it: every leaf is text, because environment
//! variables are text and a TOML file may write `300` or `"00:05:00"` for the same setting.
//! Typed parsing (and the error naming the setting) happens in [`super::Config::from_raw`].

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A scalar leaf kept as text: strings, booleans and numbers are all accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Scalar(pub String);

impl Scalar {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_char<E: de::Error>(self, v: char) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// A list setting: a real list (TOML, or `__0`, `__1` variables) or a single value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ScalarList(pub Vec<Scalar>);

impl<'de> Deserialize<'de> for ScalarList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = ScalarList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of values or a single value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ScalarList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Scalar>()? {
                    items.push(item);
                }
                Ok(ScalarList(items))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarList, E> {
                Ok(ScalarList(vec![Scalar(v.to_owned())]))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarList, E> {
                Ok(ScalarList(vec![Scalar(v.to_string())]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarList, E> {
                Ok(ScalarList(vec![Scalar(v.to_string())]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarList, E> {
                Ok(ScalarList(vec![Scalar(v.to_string())]))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _map: A) -> Result<ScalarList, A::Error> {
                Err(de::Error::custom("expected a list, found a table"))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RawConfig {
    pub authentication_scheme: Option<Scalar>,
    #[serde(default)]
    pub authentication: RawAuthentication,
    #[serde(default)]
    pub gateway: RawGateway,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RawAuthentication {
    #[serde(default)]
    pub schemes: RawSchemes,
}

/// Other schemes (Halo also documents `Basic`) may be present in a moved-over configuration;
/// they are ignored rather than refused.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawSchemes {
    #[serde(default)]
    pub bearer: RawBearer,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RawBearer {
    pub authority: Option<Scalar>,
    pub metadata_address: Option<Scalar>,
    pub valid_issuer: Option<Scalar>,
    #[serde(default)]
    pub valid_issuers: ScalarList,
    pub valid_audience: Option<Scalar>,
    #[serde(default)]
    pub valid_audiences: ScalarList,
    pub clock_skew: Option<Scalar>,
    pub require_https_metadata: Option<Scalar>,
    pub role_claim: Option<Scalar>,
    pub default_role: Option<Scalar>,
    pub key_refetch_cooldown: Option<Scalar>,
    pub key_refresh_interval: Option<Scalar>,
    pub key_grace_period: Option<Scalar>,
    pub key_retry_max_backoff: Option<Scalar>,
    pub max_token_lifetime: Option<Scalar>,
    pub max_token_length: Option<Scalar>,
    pub token_cache_size: Option<Scalar>,
    #[serde(default)]
    pub allowed_jwks_hosts: ScalarList,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RawGateway {
    pub listen: Option<Scalar>,
    pub admin_listen: Option<Scalar>,
    pub upstream: Option<Scalar>,
    pub upstream_timeout: Option<Scalar>,
    pub forward_authorization: Option<Scalar>,
    pub shutdown_timeout: Option<Scalar>,
    pub log_format: Option<Scalar>,
    pub log_level: Option<Scalar>,
    pub max_request_body_size: Option<Scalar>,
    #[serde(default)]
    pub trusted_proxies: ScalarList,
    pub https_proxy: Option<Scalar>,
    pub header_read_timeout: Option<Scalar>,
    pub body_idle_timeout: Option<Scalar>,
    pub max_connections: Option<Scalar>,
    pub workers: Option<Scalar>,
    pub max_header_count: Option<Scalar>,
    pub max_header_bytes: Option<Scalar>,
    pub rules: Option<Vec<RawRule>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RawRule {
    pub name: Option<Scalar>,
    #[serde(default)]
    pub methods: ScalarList,
    pub path: Option<Scalar>,
    pub role: Option<Scalar>,
}
