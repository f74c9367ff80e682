//! Route policy: which role a request needs, from its method and normalized path.
//!
//! Rules are matched in order, first match wins; a request no rule matches needs a valid token
//! of any role (route label `other`). Paths compare case-insensitively and ignore a trailing
//! slash, as Halo's ASP.NET routing does. Pattern syntax: literal segments, `*` for exactly one
//! segment, and a final `**` for zero or more segments.

use std::fmt;
use std::sync::Arc;

use http::Method;
use smallvec::SmallVec;

use super::access::RouteAccess;
use crate::config::{Config, RuleConfig};
use crate::http::path::{NormalizedPath, SegmentKey};

/// What a route demands of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequiredRole {
    /// No token needed (Halo's `/api/health`).
    Anonymous,
    /// Any valid token, whatever its role (Halo's `User` level).
    Authenticated,
    /// A valid token carrying this role (compared exactly, as ASP.NET's `IsInRole`).
    Role(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Upper-cased literal.
    Literal(String),
    /// `*`: any one segment.
    One,
}

/// One `{methods, path pattern, role}` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// Bounded label for metrics and logs.
    pub name: Arc<str>,
    /// Position in `Gateway__Rules` (per-rule limits are found by it); `None` for [`FALLBACK`].
    pub index: Option<usize>,
    /// `None` matches every method.
    methods: Option<Vec<Method>>,
    segments: Vec<Segment>,
    /// Pattern ends with `**`.
    rest: bool,
    pattern: String,
    pub required: RequiredRole,
    /// Scopes and clients: the rule's own (`Scopes`, `Clients`) until compiled into a
    /// [`Policy`], which adds the global `RequiredScopes` and `AllowedClients`.
    pub access: RouteAccess,
}

/// The rule a request the auth layer let through matched, in its extensions (per-rule limits
/// read it).
#[derive(Debug, Clone)]
pub struct MatchedRoute {
    /// Position in `Gateway__Rules`; `None` when no rule matched.
    pub index: Option<usize>,
    pub name: Arc<str>,
}

/// The rule for requests no configured rule matches.
pub static FALLBACK: std::sync::LazyLock<RouteRule> = std::sync::LazyLock::new(|| RouteRule {
    name: "other".into(),
    index: None,
    methods: None,
    segments: Vec::new(),
    rest: true,
    pattern: "/**".into(),
    required: RequiredRole::Authenticated,
    access: RouteAccess::default(),
});

impl RouteRule {
    /// Compiles one configured rule; the error is a sentence for the operator.
    fn compile(rule: &RuleConfig, index: usize) -> Result<Self, String> {
        let pattern = rule.path.as_str();
        if !pattern.starts_with('/') {
            return Err(format!("Path '{pattern}' must start with '/'"));
        }
        let mut segments = Vec::new();
        let mut rest = false;
        let parts: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            match *part {
                "**" if i + 1 == parts.len() => rest = true,
                "**" => {
                    return Err(format!(
                        "Path '{pattern}': '**' may only be the last segment"
                    ));
                }
                "*" => segments.push(Segment::One),
                literal => {
                    let normalized = NormalizedPath::parse(&format!("/{literal}"))
                        .map_err(|e| format!("Path '{pattern}': {e}"))?;
                    let upper = normalized.match_segments().concat();
                    segments.push(Segment::Literal(upper));
                }
            }
        }
        let methods = (!rule.methods.is_empty() && !rule.methods.iter().any(|m| m == "*"))
            .then(|| rule.methods.clone());
        let required = match rule.role.as_deref() {
            None => RequiredRole::Authenticated,
            Some(r) if r.eq_ignore_ascii_case("anonymous") => RequiredRole::Anonymous,
            Some(r)
                if r.eq_ignore_ascii_case("authenticated") || r.eq_ignore_ascii_case("user") =>
            {
                RequiredRole::Authenticated
            }
            Some(r) => RequiredRole::Role(r.to_owned()),
        };
        Ok(Self {
            name: rule.name.as_deref().unwrap_or(pattern).into(),
            index: Some(index),
            methods,
            segments,
            rest,
            pattern: pattern.to_owned(),
            required,
            access: RouteAccess::of_rule(rule),
        })
    }

    fn matches(&self, method: &Method, path: &[SegmentKey<'_>]) -> bool {
        if let Some(methods) = &self.methods {
            // HEAD reads what GET reads, so a GET rule also covers HEAD.
            let m = if method == Method::HEAD {
                &Method::GET
            } else {
                method
            };
            if !methods
                .iter()
                .any(|allowed| allowed == m || (allowed == Method::HEAD && method == Method::HEAD))
            {
                return false;
            }
        }
        if path.len() < self.segments.len() || (!self.rest && path.len() != self.segments.len()) {
            return false;
        }
        self.segments
            .iter()
            .zip(path)
            .all(|(seg, actual)| match seg {
                Segment::One => true,
                Segment::Literal(lit) => actual.matches(lit),
            })
    }
}

impl fmt::Display for RouteRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let methods = self.methods.as_ref().map_or_else(
            || "*".to_owned(),
            |m| m.iter().map(Method::as_str).collect::<Vec<_>>().join(","),
        );
        let role = match &self.required {
            RequiredRole::Anonymous => "Anonymous",
            RequiredRole::Authenticated => "User",
            RequiredRole::Role(r) => r,
        };
        write!(f, "{} {} {} -> {}", self.name, methods, self.pattern, role)?;
        if !self.access.scopes.is_empty() {
            write!(f, ", scopes {}", self.access.scopes.join(" "))?;
        }
        for clients in &self.access.client_lists {
            write!(f, ", clients {}", clients.join(" "))?;
        }
        Ok(())
    }
}

/// The ordered rule table, each rule's scopes and clients combined with the global ones.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<RouteRule>,
    fallback: RouteRule,
}

/// A configured rule that does not compile; names it as `Gateway__Rules__N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Gateway__Rules__{index}: {reason}")]
pub struct RuleError {
    pub index: usize,
    pub reason: String,
}

impl Policy {
    /// Compiles the configured rules (`Gateway__Rules`), or Halo's table when none are set,
    /// each with its own scopes and clients only (see [`Policy::with_global`]).
    pub fn compile(configured: Option<&[RuleConfig]>) -> Result<Self, RuleError> {
        let defaults;
        let rules = match configured {
            Some(rules) => rules,
            None => {
                defaults = halo_default_rules();
                &defaults
            }
        };
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                RouteRule::compile(rule, index).map_err(|reason| RuleError { index, reason })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rules,
            fallback: FALLBACK.clone(),
        })
    }

    /// The configured rules and global requirements, as `serve` and `explain` enforce them.
    pub fn from_config(config: &Config) -> Result<Self, RuleError> {
        Ok(Self::compile(config.gateway.rules.as_deref())?
            .with_global(&RouteAccess::global(&config.auth)))
    }

    /// Adds `global` (`RequiredScopes`, `AllowedClients`), which every non-anonymous route
    /// needs, the fallback included, to each rule's own scopes and clients.
    pub fn with_global(self, global: &RouteAccess) -> Self {
        let combine = |mut rule: RouteRule| {
            rule.access = global.combined(&rule.access);
            rule
        };
        Self {
            rules: self.rules.into_iter().map(combine).collect(),
            fallback: combine(self.fallback),
        }
    }

    /// The compiled rules in match order.
    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    /// The rule of requests no configured rule matches.
    pub fn fallback(&self) -> &RouteRule {
        &self.fallback
    }

    /// The first rule matching the request, or the fallback ([`FALLBACK`] plus the global
    /// requirements).
    pub fn route(&self, method: &Method, path: &NormalizedPath) -> &RouteRule {
        // On the stack for paths of up to 8 segments (every Halo route).
        let segments: SmallVec<[SegmentKey<'_>; 8]> = path
            .as_str()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(SegmentKey::new)
            .collect();
        self.rules
            .iter()
            .find(|rule| rule.matches(method, &segments))
            .unwrap_or(&self.fallback)
    }
}

const WRITES: &[Method] = &[Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
const READS: &[Method] = &[Method::GET, Method::HEAD];

/// Halo's role table (`shared/halo-api.md`): license-management writes and the signed usage
/// reports need `Admin`; everything else needs any valid token; `/api/health` is open. Used
/// when `Gateway__Rules` is not set; `check-config` prints it in that spelling.
pub fn halo_default_rules() -> Vec<RuleConfig> {
    let rule = |name: &str, methods: &[Method], path: &str, role: &str| RuleConfig {
        name: Some(name.to_owned()),
        methods: methods.to_vec(),
        path: path.to_owned(),
        role: Some(role.to_owned()),
        ..RuleConfig::default()
    };
    vec![
        rule("health", READS, "/api/health", "Anonymous"),
        rule("license_write", WRITES, "/api/v1/license/**", "Admin"),
        rule("license_write", WRITES, "/api/v2/license/**", "Admin"),
        rule(
            "license_usage_report",
            &[],
            "/api/v1/license-usage/*/**",
            "Admin",
        ),
        rule("license_read", &[], "/api/v1/license", "User"),
        rule("license_read", &[], "/api/v2/license", "User"),
        rule("license_usage", &[], "/api/v1/license-usage", "User"),
        rule("policies", &[], "/api/v1/policies/**", "User"),
        rule("rebuild", &[], "/api/v1/rebuild/**", "User"),
        rule("cdr_sync", &[], "/api/v3/**", "User"),
        rule("cdr_sync", &[], "/api/rebuild/**", "User"),
        rule("cdr_sync", &[], "/api/analyse/**", "User"),
        rule("cdr_sync", &[], "/api/filetypedetection/**", "User"),
        rule("cdr_sync", &[], "/api/composite/**", "User"),
        rule("cdr_async", &[], "/api/v1/cdr-async/**", "User"),
        rule("cdr_async", &[], "/api/v1/cdr-file-async/**", "User"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> (String, RequiredRole) {
        let policy = Policy::compile(None).expect("Halo's table compiles");
        let path = NormalizedPath::parse(path).expect("valid path");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let rule = policy.route(&method, &path);
        (rule.name.to_string(), rule.required.clone())
    }

    fn admin() -> RequiredRole {
        RequiredRole::Role("Admin".into())
    }

    #[test]
    fn admin_only_rows_need_admin() {
        assert_eq!(route("POST", "/api/v1/license").1, admin());
        assert_eq!(route("DELETE", "/api/v1/license").1, admin());
        assert_eq!(route("GET", "/api/v1/license-usage/abc123").1, admin());
        assert_eq!(route("GET", "/api/v1/license-usage/active").1, admin());
        assert_eq!(route("HEAD", "/api/v1/license-usage/active").1, admin());
    }

    #[test]
    fn variants_of_admin_routes_do_not_bypass() {
        for path in [
            "/API/V1/LICENSE",
            "/api/v1/license/",
            "/api/v1/%6Cicense",
            "/api//v1/license",
            "/api/v1/x/../license",
            "/api/v1/./license",
            "/api/v1/licen%C5%BFe",
            "/Api/V1/License-Usage/../License",
        ] {
            assert_eq!(route("POST", path).1, admin(), "{path}");
        }
        assert_eq!(route("GET", "/API/v1/License-Usage/Active/").1, admin());
    }

    #[test]
    fn user_rows_need_any_token_and_health_is_open() {
        assert_eq!(
            route("GET", "/api/v1/license").1,
            RequiredRole::Authenticated
        );
        assert_eq!(
            route("GET", "/api/v1/license-usage").1,
            RequiredRole::Authenticated
        );
        assert_eq!(
            route("GET", "/api/v2/license").1,
            RequiredRole::Authenticated
        );
        assert_eq!(route("PUT", "/api/v1/policies/default/reset").0, "policies");
        assert_eq!(route("POST", "/api/v1/rebuild/file").0, "rebuild");
        assert_eq!(route("POST", "/api/Rebuild/base64").0, "cdr_sync");
        assert_eq!(route("GET", "/api/health").1, RequiredRole::Anonymous);
        assert_eq!(route("POST", "/api/health").1, RequiredRole::Authenticated);
        assert_eq!(route("GET", "/something/else").0, "other");
    }

    fn compile(methods: &[&str], path: &str, role: Option<&str>) -> Result<Policy, RuleError> {
        let rule = RuleConfig {
            name: Some("x".into()),
            methods: methods
                .iter()
                .map(|m| Method::from_bytes(m.as_bytes()).expect("method"))
                .collect(),
            path: path.into(),
            role: role.map(str::to_owned),
            ..RuleConfig::default()
        };
        Policy::compile(Some(std::slice::from_ref(&rule)))
    }

    #[test]
    fn configured_rules_compile_or_name_their_index() {
        let policy = compile(&["GET"], "/a/*/b/**", Some("Ops")).expect("valid");
        assert_eq!(policy.rules()[0].to_string(), "x GET /a/*/b/** -> Ops");
        for bad in ["a", "/a/**/b", "/a/%zz", "/a/../.."] {
            let error = compile(&[], bad, None).expect_err(bad);
            assert!(
                error.to_string().starts_with("Gateway__Rules__0: Path"),
                "{error}"
            );
        }
        let error = Policy::compile(Some(&[
            halo_default_rules()[0].clone(),
            RuleConfig {
                path: "/x/**/y".into(),
                ..RuleConfig::default()
            },
        ]))
        .expect_err("second rule is bad");
        assert_eq!(error.index, 1);
    }

    #[test]
    fn every_method_when_none_or_star_is_listed() {
        for methods in [&[][..], &["*"][..]] {
            let policy = compile(methods, "/a", None).expect("valid");
            assert_eq!(policy.rules()[0].to_string(), "x * /a -> User");
        }
    }
}
