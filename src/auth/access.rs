//! Who may call what, beyond a valid token: the scopes it was granted, the client it was issued
//! to, and the roles its claims map to.
//!
//! - Scopes (RFC 6749 §3.3, case-sensitive, compared exactly): Okta's `scp` is an array of
//!   strings, RFC 9068 §2.2.3's `scope` a space-delimited string; both shapes are read from
//!   either claim. Unset `ScopeClaim` reads `scp`, and `scope` only when `scp` is absent.
//! - Client id: Okta's `cid`, else RFC 9068's `client_id`, unless `ClientIdClaim` names one.
//! - Roles: the `RoleClaim` values plus the role of every matching `RoleMappings__N`
//!   (`Claim` equal to `Value`, or an array containing it); with none, `DefaultRole`.
//!
//! An array element that is not a string never matches anything. A route's checks run in a
//! fixed order, first failure answers: client allowed, then scopes, then role.

use serde_json::{Map, Value};

use super::error::{AuthError, DenyReason};
use super::policy::RequiredRole;
pub use crate::config::RoleMapping;
use crate::config::{AuthConfig, RuleConfig};
use crate::http::text::quote;

/// How a token's claims become scopes, a client id and roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    pub role_claim: String,
    pub default_role: String,
    /// `None`: `scp`, else `scope`.
    pub scope_claim: Option<String>,
    /// `None`: `cid`, else `client_id`.
    pub client_id_claim: Option<String>,
    pub role_mappings: Vec<RoleMapping>,
}

/// Where one of a token's roles came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleSource {
    /// The `RoleClaim` claim.
    Claim,
    /// `RoleMappings__N`.
    Mapping(usize),
    /// `DefaultRole`: neither the claim nor a mapping gave a role.
    Default,
}

/// A role and what granted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedRole {
    pub role: String,
    pub source: RoleSource,
}

/// What a token's claims grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenAccess {
    /// Granted scopes, in token order.
    pub scopes: Vec<String>,
    /// The claim the scopes were read from, if any.
    pub scope_claim: Option<String>,
    pub client_id: Option<String>,
    /// The claim the client id was read from, if any.
    pub client_id_claim: Option<String>,
    /// Every grant; a role granted twice (claim and mapping) appears twice.
    pub roles: Vec<GrantedRole>,
}

impl TokenAccess {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.role == role)
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Role names, each once, in grant order.
    pub fn role_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::with_capacity(self.roles.len());
        for granted in &self.roles {
            if !names.contains(&granted.role.as_str()) {
                names.push(&granted.role);
            }
        }
        names
    }

    /// `Role=RoleMappings__N` for each role a mapping granted, comma-separated (access log).
    pub fn mapped_roles(&self) -> Option<String> {
        let mapped: Vec<String> = self
            .roles
            .iter()
            .filter_map(|r| match r.source {
                RoleSource::Mapping(i) => Some(format!("{}=RoleMappings__{i}", r.role)),
                _ => None,
            })
            .collect();
        (!mapped.is_empty()).then(|| mapped.join(","))
    }
}

/// The string values a claim holds: a string itself, or the string elements of an array
/// (other elements are skipped). With `split`, strings are space-delimited lists (§3.3).
fn claim_strings(value: Option<&Value>, split: bool) -> Vec<&str> {
    match value {
        Some(Value::String(s)) if split => s.split(' ').filter(|w| !w.is_empty()).collect(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

impl ClaimRules {
    /// `RoleClaim`, `DefaultRole`, `ScopeClaim`, `ClientIdClaim` and `RoleMappings`.
    pub fn from_config(config: &AuthConfig) -> Self {
        Self {
            role_claim: config.role_claim.clone(),
            default_role: config.default_role.clone(),
            scope_claim: config.scope_claim.clone(),
            client_id_claim: config.client_id_claim.clone(),
            role_mappings: config.role_mappings.clone(),
        }
    }

    /// The claim the scopes are read from in these `claims`.
    fn scope_claim_in<'a>(&'a self, claims: &Map<String, Value>) -> Option<&'a str> {
        match &self.scope_claim {
            Some(name) => Some(name),
            None if claims.contains_key("scp") => Some("scp"),
            None if claims.contains_key("scope") => Some("scope"),
            None => None,
        }
    }

    /// Whether `claim` holds scopes, so a mapping on it compares scope by scope.
    fn is_scope_claim(&self, claim: &str) -> bool {
        match &self.scope_claim {
            Some(name) => name == claim,
            None => claim == "scp" || claim == "scope",
        }
    }

    /// Scopes, client id and roles of a token whose signature was accepted. A client-id or
    /// role claim of the wrong type makes the token invalid (it is not what the issuer sends).
    pub fn access(&self, claims: &Map<String, Value>) -> Result<TokenAccess, AuthError> {
        let scope_claim = self.scope_claim_in(claims);
        let scopes = claim_strings(scope_claim.and_then(|c| claims.get(c)), true)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let (client_id_claim, client_id) = self.client_id(claims)?;
        let mut roles: Vec<GrantedRole> = self
            .claim_roles(claims)?
            .into_iter()
            .map(|role| GrantedRole {
                role,
                source: RoleSource::Claim,
            })
            .collect();
        for (i, mapping) in self.role_mappings.iter().enumerate() {
            let split = self.is_scope_claim(&mapping.claim);
            if claim_strings(claims.get(&mapping.claim), split).contains(&mapping.value.as_str()) {
                roles.push(GrantedRole {
                    role: mapping.role.clone(),
                    source: RoleSource::Mapping(i),
                });
            }
        }
        if roles.is_empty() {
            roles.push(GrantedRole {
                role: self.default_role.clone(),
                source: RoleSource::Default,
            });
        }
        Ok(TokenAccess {
            scopes,
            scope_claim: scope_claim.map(str::to_owned),
            client_id,
            client_id_claim,
            roles,
        })
    }

    fn client_id(
        &self,
        claims: &Map<String, Value>,
    ) -> Result<(Option<String>, Option<String>), AuthError> {
        let name = match &self.client_id_claim {
            Some(name) => name.as_str(),
            None if claims.contains_key("cid") => "cid",
            None => "client_id",
        };
        match claims.get(name) {
            None => Ok((None, None)),
            Some(Value::String(id)) if id.is_empty() => Ok((Some(name.to_owned()), None)),
            Some(Value::String(id)) => Ok((Some(name.to_owned()), Some(id.clone()))),
            Some(_) => Err(AuthError::new(
                DenyReason::Malformed,
                format!("the claim {} is not a string", quote(name)),
            )),
        }
    }

    fn claim_roles(&self, claims: &Map<String, Value>) -> Result<Vec<String>, AuthError> {
        let bad = || {
            AuthError::new(
                DenyReason::Malformed,
                format!(
                    "the claim {} must be a string or an array of strings",
                    quote(&self.role_claim)
                ),
            )
        };
        match claims.get(&self.role_claim) {
            None => Ok(Vec::new()),
            Some(Value::String(role)) => Ok(vec![role.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
                .collect(),
            Some(_) => Err(bad()),
        }
    }
}

/// What a route demands besides its role. On a rule: its own `Scopes`/`Clients`; compiled
/// into a [`super::policy::Policy`]: combined with the global `RequiredScopes` and
/// `AllowedClients`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteAccess {
    /// Every one of these scopes, no duplicates.
    pub scopes: Vec<String>,
    /// The client id must be in each of these lists (global, rule); none: any client.
    pub client_lists: Vec<Vec<String>>,
}

impl RouteAccess {
    /// What every non-anonymous route needs: `RequiredScopes` and `AllowedClients`.
    pub fn global(config: &AuthConfig) -> Self {
        Self::new(
            config.required_scopes.clone(),
            config.allowed_clients.clone(),
        )
    }

    /// A rule's own `Scopes` and `Clients`.
    pub fn of_rule(rule: &RuleConfig) -> Self {
        Self::new(rule.scopes.clone(), rule.clients.clone())
    }

    /// One scope list and one client list (either may be empty: no requirement).
    pub fn new(scopes: Vec<String>, clients: Vec<String>) -> Self {
        let mut access = Self::default();
        access.add(scopes, clients);
        access
    }

    /// `self` (global) and `rule` together: all scopes of both, a client in both lists.
    pub fn combined(&self, rule: &RouteAccess) -> Self {
        let mut access = self.clone();
        access.add(rule.scopes.clone(), Vec::new());
        access
            .client_lists
            .extend(rule.client_lists.iter().cloned());
        access
    }

    fn add(&mut self, scopes: Vec<String>, clients: Vec<String>) {
        for scope in scopes {
            if !self.scopes.contains(&scope) {
                self.scopes.push(scope);
            }
        }
        if !clients.is_empty() {
            self.client_lists.push(clients);
        }
    }

    /// Whether any client id is accepted.
    pub fn any_client(&self) -> bool {
        self.client_lists.is_empty()
    }

    /// Check 1: the token's client is in every client list. No client id: not allowed.
    pub fn check_client(&self, token: &TokenAccess) -> Result<(), AuthError> {
        if self.any_client() {
            return Ok(());
        }
        let allowed = token
            .client_id
            .as_deref()
            .is_some_and(|id| self.client_lists.iter().all(|l| l.iter().any(|c| c == id)));
        if allowed {
            Ok(())
        } else {
            Err(AuthError::client_not_allowed(token.client_id.as_deref()))
        }
    }

    /// The required scopes the token was not granted.
    pub fn missing_scopes(&self, token: &TokenAccess) -> Vec<String> {
        self.scopes
            .iter()
            .filter(|s| !token.has_scope(s))
            .cloned()
            .collect()
    }

    /// Check 2: every required scope was granted (RFC 6750 §3.1 `insufficient_scope`).
    pub fn check_scopes(&self, token: &TokenAccess) -> Result<(), AuthError> {
        let missing = self.missing_scopes(token);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(AuthError::insufficient_scope(
                &self.scopes,
                missing,
                token.client_id.as_deref(),
            ))
        }
    }
}

/// Check 3: the route's role.
pub fn check_role(required: &RequiredRole, token: &TokenAccess) -> Result<(), AuthError> {
    match required {
        RequiredRole::Role(role) if !token.has_role(role) => {
            Err(AuthError::role_missing(role, token.client_id.as_deref()))
        }
        _ => Ok(()),
    }
}

/// All checks of a non-anonymous route, in their order; the first failure answers.
pub fn authorize(
    access: &RouteAccess,
    required: &RequiredRole,
    token: &TokenAccess,
) -> Result<(), AuthError> {
    access.check_client(token)?;
    access.check_scopes(token)?;
    check_role(required, token)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::check_scope_token;

    fn rules(mappings: &[(&str, &str, &str)]) -> ClaimRules {
        ClaimRules {
            role_claim: "role".into(),
            default_role: "User".into(),
            scope_claim: None,
            client_id_claim: None,
            role_mappings: mappings
                .iter()
                .map(|(claim, value, role)| RoleMapping {
                    claim: (*claim).into(),
                    value: (*value).into(),
                    role: (*role).into(),
                })
                .collect(),
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn access(rules: &ClaimRules, value: Value) -> TokenAccess {
        rules.access(&claims(value)).expect("claims accepted")
    }

    fn scopes_of(rules: &ClaimRules, value: Value) -> Vec<String> {
        access(rules, value).scopes
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn scp_is_read_as_an_array_or_a_space_delimited_string() {
        let r = rules(&[]);
        assert_eq!(
            scopes_of(&r, json!({"scp": ["halo.api", "halo.admin"]})),
            strings(&["halo.api", "halo.admin"])
        );
        assert_eq!(
            scopes_of(&r, json!({"scp": "halo.api  halo.admin"})),
            strings(&["halo.api", "halo.admin"])
        );
    }

    #[test]
    fn scope_is_the_fallback_only_when_scp_is_absent() {
        let r = rules(&[]);
        assert_eq!(
            scopes_of(&r, json!({"scope": "halo.api halo.admin"})),
            strings(&["halo.api", "halo.admin"])
        );
        let both = access(&r, json!({"scp": ["halo.api"], "scope": "halo.admin"}));
        assert_eq!(both.scopes, strings(&["halo.api"]));
        assert_eq!(both.scope_claim.as_deref(), Some("scp"));
        // A present scp of a useless type still wins: no silent second source.
        assert!(scopes_of(&r, json!({"scp": 7, "scope": "halo.api"})).is_empty());
    }

    #[test]
    fn a_configured_scope_claim_is_the_only_source() {
        let mut r = rules(&[]);
        r.scope_claim = Some("scope".into());
        assert_eq!(
            scopes_of(&r, json!({"scp": ["halo.admin"], "scope": "halo.api"})),
            strings(&["halo.api"])
        );
        assert!(scopes_of(&r, json!({"scp": ["halo.api"]})).is_empty());
        r.scope_claim = Some("permissions".into());
        assert_eq!(
            scopes_of(&r, json!({"permissions": ["halo.api"], "scp": ["x"]})),
            strings(&["halo.api"])
        );
    }

    #[test]
    fn non_string_elements_grant_nothing() {
        let r = rules(&[("groups", "Halo Admins", "Admin")]);
        let token = access(
            &r,
            json!({"scp": ["halo.api", 7, ["halo.admin"], {"halo.admin": true}, null],
                   "groups": [["Halo Admins"], {"name": "Halo Admins"}, 1]}),
        );
        assert_eq!(token.scopes, strings(&["halo.api"]));
        assert_eq!(token.role_names(), vec!["User"]);
        // Array elements are scopes as they stand; only strings are split.
        assert!(
            scopes_of(&r, json!({"scp": ["halo.api halo.admin"]}))
                == strings(&["halo.api halo.admin"])
        );
    }

    #[test]
    fn the_client_id_is_cid_else_client_id_unless_configured() {
        let r = rules(&[]);
        let id = |value| access(&r, value).client_id;
        assert_eq!(id(json!({"cid": "a", "client_id": "b"})), Some("a".into()));
        assert_eq!(id(json!({"client_id": "b"})), Some("b".into()));
        assert_eq!(id(json!({"cid": ""})), None);
        assert_eq!(id(json!({"sub": "a"})), None);
        let mut r = rules(&[]);
        r.client_id_claim = Some("azp".into());
        let token = access(&r, json!({"cid": "a", "azp": "c"}));
        assert_eq!(token.client_id.as_deref(), Some("c"));
        assert_eq!(token.client_id_claim.as_deref(), Some("azp"));
        assert_eq!(access(&r, json!({"cid": "a"})).client_id, None);
        let err = r
            .access(&claims(json!({"azp": ["c"]})))
            .expect_err("wrong type");
        assert_eq!(err.reason, DenyReason::Malformed);
    }

    #[test]
    fn roles_are_the_role_claim_plus_every_matching_mapping() {
        let r = rules(&[
            ("groups", "Halo Admins", "Admin"),
            ("cid", "0oa-ops", "Ops"),
            ("scp", "halo.audit", "Auditor"),
        ]);
        let token = access(
            &r,
            json!({"role": "Reader", "groups": ["Everyone", "Halo Admins"], "cid": "0oa-ops",
                   "scp": "halo.api halo.audit"}),
        );
        assert_eq!(
            token.role_names(),
            vec!["Reader", "Admin", "Ops", "Auditor"]
        );
        assert_eq!(
            token.roles[1],
            GrantedRole {
                role: "Admin".into(),
                source: RoleSource::Mapping(0)
            }
        );
        assert_eq!(
            token.mapped_roles().as_deref(),
            Some("Admin=RoleMappings__0,Ops=RoleMappings__1,Auditor=RoleMappings__2")
        );
    }

    #[test]
    fn a_string_claim_maps_only_when_equal() {
        let r = rules(&[("groups", "Halo Admins", "Admin")]);
        assert!(access(&r, json!({"groups": "Halo Admins"})).has_role("Admin"));
        // A non-scope claim is not split on spaces.
        assert!(!access(&r, json!({"groups": "Halo Admins Everyone"})).has_role("Admin"));
        assert!(!access(&r, json!({"groups": "Halo"})).has_role("Admin"));
    }

    #[test]
    fn matching_is_exact_and_case_sensitive() {
        let r = rules(&[
            ("groups", "Halo Admins", "Admin"),
            ("scp", "halo.admin", "Admin"),
        ]);
        for value in [
            json!({"groups": ["halo admins"]}),
            json!({"groups": ["Halo Admins "]}),
            json!({"groups": ["Halo Admins2"]}),
            json!({"groups": ["Halo"]}),
            json!({"scp": ["HALO.ADMIN"]}),
            json!({"scp": ["halo.adminx"]}),
            json!({"scp": "halo.admi"}),
        ] {
            assert!(!access(&r, value.clone()).has_role("Admin"), "{value}");
        }
        let route = RouteAccess::new(strings(&["halo.api"]), Vec::new());
        for scp in [json!(["HALO.API"]), json!(["halo.apix"]), json!("halo.ap")] {
            let token = access(&r, json!({"scp": scp}));
            assert!(route.check_scopes(&token).is_err(), "{scp}");
        }
    }

    #[test]
    fn a_mapping_on_the_scope_claim_compares_scope_by_scope() {
        let mut r = rules(&[("scope", "halo.admin", "Admin")]);
        assert!(access(&r, json!({"scope": "halo.api halo.admin"})).has_role("Admin"));
        r.scope_claim = Some("permissions".into());
        r.role_mappings[0].claim = "permissions".into();
        assert!(access(&r, json!({"permissions": "halo.api halo.admin"})).has_role("Admin"));
    }

    #[test]
    fn default_role_only_without_claim_or_mapping_and_never_admin_by_default() {
        let r = rules(&[("groups", "Halo Admins", "Admin")]);
        let token = access(&r, json!({}));
        assert_eq!(
            token.roles,
            vec![GrantedRole {
                role: "User".into(),
                source: RoleSource::Default
            }]
        );
        assert!(!token.has_role("Admin"));
        let mapped = access(&r, json!({"groups": ["Halo Admins"]}));
        assert_eq!(mapped.role_names(), vec!["Admin"], "no DefaultRole besides");
        let empty = access(&r, json!({"role": []}));
        assert_eq!(empty.role_names(), vec!["User"]);
        let err = r.access(&claims(json!({"role": 7}))).expect_err("bad role");
        assert_eq!(err.reason, DenyReason::Malformed);
    }

    #[test]
    fn global_and_rule_lists_combine() {
        let global = RouteAccess::new(strings(&["halo.api"]), strings(&["a", "b"]));
        let rule = RouteAccess::new(strings(&["halo.admin", "halo.api"]), strings(&["b", "c"]));
        let both = global.combined(&rule);
        assert_eq!(both.scopes, strings(&["halo.api", "halo.admin"]));
        let r = rules(&[]);
        let with = |cid: &str| access(&r, json!({"cid": cid, "scp": ["halo.api", "halo.admin"]}));
        assert!(both.check_client(&with("b")).is_ok(), "in both lists");
        assert!(both.check_client(&with("a")).is_err(), "only global");
        assert!(both.check_client(&with("c")).is_err(), "only rule");
        let rule_only = RouteAccess::default().combined(&rule);
        assert!(rule_only.check_client(&with("c")).is_ok());
        let global_only = global.combined(&RouteAccess::default());
        assert!(global_only.check_client(&with("a")).is_ok());
        assert!(RouteAccess::default().check_client(&with("z")).is_ok());
    }

    #[test]
    fn a_token_without_a_client_id_is_not_allowed() {
        let route = RouteAccess::new(Vec::new(), strings(&["a"]));
        let err = route
            .check_client(&access(&rules(&[]), json!({})))
            .expect_err("no cid");
        assert_eq!(err.reason, DenyReason::ClientNotAllowed);
    }

    #[test]
    fn the_first_failing_check_answers() {
        let r = rules(&[]);
        let route = RouteAccess::new(strings(&["halo.api", "halo.admin"]), strings(&["good"]));
        let admin = RequiredRole::Role("Admin".into());
        let check = |value| authorize(&route, &admin, &access(&r, value)).map_err(|e| e.reason);
        assert_eq!(
            check(json!({"cid": "bad", "scp": []})),
            Err(DenyReason::ClientNotAllowed)
        );
        assert_eq!(
            check(json!({"cid": "good", "scp": ["halo.api"]})),
            Err(DenyReason::InsufficientScope)
        );
        assert_eq!(
            check(json!({"cid": "good", "scp": ["halo.api", "halo.admin"]})),
            Err(DenyReason::AdminRoleMissing)
        );
        assert_eq!(
            check(json!({"cid": "good", "scp": ["halo.admin", "halo.api"], "role": "Admin"})),
            Ok(())
        );
        let ops = RequiredRole::Role("Ops".into());
        let token = access(
            &r,
            json!({"cid": "good", "scp": ["halo.api", "halo.admin"]}),
        );
        assert_eq!(
            authorize(&route, &ops, &token).map_err(|e| e.reason),
            Err(DenyReason::RoleMissing)
        );
    }

    #[test]
    fn insufficient_scope_names_every_required_scope_and_the_missing_ones() {
        let route = RouteAccess::new(strings(&["halo.api", "halo.admin"]), Vec::new());
        let token = access(&rules(&[]), json!({"scp": ["halo.api"], "cid": "x"}));
        let err = route.check_scopes(&token).expect_err("missing");
        let denied = err.denied.as_deref().expect("details");
        assert_eq!(denied.required_scopes, strings(&["halo.api", "halo.admin"]));
        assert_eq!(denied.missing_scopes, strings(&["halo.admin"]));
        assert_eq!(denied.client_id.as_deref(), Some("x"));
    }

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        for good in ["halo.api", "a", "urn:x:y/z", "!#[]~"] {
            assert!(check_scope_token(good).is_ok(), "{good}");
        }
        for bad in [
            "", "halo api", "a\"b", "a\\b", "a\tb", "a\u{7f}", "é", "a\u{0}",
        ] {
            assert!(check_scope_token(bad).is_err(), "{bad:?}");
        }
    }
}
