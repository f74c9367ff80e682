//! Configuration: figment merges built-in defaults < TOML file < environment into a
//! [`raw::RawConfig`] of text leaves; [`Config::from_raw`] turns that into real types and
//! fails with one line naming the setting (`Authentication__Schemes__Bearer__Authority: ...`).
//!
//! Names are the ones Halo's ASP.NET API-Access service uses, so Helm `configuration.*`
//! values move over unchanged.

mod duration;
mod env;
pub mod raw;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use ipnet::IpNet;
use url::Url;

pub use self::duration::parse_duration;
pub use self::env::{AspNetEnv, Canonical};
use self::raw::{RawBearer, RawConfig, RawGateway, Scalar, ScalarList};
use crate::auth::policy::{self, RouteRule};

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

/// `Authentication__Schemes__Bearer__*`: how tokens are validated and keys are found.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Issuer base URL. Required.
    pub authority: Url,
    /// Explicit metadata URL; default: derived from the authority.
    pub metadata_address: Option<Url>,
    /// Accepted `iss` values; the first is `ValidIssuer` (default: the authority).
    pub valid_issuers: Vec<String>,
    /// Accepted `aud` values, any-of. At least one is required.
    pub valid_audiences: Vec<String>,
    /// Leeway for `exp`/`nbf`/`iat`. Default 300 s (ASP.NET's).
    pub clock_skew: Duration,
    /// Refuse `http://` metadata and JWKS URLs. Default true.
    pub require_https_metadata: bool,
    /// Claim holding the role(s). Default `role`.
    pub role_claim: String,
    /// Role of a token without the role claim. Default `User`.
    pub default_role: String,
    /// Minimum time between unknown-`kid` refetches; also the negative-cache lifetime. Default 10 s.
    pub key_refetch_cooldown: Duration,
    /// Background JWKS refresh interval (sooner if `Cache-Control: max-age` says so). Default 1 h.
    pub key_refresh_interval: Duration,
    /// How long a key that left the JWKS stays usable. Default 10 min.
    pub key_grace_period: Duration,
    /// Cap of the exponential retry backoff after failed fetches. Default 5 min.
    pub key_retry_max_backoff: Duration,
    /// Longest accepted `exp - iat`. Default 24 h (Okta's maximum).
    pub max_token_lifetime: Duration,
    /// Longest accepted token, checked before any parsing. Default 16 KiB.
    pub max_token_length: usize,
    /// Verified-token cache size (entries). Default 10 000; 0 disables the cache.
    pub token_cache_size: u64,
    /// Hosts besides the issuer's that may serve the JWKS. Default none.
    pub allowed_jwks_hosts: Vec<String>,
}

/// `Gateway__*`: listeners, upstream and the HTTP front's limits.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Public listener. Default `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// Admin listener (health, readiness, metrics). Default `0.0.0.0:9090`.
    pub admin_listen: SocketAddr,
    /// Base URL of the Halo API. Required.
    pub upstream: Url,
    /// Time to the upstream's response headers. Default 300 s.
    pub upstream_timeout: Duration,
    /// Keep `Authorization` on the forwarded request. Default true.
    pub forward_authorization: bool,
    /// Drain time for in-flight requests after SIGTERM. Default 30 s.
    pub shutdown_timeout: Duration,
    /// `json` or `pretty`. Default `json` when not attached to a terminal.
    pub log_format: Option<LogFormat>,
    /// Log filter (overridden by `RUST_LOG`). Default `info`.
    pub log_level: Option<String>,
    /// Largest request body; `None` means unlimited (`0`). Default 4 GiB.
    pub max_request_body_size: Option<u64>,
    /// Peers whose `X-Forwarded-*`/`Forwarded` headers are trusted. Default none.
    pub trusted_proxies: Vec<IpNet>,
    /// Proxy for issuer (metadata/JWKS) requests. Default none: the system proxy is ignored.
    pub https_proxy: Option<Url>,
    /// Time a client has to send a request's headers. hyper starts this timer as soon as a
    /// connection waits for its next request, so it also bounds idle keep-alive. Default 10 s.
    pub header_read_timeout: Duration,
    /// Longest pause while reading a request body before the request is aborted. Default 60 s.
    pub body_idle_timeout: Duration,
    /// Concurrent client connections; further connections wait to be accepted. Default 10 000.
    pub max_connections: usize,
    /// Event-loop threads serving the public listener, each with its own upstream pool.
    /// Default: the number of CPUs.
    pub workers: usize,
    /// Request header count limit (431 beyond it). Default 100.
    pub max_header_count: usize,
    /// Request head size limit in bytes (431 beyond it). Default 64 KiB.
    pub max_header_bytes: usize,
    /// Route policy, first match wins. Default: Halo's role table.
    pub rules: Vec<RouteRule>,
}

impl Config {
    /// Loads defaults < `file` < process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, AspNetEnv::from_process())
    }

    /// Loads defaults < `file` < the given environment.
    pub fn load_with_env(file: Option<&Path>, env: AspNetEnv) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::File {
                    path: path.to_owned(),
                    reason: "not found or not a file".into(),
                });
            }
            figment = figment.merge(Canonical(Toml::file_exact(path)));
        }
        let raw: RawConfig = figment
            .merge(env)
            .extract()
            .map_err(|e| from_figment(e, file))?;
        Self::from_raw(raw)
    }

    /// Validates the raw tree into real types.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let scheme = raw
            .authentication_scheme
            .as_ref()
            .map_or("Bearer", Scalar::as_str);
        if !scheme.eq_ignore_ascii_case("Bearer") {
            return Err(ConfigError::invalid(
                "AuthenticationScheme",
                format!("'{scheme}' is not supported; accepted values: Bearer"),
            ));
        }
        let auth = auth_config(&raw.authentication.schemes.bearer)?;
        let gateway = gateway_config(&raw.gateway)?;
        Ok(Self { auth, gateway })
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

fn auth_config(raw: &RawBearer) -> Result<AuthConfig, ConfigError> {
    let https = parse_bool(
        raw.require_https_metadata.as_ref(),
        &format!("{BEARER}RequireHttpsMetadata"),
        true,
    )?;
    let authority_setting = format!("{BEARER}Authority");
    let authority_text = raw
        .authority
        .as_ref()
        .map(|s| s.as_str().trim())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConfigError::Missing {
            setting: authority_setting.clone(),
            hint: "the issuer URL of the Okta authorization server, e.g. https://example.okta.com/oauth2/default",
        })?;
    let authority = parse_url(authority_text, &authority_setting, https)?;
    let metadata_address = match non_empty(raw.metadata_address.as_ref()) {
        Some(text) => Some(parse_url(text, &format!("{BEARER}MetadataAddress"), https)?),
        None => None,
    };

    let valid_issuer = non_empty(raw.valid_issuer.as_ref())
        .unwrap_or(authority_text)
        .to_owned();
    let mut valid_issuers = vec![valid_issuer];
    valid_issuers.extend(list(&raw.valid_issuers));
    valid_issuers.dedup();

    let mut valid_audiences: Vec<String> = list(&raw.valid_audiences);
    if let Some(single) = non_empty(raw.valid_audience.as_ref())
        && !valid_audiences.iter().any(|a| a == single)
    {
        valid_audiences.push(single.to_owned());
    }
    if valid_audiences.is_empty() {
        return Err(ConfigError::Missing {
            setting: format!("{BEARER}ValidAudiences__0"),
            hint: "at least one accepted audience, e.g. api://halo",
        });
    }

    let max_token_length = parse_number(
        raw.max_token_length.as_ref(),
        &format!("{BEARER}MaxTokenLength"),
        16 * 1024,
    )?;
    if max_token_length < 64 {
        return Err(ConfigError::invalid(
            format!("{BEARER}MaxTokenLength"),
            "must be at least 64 bytes",
        ));
    }
    Ok(AuthConfig {
        authority,
        metadata_address,
        valid_issuers,
        valid_audiences,
        clock_skew: parse_duration_setting(
            raw.clock_skew.as_ref(),
            &format!("{BEARER}ClockSkew"),
            300,
        )?,
        require_https_metadata: https,
        role_claim: non_empty(raw.role_claim.as_ref())
            .unwrap_or("role")
            .to_owned(),
        default_role: non_empty(raw.default_role.as_ref())
            .unwrap_or("User")
            .to_owned(),
        key_refetch_cooldown: parse_duration_setting(
            raw.key_refetch_cooldown.as_ref(),
            &format!("{BEARER}KeyRefetchCooldown"),
            10,
        )?,
        key_refresh_interval: positive(
            parse_duration_setting(
                raw.key_refresh_interval.as_ref(),
                &format!("{BEARER}KeyRefreshInterval"),
                3600,
            )?,
            &format!("{BEARER}KeyRefreshInterval"),
        )?,
        key_grace_period: parse_duration_setting(
            raw.key_grace_period.as_ref(),
            &format!("{BEARER}KeyGracePeriod"),
            600,
        )?,
        key_retry_max_backoff: positive(
            parse_duration_setting(
                raw.key_retry_max_backoff.as_ref(),
                &format!("{BEARER}KeyRetryMaxBackoff"),
                300,
            )?,
            &format!("{BEARER}KeyRetryMaxBackoff"),
        )?,
        max_token_lifetime: parse_duration_setting(
            raw.max_token_lifetime.as_ref(),
            &format!("{BEARER}MaxTokenLifetime"),
            86_400,
        )?,
        max_token_length: max_token_length as usize,
        token_cache_size: parse_number(
            raw.token_cache_size.as_ref(),
            &format!("{BEARER}TokenCacheSize"),
            10_000,
        )?,
        allowed_jwks_hosts: list(&raw.allowed_jwks_hosts),
    })
}

fn gateway_config(raw: &RawGateway) -> Result<GatewayConfig, ConfigError> {
    let upstream_text = non_empty(raw.upstream.as_ref()).ok_or_else(|| ConfigError::Missing {
        setting: "Gateway__Upstream".into(),
        hint: "base URL of the Halo API, e.g. http://halo-api:8080",
    })?;
    let upstream = parse_url(upstream_text, "Gateway__Upstream", false)?;
    if upstream.query().is_some() || upstream.fragment().is_some() {
        return Err(ConfigError::invalid(
            "Gateway__Upstream",
            "must not have a query or fragment",
        ));
    }
    let log_format = match non_empty(raw.log_format.as_ref()) {
        None => None,
        Some(f) if f.eq_ignore_ascii_case("json") => Some(LogFormat::Json),
        Some(f) if f.eq_ignore_ascii_case("pretty") || f.eq_ignore_ascii_case("text") => {
            Some(LogFormat::Pretty)
        }
        Some(f) => {
            return Err(ConfigError::invalid(
                "Gateway__LogFormat",
                format!("'{f}' is not supported; accepted values: json, pretty"),
            ));
        }
    };
    let max_body: u64 = parse_number(
        raw.max_request_body_size.as_ref(),
        "Gateway__MaxRequestBodySize",
        4 << 30,
    )?;
    let trusted_proxies = list(&raw.trusted_proxies)
        .iter()
        .enumerate()
        .map(|(i, text)| {
            parse_cidr(text).ok_or_else(|| {
                ConfigError::invalid(
                    format!("Gateway__TrustedProxies__{i}"),
                    format!("'{text}' is not an IP address or CIDR such as 10.0.0.0/8"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let https_proxy = match non_empty(raw.https_proxy.as_ref()) {
        Some(text) => Some(parse_url(text, "Gateway__HttpsProxy", false)?),
        None => None,
    };
    let rules = match &raw.rules {
        None => policy::halo_default_rules(),
        Some(rules) => rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                RouteRule::parse(
                    non_empty(rule.name.as_ref()),
                    &list(&rule.methods),
                    non_empty(rule.path.as_ref()),
                    non_empty(rule.role.as_ref()),
                )
                .map_err(|reason| ConfigError::invalid(format!("Gateway__Rules__{i}"), reason))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(GatewayConfig {
        listen: parse_addr(raw.listen.as_ref(), "Gateway__Listen", "0.0.0.0:8080")?,
        admin_listen: parse_addr(
            raw.admin_listen.as_ref(),
            "Gateway__AdminListen",
            "0.0.0.0:9090",
        )?,
        upstream,
        upstream_timeout: positive(
            parse_duration_setting(
                raw.upstream_timeout.as_ref(),
                "Gateway__UpstreamTimeout",
                300,
            )?,
            "Gateway__UpstreamTimeout",
        )?,
        forward_authorization: parse_bool(
            raw.forward_authorization.as_ref(),
            "Gateway__ForwardAuthorization",
            true,
        )?,
        shutdown_timeout: parse_duration_setting(
            raw.shutdown_timeout.as_ref(),
            "Gateway__ShutdownTimeout",
            30,
        )?,
        log_format,
        log_level: non_empty(raw.log_level.as_ref()).map(str::to_owned),
        max_request_body_size: (max_body != 0).then_some(max_body),
        trusted_proxies,
        https_proxy,
        header_read_timeout: positive(
            parse_duration_setting(
                raw.header_read_timeout.as_ref(),
                "Gateway__HeaderReadTimeout",
                10,
            )?,
            "Gateway__HeaderReadTimeout",
        )?,
        body_idle_timeout: positive(
            parse_duration_setting(
                raw.body_idle_timeout.as_ref(),
                "Gateway__BodyIdleTimeout",
                60,
            )?,
            "Gateway__BodyIdleTimeout",
        )?,
        max_connections: at_least_one(
            parse_number(
                raw.max_connections.as_ref(),
                "Gateway__MaxConnections",
                10_000,
            )?,
            "Gateway__MaxConnections",
        )? as usize,
        workers: at_least_one(
            parse_number(
                raw.workers.as_ref(),
                "Gateway__Workers",
                std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            )?,
            "Gateway__Workers",
        )? as usize,
        max_header_count: at_least_one(
            parse_number(
                raw.max_header_count.as_ref(),
                "Gateway__MaxHeaderCount",
                100,
            )?,
            "Gateway__MaxHeaderCount",
        )? as usize,
        max_header_bytes: parse_number::<u64>(
            raw.max_header_bytes.as_ref(),
            "Gateway__MaxHeaderBytes",
            64 * 1024,
        )
        .and_then(|n| {
            if n < 8192 {
                Err(ConfigError::invalid(
                    "Gateway__MaxHeaderBytes",
                    "must be at least 8192",
                ))
            } else {
                Ok(n as usize)
            }
        })?,
        rules,
    })
}

fn non_empty(value: Option<&Scalar>) -> Option<&str> {
    value.map(|s| s.as_str().trim()).filter(|s| !s.is_empty())
}

fn list(values: &ScalarList) -> Vec<String> {
    values
        .0
        .iter()
        .map(|s| s.as_str().trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_url(text: &str, setting: &str, require_https: bool) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| {
        ConfigError::invalid(
            setting,
            format!("'{}' is not a URL: {e}", redact_url_text(text)),
        )
    })?;
    match url.scheme() {
        "https" => {}
        "http" if !require_https => {}
        "http" => {
            return Err(ConfigError::invalid(
                setting,
                format!(
                    "'{}' uses http:// while {BEARER}RequireHttpsMetadata is true; use https:// or set it to false for local testing",
                    redact(&url)
                ),
            ));
        }
        other => {
            return Err(ConfigError::invalid(
                setting,
                format!("scheme '{other}' is not supported; use http:// or https://"),
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(setting, "the URL has no host"));
    }
    Ok(url)
}

fn redact_url_text(text: &str) -> String {
    match text.split_once('@') {
        Some((_, rest)) if text.contains("://") => format!("***@{rest}"),
        _ => text.to_owned(),
    }
}

/// A URL with any password replaced, for printing.
pub fn redact(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

fn parse_addr(
    value: Option<&Scalar>,
    setting: &str,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let text = non_empty(value).unwrap_or(default);
    text.parse().map_err(|_| {
        ConfigError::invalid(
            setting,
            format!("'{text}' is not a socket address such as 0.0.0.0:8080"),
        )
    })
}

fn parse_bool(value: Option<&Scalar>, setting: &str, default: bool) -> Result<bool, ConfigError> {
    match non_empty(value) {
        None => Ok(default),
        Some(t) if t.eq_ignore_ascii_case("true") || t == "1" => Ok(true),
        Some(t) if t.eq_ignore_ascii_case("false") || t == "0" => Ok(false),
        Some(t) => Err(ConfigError::invalid(
            setting,
            format!("'{t}' is not a boolean (true or false)"),
        )),
    }
}

fn parse_number<T: std::str::FromStr>(
    value: Option<&Scalar>,
    setting: &str,
    default: T,
) -> Result<T, ConfigError> {
    match non_empty(value) {
        None => Ok(default),
        Some(t) => t.parse().map_err(|_| {
            ConfigError::invalid(setting, format!("'{t}' is not a non-negative whole number"))
        }),
    }
}

fn at_least_one(n: u64, setting: &str) -> Result<u64, ConfigError> {
    if n == 0 {
        Err(ConfigError::invalid(setting, "must be at least 1"))
    } else {
        Ok(n)
    }
}

fn parse_duration_setting(
    value: Option<&Scalar>,
    setting: &str,
    default_secs: u64,
) -> Result<Duration, ConfigError> {
    match non_empty(value) {
        None => Ok(Duration::from_secs(default_secs)),
        Some(text) => parse_duration(text).map_err(|reason| ConfigError::invalid(setting, reason)),
    }
}

fn positive(d: Duration, setting: &str) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(ConfigError::invalid(setting, "must be greater than zero"))
    } else {
        Ok(d)
    }
}

fn parse_cidr(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

impl fmt::Display for Config {
    /// The effective settings, one per line in environment-variable spelling, secrets redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.auth;
        let g = &self.gateway;
        writeln!(f, "AuthenticationScheme = Bearer")?;
        writeln!(f, "{BEARER}Authority = {}", a.authority)?;
        if let Some(m) = &a.metadata_address {
            writeln!(f, "{BEARER}MetadataAddress = {m}")?;
        }
        writeln!(f, "{BEARER}ValidIssuer = {}", a.valid_issuers[0])?;
        for (i, iss) in a.valid_issuers.iter().skip(1).enumerate() {
            writeln!(f, "{BEARER}ValidIssuers__{i} = {iss}")?;
        }
        for (i, aud) in a.valid_audiences.iter().enumerate() {
            writeln!(f, "{BEARER}ValidAudiences__{i} = {aud}")?;
        }
        writeln!(f, "{BEARER}ClockSkew = {}s", a.clock_skew.as_secs_f64())?;
        writeln!(
            f,
            "{BEARER}RequireHttpsMetadata = {}",
            a.require_https_metadata
        )?;
        writeln!(f, "{BEARER}RoleClaim = {}", a.role_claim)?;
        writeln!(f, "{BEARER}DefaultRole = {}", a.default_role)?;
        writeln!(
            f,
            "{BEARER}KeyRefetchCooldown = {}s",
            a.key_refetch_cooldown.as_secs_f64()
        )?;
        writeln!(
            f,
            "{BEARER}KeyRefreshInterval = {}s",
            a.key_refresh_interval.as_secs_f64()
        )?;
        writeln!(
            f,
            "{BEARER}KeyGracePeriod = {}s",
            a.key_grace_period.as_secs_f64()
        )?;
        writeln!(
            f,
            "{BEARER}KeyRetryMaxBackoff = {}s",
            a.key_retry_max_backoff.as_secs_f64()
        )?;
        writeln!(
            f,
            "{BEARER}MaxTokenLifetime = {}s",
            a.max_token_lifetime.as_secs_f64()
        )?;
        writeln!(f, "{BEARER}MaxTokenLength = {}", a.max_token_length)?;
        writeln!(f, "{BEARER}TokenCacheSize = {}", a.token_cache_size)?;
        for (i, h) in a.allowed_jwks_hosts.iter().enumerate() {
            writeln!(f, "{BEARER}AllowedJwksHosts__{i} = {h}")?;
        }
        writeln!(f, "Gateway__Listen = {}", g.listen)?;
        writeln!(f, "Gateway__AdminListen = {}", g.admin_listen)?;
        writeln!(f, "Gateway__Upstream = {}", redact(&g.upstream))?;
        writeln!(
            f,
            "Gateway__UpstreamTimeout = {}s",
            g.upstream_timeout.as_secs_f64()
        )?;
        writeln!(
            f,
            "Gateway__ForwardAuthorization = {}",
            g.forward_authorization
        )?;
        writeln!(
            f,
            "Gateway__ShutdownTimeout = {}s",
            g.shutdown_timeout.as_secs_f64()
        )?;
        writeln!(
            f,
            "Gateway__MaxRequestBodySize = {}",
            g.max_request_body_size.unwrap_or(0)
        )?;
        for (i, p) in g.trusted_proxies.iter().enumerate() {
            writeln!(f, "Gateway__TrustedProxies__{i} = {p}")?;
        }
        if let Some(p) = &g.https_proxy {
            writeln!(f, "Gateway__HttpsProxy = {}", redact(p))?;
        }
        writeln!(
            f,
            "Gateway__HeaderReadTimeout = {}s",
            g.header_read_timeout.as_secs_f64()
        )?;
        writeln!(
            f,
            "Gateway__BodyIdleTimeout = {}s",
            g.body_idle_timeout.as_secs_f64()
        )?;
        writeln!(f, "Gateway__MaxConnections = {}", g.max_connections)?;
        writeln!(f, "Gateway__Workers = {}", g.workers)?;
        writeln!(f, "Gateway__MaxHeaderCount = {}", g.max_header_count)?;
        writeln!(f, "Gateway__MaxHeaderBytes = {}", g.max_header_bytes)?;
        for (i, rule) in g.rules.iter().enumerate() {
            writeln!(f, "Gateway__Rules__{i} = {rule}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
