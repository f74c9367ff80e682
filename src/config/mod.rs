//! Configuration: figment merges the built-in defaults ([`Settings::default`]) < the TOML file
//! < the environment into typed [`Settings`]; [`Config::validate`] then checks what one field's
//! type cannot (required settings, ranges, cross-field rules) and fails with one line naming
//! the setting in environment spelling (`Authentication__Schemes__Bearer__Authority: ...`).
//!
//! Names are the ones Halo's ASP.NET API-Access service uses, so Helm `configuration.*`
//! values move over unchanged.
//!
//! # Adding a setting
//!
//! Add a field, with a doc comment, to the struct in [`settings`] (`BearerSettings`,
//! `GatewaySettings`, or `RuleConfig` for a per-rule setting) and its default to that struct's
//! `Default` impl. That is the whole change: the environment provider learns the name from the
//! serialized defaults, figment parses and names it in errors, `check-config` prints it, and
//! readers reach it as `config.auth.<field>` / `config.gateway.<field>`. A value written as
//! text with its own syntax takes `#[serde(with = "text::one")]` (or `option`, `list`) and a
//! [`text::Text`] impl. Add a range check to [`Config::validate`] only if it has one, and a row
//! to `docs/configuration.md` (a test fails until the name is there).

mod duration;
mod env;
mod limits;
mod print;
pub mod settings;
mod text;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use url::Url;

pub use self::duration::parse_duration;
pub use self::env::{AspNetEnv, Canonical};
pub use self::limits::{LimitsConfig, Quota, RuleLimits};
pub use self::settings::{
    BearerSettings, DPoPMode, DPoPSettings, GatewaySettings, RedisSettings, RedisUrl, RoleMapping,
    RuleConfig, Settings,
};

const BEARER: &str = "Authentication__Schemes__Bearer__";

/// A configuration mistake, reported before any port is bound.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting}: {reason}")]
    Invalid { setting: String, reason: String },
    #[error("{setting} is required ({hint})")]
    Missing { setting: String, hint: &'static str },
    #[error("configuration file {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
}

impl ConfigError {
    /// An invalid value of `setting`, with the reason as a sentence for the operator.
    fn invalid(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            setting: setting.into(),
            reason: reason.into(),
        }
    }

    /// The setting this error is about, in environment-variable spelling.
    pub fn setting(&self) -> Option<&str> {
        match self {
            Self::Invalid { setting, .. } | Self::Missing { setting, .. } => Some(setting),
            Self::File { .. } => None,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub auth: AuthConfig,
    pub gateway: GatewayConfig,
}

/// The bearer settings plus what validation derives from them. Reads of a plain setting go
/// through `Deref` to [`BearerSettings`]; the fields here shadow the written form with the
/// checked one (`authority` is present, `valid_issuers` includes `ValidIssuer`).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Issuer base URL.
    pub authority: Url,
    /// Accepted `iss` values; the first is `ValidIssuer` (default: the authority).
    pub valid_issuers: Vec<String>,
    /// Accepted `aud` values (`ValidAudiences` and `ValidAudience`), any-of, at least one.
    pub valid_audiences: Vec<String>,
    settings: BearerSettings,
}

impl Deref for AuthConfig {
    type Target = BearerSettings;
    fn deref(&self) -> &BearerSettings {
        &self.settings
    }
}

/// The gateway settings plus what validation derives from them (see [`AuthConfig`]).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Base URL of the Halo API.
    pub upstream: Url,
    /// Largest request body; `None` means unlimited (`MaxRequestBodySize = 0`).
    pub max_request_body_size: Option<u64>,
    /// Rate and concurrency limits, complete (`Gateway__RateLimit`, `ConcurrencyLimit`, rules').
    pub limits: LimitsConfig,
    settings: GatewaySettings,
}

impl Deref for GatewayConfig {
    type Target = GatewaySettings;
    fn deref(&self) -> &GatewaySettings {
        &self.settings
    }
}

impl Config {
    /// Loads defaults < `file` < process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, AspNetEnv::from_process())
    }

    /// Loads defaults < `file` < the given environment.
    pub fn load_with_env(file: Option<&Path>, env: AspNetEnv) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::File {
                    path: path.to_owned(),
                    reason: "not found or not a file".into(),
                });
            }
            figment = figment.merge(Canonical(Toml::file_exact(path)));
        }
        // Lossy: environment values are text, so "300" and "true" must read as numbers and
        // booleans.
        let settings: Settings = figment
            .merge(env)
            .extract_lossy()
            .map_err(|e| from_figment(e, file))?;
        Self::validate(settings)
    }

    /// Checks what the field types cannot, and derives the values readers use.
    pub fn validate(settings: Settings) -> Result<Self, ConfigError> {
        let scheme = &settings.authentication_scheme;
        if !scheme.eq_ignore_ascii_case("Bearer") {
            return Err(ConfigError::invalid(
                "AuthenticationScheme",
                format!("'{scheme}' is not supported; accepted values: Bearer"),
            ));
        }
        Ok(Self {
            auth: validate_bearer(settings.authentication.schemes.bearer)?,
            gateway: validate_gateway(settings.gateway)?,
        })
    }

    /// The merged settings, as validated, for printing (`check-config`).
    pub fn settings(&self) -> Settings {
        let mut settings = Settings::default();
        settings.authentication.schemes.bearer = self.auth.settings.clone();
        settings.gateway = self.gateway.settings.clone();
        settings
    }
}

impl Settings {
    /// One `Name__Path = value` line per set value, in environment spelling, with URL
    /// passwords and secret-like settings redacted.
    pub fn redacted_lines(&self) -> Vec<String> {
        print::redacted_lines(self)
    }
}

fn from_figment(error: figment::Error, file: Option<&Path>) -> ConfigError {
    use figment::error::Kind;
    let mut path = error.path.clone();
    let reason = match &error.kind {
        Kind::UnknownField(name, _) => {
            path.push(name.clone());
            "unknown setting".to_owned()
        }
        kind => kind.to_string(),
    };
    if path.is_empty()
        && let Some(file) = file
    {
        return ConfigError::File {
            path: file.to_owned(),
            reason: error.to_string(),
        };
    }
    ConfigError::invalid(path.join("__"), reason)
}

fn validate_bearer(mut s: BearerSettings) -> Result<AuthConfig, ConfigError> {
    let authority = s.authority.clone().ok_or_else(|| ConfigError::Missing {
        setting: format!("{BEARER}Authority"),
        hint: "the issuer URL of the Okta authorization server, e.g. https://example.okta.com/oauth2/default",
    })?;
    require_https(&authority, "Authority", s.require_https_metadata)?;
    if let Some(metadata) = &s.metadata_address {
        require_https(metadata, "MetadataAddress", s.require_https_metadata)?;
    }

    // The URL parser adds a `/` to a bare host; `iss` values carry none.
    let written = if authority.path() == "/" && authority.query().is_none() {
        authority.as_str().trim_end_matches('/')
    } else {
        authority.as_str()
    };
    let valid_issuer = s.valid_issuer.get_or_insert_with(|| written.to_owned());
    let mut valid_issuers = vec![valid_issuer.clone()];
    valid_issuers.extend(s.valid_issuers.iter().cloned());
    valid_issuers.dedup();

    let mut valid_audiences = s.valid_audiences.clone();
    if let Some(single) = &s.valid_audience
        && !valid_audiences.contains(single)
    {
        valid_audiences.push(single.clone());
    }
    if valid_audiences.is_empty() {
        return Err(ConfigError::Missing {
            setting: format!("{BEARER}ValidAudiences__0"),
            hint: "at least one accepted audience, e.g. api://halo",
        });
    }

    positive(
        s.key_refresh_interval,
        &format!("{BEARER}KeyRefreshInterval"),
    )?;
    positive(
        s.key_retry_max_backoff,
        &format!("{BEARER}KeyRetryMaxBackoff"),
    )?;
    at_least(s.max_token_length, 64, &format!("{BEARER}MaxTokenLength"))?;
    scopes(&s.required_scopes, &format!("{BEARER}RequiredScopes"))?;
    clients(&s.allowed_clients, &format!("{BEARER}AllowedClients"))?;
    for (i, mapping) in s.role_mappings.iter().enumerate() {
        role_mapping(mapping, i)?;
    }
    validate_dpop(&s.dpop)?;
    Ok(AuthConfig {
        authority,
        valid_issuers,
        valid_audiences,
        settings: s,
    })
}

fn validate_gateway(s: GatewaySettings) -> Result<GatewayConfig, ConfigError> {
    let upstream = s.upstream.clone().ok_or_else(|| ConfigError::Missing {
        setting: "Gateway__Upstream".into(),
        hint: "base URL of the Halo API, e.g. http://halo-api:8080",
    })?;
    if upstream.query().is_some() || upstream.fragment().is_some() {
        return Err(ConfigError::invalid(
            "Gateway__Upstream",
            "must not have a query or fragment",
        ));
    }
    positive(s.upstream_timeout, "Gateway__UpstreamTimeout")?;
    positive(s.header_read_timeout, "Gateway__HeaderReadTimeout")?;
    positive(s.body_idle_timeout, "Gateway__BodyIdleTimeout")?;
    at_least(s.max_connections, 1, "Gateway__MaxConnections")?;
    at_least(s.workers, 1, "Gateway__Workers")?;
    at_least(s.max_header_count, 1, "Gateway__MaxHeaderCount")?;
    at_least(s.max_header_bytes, 8192, "Gateway__MaxHeaderBytes")?;
    for (i, rule) in s.rules.iter().flatten().enumerate() {
        validate_rule(rule, i)?;
    }
    validate_public_origins(&s.public_origins)?;
    positive(s.redis.timeout, "Gateway__Redis__Timeout")?;
    let limits = limits::validate(&s)?;
    Ok(GatewayConfig {
        upstream,
        max_request_body_size: (s.max_request_body_size != 0).then_some(s.max_request_body_size),
        limits,
        settings: s,
    })
}

/// The shape a rule's path must have (what its segments mean is `auth::policy`'s business),
/// and its scopes and clients.
/// Proof algorithms are asymmetric JWS names, windows positive, the nonce key long enough.
fn validate_dpop(d: &settings::DPoPSettings) -> Result<(), ConfigError> {
    let dpop = format!("{BEARER}DPoP__");
    for (i, alg) in d.algorithms.iter().enumerate() {
        if !DPOP_ALGORITHMS.contains(&alg.as_str()) {
            return Err(ConfigError::invalid(
                format!("{dpop}Algorithms__{i}"),
                format!(
                    "'{alg}' is not an accepted proof algorithm; accepted values: {}",
                    DPOP_ALGORITHMS.join(", ")
                ),
            ));
        }
    }
    if d.algorithms.is_empty() {
        return Err(ConfigError::Missing {
            setting: format!("{dpop}Algorithms__0"),
            hint: "at least one proof algorithm, e.g. ES256",
        });
    }
    positive(d.proof_max_age, &format!("{dpop}ProofMaxAge"))?;
    at_least(d.replay_cache_size, 1, &format!("{dpop}ReplayCacheSize"))?;
    if let Some(secret) = &d.nonce_secret {
        decode_nonce_secret(secret)
            .map_err(|reason| ConfigError::invalid(format!("{dpop}NonceSecret"), reason))?;
    }
    Ok(())
}

/// JWS algorithms a DPoP proof may use: asymmetric only (RFC 9449 §4.2, §11.6).
pub const DPOP_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// The nonce key's bytes: standard or URL-safe base64, at least 32 bytes.
pub fn decode_nonce_secret(secret: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let standard: String = secret
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let bytes = STANDARD_NO_PAD
        .decode(standard)
        .map_err(|_| "is not base64".to_owned())?;
    if bytes.len() < 32 {
        return Err(format!(
            "is {} bytes; use 32 or more random bytes, e.g. from `openssl rand -base64 32`",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Each public origin is `scheme://host[:port]`, nothing more.
fn validate_public_origins(origins: &[Url]) -> Result<(), ConfigError> {
    for (i, origin) in origins.iter().enumerate() {
        if origin.path() != "/"
            || origin.query().is_some()
            || origin.fragment().is_some()
            || !origin.username().is_empty()
            || origin.password().is_some()
        {
            return Err(ConfigError::invalid(
                format!("Gateway__PublicOrigins__{i}"),
                format!(
                    "'{}' must be an origin only (scheme, host, optional port), e.g. https://halo.example.com",
                    redact(origin)
                ),
            ));
        }
    }
    Ok(())
}

/// The shape a rule's path must have; what its segments mean is `auth::policy`'s business.
fn validate_rule(rule: &RuleConfig, index: usize) -> Result<(), ConfigError> {
    scopes(&rule.scopes, &format!("Gateway__Rules__{index}__Scopes"))?;
    clients(&rule.clients, &format!("Gateway__Rules__{index}__Clients"))?;
    let setting = format!("Gateway__Rules__{index}__Path");
    let path = &rule.path;
    if path.is_empty() {
        return Err(ConfigError::Missing {
            setting,
            hint: "the rule's path pattern, e.g. /api/v1/license/**",
        });
    }
    if !path.starts_with('/') {
        return Err(ConfigError::invalid(
            setting,
            format!("'{path}' must start with '/'"),
        ));
    }
    Ok(())
}

/// Scope settings: RFC 6749 §3.3 scope-tokens; `setting__N` names a bad one.
fn scopes(values: &[String], setting: &str) -> Result<(), ConfigError> {
    for (i, scope) in values.iter().enumerate() {
        check_scope_token(scope)
            .map_err(|reason| ConfigError::invalid(format!("{setting}__{i}"), reason))?;
    }
    Ok(())
}

/// Client id settings: not empty.
fn clients(values: &[String], setting: &str) -> Result<(), ConfigError> {
    match values.iter().position(|id| id.trim().is_empty()) {
        Some(i) => Err(ConfigError::invalid(
            format!("{setting}__{i}"),
            "a client id may not be empty",
        )),
        None => Ok(()),
    }
}

/// `RoleMappings__N`: `Claim`, `Value` and `Role` are all required.
fn role_mapping(mapping: &RoleMapping, index: usize) -> Result<(), ConfigError> {
    for (value, name, hint) in [
        (&mapping.claim, "Claim", "the claim to read, e.g. groups"),
        (
            &mapping.value,
            "Value",
            "the claim value that grants the role, e.g. Halo Admins",
        ),
        (&mapping.role, "Role", "the role granted, e.g. Admin"),
    ] {
        if value.trim().is_empty() {
            return Err(ConfigError::Missing {
                setting: format!("{BEARER}RoleMappings__{index}__{name}"),
                hint,
            });
        }
    }
    Ok(())
}

fn require_https(url: &Url, setting: &str, require: bool) -> Result<(), ConfigError> {
    if require && url.scheme() != "https" {
        return Err(ConfigError::invalid(
            format!("{BEARER}{setting}"),
            format!(
                "'{}' uses http:// while {BEARER}RequireHttpsMetadata is true; use https:// or set it to false for local testing",
                redact(url)
            ),
        ));
    }
    Ok(())
}

/// A URL with any password replaced, for printing.
pub fn redact(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

fn positive(d: Duration, setting: &str) -> Result<(), ConfigError> {
    if d.is_zero() {
        Err(ConfigError::invalid(setting, "must be greater than zero"))
    } else {
        Ok(())
    }
}

fn at_least<N: PartialOrd + std::fmt::Display>(
    n: N,
    min: N,
    setting: &str,
) -> Result<(), ConfigError> {
    if n < min {
        Err(ConfigError::invalid(
            setting,
            format!("must be at least {min}"),
        ))
    } else {
        Ok(())
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`; the error is a sentence
/// for the operator.
pub fn check_scope_token(scope: &str) -> Result<(), String> {
    if scope.is_empty() {
        return Err("a scope may not be empty".into());
    }
    match scope
        .chars()
        .find(|c| !matches!(*c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E'))
    {
        None => Ok(()),
        Some(' ') => Err(format!(
            "'{scope}' contains a space; give one scope per index (RFC 6749 §3.3)"
        )),
        Some(c) => Err(format!(
            "'{}' contains {c:?}, which a scope may not (RFC 6749 §3.3: printable ASCII except space, '\"' and '\\')",
            scope.escape_default()
        )),
    }
}

#[cfg(test)]
mod tests;
