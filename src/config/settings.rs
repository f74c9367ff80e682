//! The settings tree as operators write it, typed, with the one set of built-in defaults.
//!
//! Field names are the setting names (`PascalCase`, as Halo's ASP.NET service spells them);
//! each struct's `Default` is the built-in value figment merges first, so a default lives in
//! exactly one place. Typed leaves that are written as text go through [`super::text`].

use std::net::SocketAddr;
use std::time::Duration;

use http::Method;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use url::Url;

use super::LogFormat;
use super::text;

/// The whole tree: `AuthenticationScheme`, `Authentication__...`, `Gateway__...`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct Settings {
    /// Only `Bearer` is supported.
    pub authentication_scheme: String,
    pub authentication: Authentication,
    pub gateway: GatewaySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            authentication_scheme: "Bearer".into(),
            authentication: Authentication::default(),
            gateway: GatewaySettings::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct Authentication {
    pub schemes: Schemes,
}

/// Other schemes (Halo also documents `Basic`) may be present in a moved-over configuration;
/// they are ignored rather than refused.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Schemes {
    pub bearer: BearerSettings,
}

/// `Authentication__Schemes__Bearer__*`: how tokens are validated and keys are found.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct BearerSettings {
    /// Issuer base URL. Required.
    #[serde(with = "text::option")]
    pub authority: Option<Url>,
    /// Explicit metadata URL; unset: derived from the authority.
    #[serde(with = "text::option")]
    pub metadata_address: Option<Url>,
    /// The main accepted `iss`; unset: the authority as written.
    pub valid_issuer: Option<String>,
    /// Further accepted `iss` values.
    #[serde(with = "text::list")]
    pub valid_issuers: Vec<String>,
    /// Single-audience form, merged into `ValidAudiences`.
    pub valid_audience: Option<String>,
    /// Accepted `aud` values, any-of. At least one (here or in `ValidAudience`) is required.
    #[serde(with = "text::list")]
    pub valid_audiences: Vec<String>,
    /// Leeway for `exp`/`nbf`/`iat` (ASP.NET's default).
    #[serde(with = "text::one")]
    pub clock_skew: Duration,
    /// Refuse `http://` authority, metadata and JWKS URLs.
    pub require_https_metadata: bool,
    /// Claim holding the role(s).
    pub role_claim: String,
    /// Role of a token without the role claim.
    pub default_role: String,
    /// Minimum time between unknown-`kid` refetches; also the negative-cache lifetime.
    #[serde(with = "text::one")]
    pub key_refetch_cooldown: Duration,
    /// Background JWKS refresh interval (sooner if `Cache-Control: max-age` says so).
    #[serde(with = "text::one")]
    pub key_refresh_interval: Duration,
    /// How long a key that left the JWKS stays usable.
    #[serde(with = "text::one")]
    pub key_grace_period: Duration,
    /// Cap of the exponential retry backoff after failed fetches.
    #[serde(with = "text::one")]
    pub key_retry_max_backoff: Duration,
    /// Longest accepted `exp - iat` (Okta's maximum).
    #[serde(with = "text::one")]
    pub max_token_lifetime: Duration,
    /// Longest accepted token in bytes, checked before any parsing.
    pub max_token_length: usize,
    /// Verified-token cache size (entries); 0 disables the cache.
    pub token_cache_size: u64,
    /// Hosts besides the issuer's that may serve the JWKS.
    #[serde(with = "text::list")]
    pub allowed_jwks_hosts: Vec<String>,
    /// Claim with the granted scopes; unset: `scp`, else `scope` (RFC 9068). Set: only it.
    pub scope_claim: Option<String>,
    /// Claim with the client id; unset: `cid`, else `client_id` (RFC 9068).
    pub client_id_claim: Option<String>,
    /// Scopes every non-anonymous route needs (all of them).
    #[serde(with = "text::list")]
    pub required_scopes: Vec<String>,
    /// Client ids allowed on every non-anonymous route; empty: any client.
    #[serde(with = "text::list")]
    pub allowed_clients: Vec<String>,
    /// Claim values that grant roles, in addition to `RoleClaim`.
    pub role_mappings: Vec<RoleMapping>,
    /// `...__DPoP__*`: sender-constrained tokens (RFC 9449).
    #[serde(rename = "DPoP")]
    pub dpop: DPoPSettings,
}

impl Default for BearerSettings {
    fn default() -> Self {
        Self {
            authority: None,
            metadata_address: None,
            valid_issuer: None,
            valid_issuers: Vec::new(),
            valid_audience: None,
            valid_audiences: Vec::new(),
            clock_skew: Duration::from_secs(300),
            require_https_metadata: true,
            role_claim: "role".into(),
            default_role: "User".into(),
            key_refetch_cooldown: Duration::from_secs(10),
            key_refresh_interval: Duration::from_secs(3600),
            key_grace_period: Duration::from_secs(600),
            key_retry_max_backoff: Duration::from_secs(300),
            max_token_lifetime: Duration::from_secs(86_400),
            max_token_length: 16 * 1024,
            token_cache_size: 10_000,
            allowed_jwks_hosts: Vec::new(),
            scope_claim: None,
            client_id_claim: None,
            required_scopes: Vec::new(),
            allowed_clients: Vec::new(),
            role_mappings: Vec::new(),
            dpop: DPoPSettings::default(),
        }
    }
}

/// Whether `Authorization: DPoP` is accepted (RFC 9449 §7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DPoPMode {
    /// The `DPoP` scheme is unsupported, as before DPoP existed here.
    #[default]
    Disabled,
    /// Plain bearer tokens and DPoP-bound tokens, each by its own rules.
    Allowed,
    /// Only DPoP-bound tokens with a valid proof.
    Required,
}

/// `Authentication__Schemes__Bearer__DPoP__*`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct DPoPSettings {
    #[serde(with = "text::one")]
    pub mode: DPoPMode,
    /// Proof signature algorithms accepted (asymmetric only).
    #[serde(with = "text::list")]
    pub algorithms: Vec<String>,
    /// How old a proof's `iat` may be.
    #[serde(with = "text::one")]
    pub proof_max_age: Duration,
    /// How far in the future a proof's `iat` may be.
    #[serde(with = "text::one")]
    pub proof_clock_skew: Duration,
    /// Most proofs the in-memory replay cache remembers at once.
    pub replay_cache_size: u64,
    /// Require a server nonce in every proof (RFC 9449 §9).
    pub require_nonce: bool,
    /// Base64 key (32+ bytes) for stateless nonces, the same on every replica; unset: random
    /// per process.
    pub nonce_secret: Option<String>,
}

impl Default for DPoPSettings {
    fn default() -> Self {
        Self {
            mode: DPoPMode::Disabled,
            algorithms: [
                "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
            ]
            .map(String::from)
            .to_vec(),
            proof_max_age: Duration::from_secs(60),
            proof_clock_skew: Duration::from_secs(5),
            replay_cache_size: 100_000,
            require_nonce: false,
            nonce_secret: None,
        }
    }
}

/// `Gateway__*`: listeners, upstream, the HTTP front's limits and the route policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// Public listener.
    #[serde(with = "text::one")]
    pub listen: SocketAddr,
    /// Admin listener (health, readiness, metrics).
    #[serde(with = "text::one")]
    pub admin_listen: SocketAddr,
    /// Base URL of the Halo API. Required.
    #[serde(with = "text::option")]
    pub upstream: Option<Url>,
    /// Time to the upstream's response headers.
    #[serde(with = "text::one")]
    pub upstream_timeout: Duration,
    /// Keep `Authorization` on the forwarded request.
    pub forward_authorization: bool,
    /// Drain time for in-flight requests after SIGTERM.
    #[serde(with = "text::one")]
    pub shutdown_timeout: Duration,
    /// `json` or `pretty`; unset: `json` when not attached to a terminal.
    #[serde(with = "text::option")]
    pub log_format: Option<LogFormat>,
    /// Log filter (overridden by `RUST_LOG`); unset: `info`.
    pub log_level: Option<String>,
    /// Largest request body in bytes; `0` means unlimited.
    pub max_request_body_size: u64,
    /// Peers whose `X-Forwarded-*`/`Forwarded` headers are trusted.
    #[serde(with = "text::list")]
    pub trusted_proxies: Vec<IpNet>,
    /// Proxy for issuer (metadata/JWKS) requests; unset: none (the system proxy is ignored).
    #[serde(with = "text::option")]
    pub https_proxy: Option<Url>,
    /// Time a client has to send a request's headers. hyper starts this timer as soon as a
    /// connection waits for its next request, so it also bounds idle keep-alive.
    #[serde(with = "text::one")]
    pub header_read_timeout: Duration,
    /// Longest pause while reading a request body before the request is aborted.
    #[serde(with = "text::one")]
    pub body_idle_timeout: Duration,
    /// Concurrent client connections; further connections wait to be accepted.
    pub max_connections: usize,
    /// Event-loop threads serving the public listener, each with its own upstream pool.
    /// Default: the number of CPUs.
    pub workers: usize,
    /// Idle upstream connections each worker keeps for reuse; one finishing beyond that is
    /// closed. Unset: no cap (idle ones close after a minute).
    pub upstream_max_idle_connections: Option<usize>,
    /// Request header count limit (431 beyond it).
    pub max_header_count: usize,
    /// Request head size limit in bytes (431 beyond it).
    pub max_header_bytes: usize,
    /// Route policy, first match wins; unset: Halo's role table (`auth::policy`).
    pub rules: Option<Vec<RuleConfig>>,
    /// Origins clients use (`https://halo.example.com`), for the DPoP `htu` check; unset:
    /// from trusted forwarding headers, else `http://` + `Host`.
    #[serde(with = "text::list")]
    pub public_origins: Vec<Url>,
    /// Per-client and per-IP request rates (`Gateway__RateLimit__*`); unset: none.
    pub rate_limit: RateLimitSettings,
    /// Most requests in flight per client (in this process); unset: none.
    pub concurrency_limit: Option<u32>,
    /// Redis shared by every replica: rate-limit counters and the DPoP replay cache; unset:
    /// kept in each process.
    pub redis: RedisSettings,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            upstream: None,
            upstream_timeout: Duration::from_secs(300),
            forward_authorization: true,
            shutdown_timeout: Duration::from_secs(30),
            log_format: None,
            log_level: None,
            max_request_body_size: 4 << 30,
            trusted_proxies: Vec::new(),
            https_proxy: None,
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            upstream_max_idle_connections: None,
            max_header_count: 100,
            max_header_bytes: 64 * 1024,
            rules: None,
            public_origins: Vec::new(),
            rate_limit: RateLimitSettings::default(),
            concurrency_limit: None,
            redis: RedisSettings::default(),
        }
    }
}

/// One route rule as written (`Gateway__Rules__N__*`): plain data, compiled into a matcher by
/// `auth::policy` at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct RuleConfig {
    /// Bounded label for metrics and logs; unset: the path pattern.
    pub name: Option<String>,
    /// Methods the rule covers (a GET rule also covers HEAD); empty or `*`: every method.
    #[serde(with = "text::list")]
    pub methods: Vec<Method>,
    /// Pattern: literal segments, `*` for one segment, a final `**` for any rest. Required.
    pub path: String,
    /// `Anonymous`, `User` (any valid token), or a role name; unset: `User`.
    pub role: Option<String>,
    /// Scopes this rule needs in addition to `RequiredScopes` (all of them).
    #[serde(with = "text::list")]
    pub scopes: Vec<String>,
    /// Client ids allowed on this rule; with `AllowedClients` too, the client must be in both.
    #[serde(with = "text::list")]
    pub clients: Vec<String>,
    /// A per-client rate for this rule only, on top of `Gateway__RateLimit`; unset: none.
    pub rate_limit: QuotaSettings,
    /// Most requests in flight per client on this rule; unset: none.
    pub concurrency_limit: Option<u32>,
}

/// `RoleMappings__N`: a token whose claim `Claim` equals `Value` (a string claim equal to it,
/// or an array of strings containing it) carries role `Role`. Plain data, read by
/// `auth::access`; all three are required (checked in `Config::validate`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct RoleMapping {
    pub claim: String,
    pub value: String,
    pub role: String,
}

/// A rate as written: `Requests` per `Period`, up to `Burst` at once (unset: `Requests`).
/// Unset `Requests`: no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct QuotaSettings {
    pub requests: Option<u32>,
    #[serde(with = "text::option")]
    pub period: Option<Duration>,
    pub burst: Option<u32>,
}

/// `Gateway__RateLimit__*`: the per-client rate (for every client without an override), the
/// overrides, and the per-IP rate checked before any token work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct RateLimitSettings {
    pub requests: Option<u32>,
    #[serde(with = "text::option")]
    pub period: Option<Duration>,
    pub burst: Option<u32>,
    /// Per-client quotas replacing the one above for that client.
    pub clients: Vec<ClientQuotaSettings>,
    pub per_ip: QuotaSettings,
}

/// `Gateway__RateLimit__Clients__N__*`: one client's own quota. Unset `Period`: the global
/// `Period`; unset `Burst`: this `Requests`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct ClientQuotaSettings {
    /// The client id (the token's client id, else its `sub`). Required.
    pub id: Option<String>,
    pub requests: Option<u32>,
    #[serde(with = "text::option")]
    pub period: Option<Duration>,
    pub burst: Option<u32>,
}

/// `Gateway__Redis__*`: the Redis that replicas share.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]` or `rediss://...` (TLS).
    #[serde(with = "text::option")]
    pub url: Option<RedisUrl>,
    /// Longest wait for Redis on a request before deciding without it.
    #[serde(with = "text::one")]
    pub timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            timeout: Duration::from_millis(50),
        }
    }
}

/// A Redis URL; `Debug` hides the password (the URL is still printed redacted by
/// `check-config`, which reads its text form).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(pub Url);

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::redact(&self.0))
    }
}
