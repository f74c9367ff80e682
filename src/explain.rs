//! `halo-gateway explain`: why would the gateway accept or refuse this token?
//!
//! Each check is printed with pass/fail and, on failure, the fix from Halo's troubleshooting
//! guide. The verdict (and the exit code) comes from the gateway's own [`Validator`] and route
//! [`Policy`], so it cannot drift from what `serve` does; the issuer, audience, expiry and
//! not-before lines ask the same `Validator` checks and only add the detail. The signature is
//! never printed;
//! claims only with `--show-claims`.

use std::fmt::Write as _;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, header};
use serde_json::{Map, Value};

use crate::auth::Authenticator;
use crate::auth::access::{self, RoleSource};
use crate::auth::error::{AuthError, DenyReason};
use crate::auth::jwks::Fetcher;
use crate::auth::keys::{KeyLookup, KeyStore};
use crate::auth::policy::{Policy, RequiredRole, RouteRule};
use crate::auth::validate::{Validator, decode, unix_now};
use crate::config::Config;
use crate::http::path::NormalizedPath;
use crate::http::text::{quote, sanitize, seconds};
use crate::metrics::Metrics;

/// What to explain.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    pub token: String,
    /// Also evaluate the route policy for `METHOD PATH`.
    pub route: Option<(Method, String)>,
    pub show_claims: bool,
    /// A DPoP proof: the token goes as `Authorization: DPoP` with it, and the route's path is
    /// the full URL the proof is for.
    pub dpop: Option<String>,
}

/// The report and whether the gateway would accept the token.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub report: String,
    pub accepted: bool,
}

struct Report {
    text: String,
}

impl Report {
    fn pass(&mut self, check: &str, detail: &str) {
        let _ = writeln!(self.text, "  [pass] {check}: {detail}");
    }

    fn fail(&mut self, check: &str, detail: &str, fix: &str) {
        let _ = writeln!(self.text, "  [FAIL] {check}: {detail}");
        let _ = writeln!(self.text, "         fix: {fix}");
    }
}

/// The fix Halo's troubleshooting guide gives for each kind of refusal.
pub fn fix_for(reason: DenyReason, config: &Config) -> String {
    match reason {
        DenyReason::Expired => "the token has expired: request a new token from the authorization server".into(),
        DenyReason::NotYetValid | DenyReason::IssuedInFuture => {
            "the token is from the future: check the clock of this host and of the issuer (ClockSkew allows small drift)".into()
        }
        DenyReason::WrongAudience => format!(
            "the token's aud must be one of ValidAudiences ({}); set the audience of the Okta authorization server or add it with Authentication__Schemes__Bearer__ValidAudiences__N",
            config.auth.valid_audiences.join(", ")
        ),
        DenyReason::WrongIssuer => format!(
            "the token's iss must equal ValidIssuer '{}' exactly (watch for a trailing slash, and for /oauth2/default vs the org server)",
            config.auth.valid_issuers[0]
        ),
        DenyReason::UnknownKid => {
            "the signing key is not in the issuer's JWKS: the token was probably issued by another authorization server (check Authority), or the key was rotated out".into()
        }
        DenyReason::DisallowedType => {
            "this is an Okta org authorization server token (typ application/okta-internal-at+jwt): request tokens from the custom authorization server (https://<org>.okta.com/oauth2/<id>/v1/token)".into()
        }
        DenyReason::SenderConstrained => {
            "the token is sender-constrained (cnf claim): request a plain bearer token; for DPoP turn off 'Require Demonstrating Proof of Possession (DPoP)' on the Okta API Services app".into()
        }
        DenyReason::AdminRoleMissing => format!(
            "license-management writes need the role claim '{}' with value Admin: add the claim to the Okta authorization server for this client, or map one of the token's claims (e.g. a group) to Admin with Authentication__Schemes__Bearer__RoleMappings__N",
            config.auth.role_claim
        ),
        DenyReason::RoleMissing => format!(
            "the route's role must be in the role claim '{}' or granted by a Authentication__Schemes__Bearer__RoleMappings__N entry matching one of the token's claims",
            config.auth.role_claim
        ),
        DenyReason::ClientNotAllowed => format!(
            "the token's client id (claim {}) must be in Authentication__Schemes__Bearer__AllowedClients and in the route's Gateway__Rules__N__Clients: use an allowed client or add this one",
            config.auth.client_id_claim.as_deref().unwrap_or("cid, else client_id")
        ),
        DenyReason::InsufficientScope => "request the token with every scope the route needs (scope=... in the token request) and grant those scopes to this client in the Okta authorization server's access policy".into(),
        DenyReason::BadSignature => "the signature does not match the issuer's key: the token was altered or signed by another issuer".into(),
        DenyReason::DisallowedAlg => "only asymmetric algorithms (RS256/384/512, PS256/384/512, ES256/384, EdDSA) matching the key are accepted".into(),
        DenyReason::LifetimeTooLong => "the token lives longer than MaxTokenLifetime: shorten the access token lifetime on the authorization server".into(),
        DenyReason::KeysUnavailable => "the issuer's keys could not be fetched: check Authority/MetadataAddress and network access to the issuer".into(),
        DenyReason::TokenTooLong => "the token exceeds Authentication__Schemes__Bearer__MaxTokenLength: raise it (and Gateway__MaxHeaderBytes with it) for tokens with large claims such as many Okta groups (see 'Tokens with large group claims' in docs/configuration.md)".into(),
        DenyReason::MissingClaim | DenyReason::Malformed | DenyReason::DisallowedHeader => {
            "this is not an access token from an Okta custom authorization server: request one with the client-credentials grant and scope halo.api".into()
        }
        DenyReason::MissingToken | DenyReason::InvalidRequest => "send the token in the Authorization: Bearer header".into(),
        DenyReason::InvalidDpopProof => "send one fresh DPoP proof per request, signed by the token's key, with htm/htu of this request, iat now and ath of this token (RFC 9449 §4.2)".into(),
        DenyReason::DpopReplay => "a DPoP proof is accepted once: make a new proof (new jti) for every request".into(),
        DenyReason::DpopKeyMismatch => "the token must be DPoP-bound (cnf.jkt) to the key that signs the proofs: request it with a DPoP proof from that key".into(),
        DenyReason::UseDpopNonce => "put the DPoP-Nonce value from the 401 response into the proof's nonce claim and retry".into(),
        DenyReason::DpopRequired => "this gateway requires DPoP: request a DPoP-bound token and send it as Authorization: DPoP with a DPoP proof".into(),
        DenyReason::ReplayCacheUnavailable => "the DPoP replay cache is full or Redis is unreachable: retry after the Retry-After seconds; operators: check Gateway__Redis__Url or ReplayCacheSize".into(),
    }
}

/// The gateway's DPoP checks for `explain --dpop`: the configured rules, at least in `Allowed`
/// mode, with a replay cache of its own (never the shared Redis one: explaining a proof must
/// not use it up).
fn explain_dpop(
    config: &Config,
    proof: &str,
    headers: &mut HeaderMap,
) -> Result<crate::auth::dpop::Dpop, String> {
    let mut config = config.clone();
    let mut settings = config.settings();
    if settings.authentication.schemes.bearer.dpop.mode == crate::config::DPoPMode::Disabled {
        settings.authentication.schemes.bearer.dpop.mode = crate::config::DPoPMode::Allowed;
    }
    settings.gateway.redis.url = None;
    config = Config::validate(settings).map_err(|e| e.to_string())?;
    let value = HeaderValue::from_str(proof.trim())
        .map_err(|_| "the proof is not visible ASCII".to_owned())?;
    headers.insert(crate::auth::dpop::proof::DPOP, value);
    crate::auth::dpop::Dpop::from_config(&config, None)
}

/// Runs the checks against the configured issuer.
pub async fn explain(config: &Config, request: &ExplainRequest) -> Explanation {
    let mut report = Report {
        text: String::new(),
    };
    let _ = writeln!(
        report.text,
        "halo-gateway explain: issuer {} audiences {}",
        config.auth.valid_issuers[0],
        config.auth.valid_audiences.join(", ")
    );
    let metrics = Arc::new(Metrics::new());
    let fetcher = match Fetcher::new(&config.auth, config.gateway.https_proxy.as_ref()) {
        Ok(fetcher) => fetcher,
        Err(e) => {
            report.fail("issuer client", &e, "check Gateway__HttpsProxy");
            return Explanation {
                report: report.text,
                accepted: false,
            };
        }
    };
    let keys = Arc::new(KeyStore::new(&config.auth, fetcher, metrics.clone()));
    match keys.refresh().await.result {
        Ok(()) => {
            let status = keys.status();
            let ids: Vec<&str> = status.key_ids.iter().map(|k| &**k).collect();
            let uri = status
                .jwks_uri
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            report.pass(
                "issuer keys",
                &format!("{} key(s) from {uri}: {}", ids.len(), ids.join(", ")),
            );
        }
        Err(e) => report.fail(
            "issuer keys",
            &e.to_string(),
            &fix_for(DenyReason::KeysUnavailable, config),
        ),
    }
    let validator = Validator::new(&config.auth, keys.clone(), metrics.clone());
    let token = request.token.trim();
    let now = unix_now();
    let policy = match Policy::from_config(config) {
        Ok(policy) => policy,
        Err(e) => {
            report.fail("route policy", &e.to_string(), "correct the named rule");
            return Explanation {
                report: report.text,
                accepted: false,
            };
        }
    };
    let route = request.route.as_ref().and_then(|(method, path)| {
        let path = NormalizedPath::parse(path).ok()?;
        Some(policy.route(method, &path).clone())
    });

    match decode(token) {
        Err(e) => report.fail(
            "token structure",
            &e.description,
            &fix_for(e.reason, config),
        ),
        Ok(decoded) => {
            report.pass(
                "token structure",
                "a JWS with a JSON header and claims (signature not shown)",
            );
            if request.show_claims {
                let _ = writeln!(
                    report.text,
                    "  header: {}",
                    Value::Object(decoded.header.clone())
                );
                let _ = writeln!(
                    report.text,
                    "  claims: {}",
                    Value::Object(decoded.claims.clone())
                );
            }
            explain_decoded(
                &mut report,
                config,
                &validator,
                &keys,
                &decoded.header,
                &decoded.claims,
                token,
                decoded.message,
                decoded.signature,
                now,
                request.dpop.is_some(),
            )
            .await;
            explain_access(
                &mut report,
                config,
                &validator,
                &decoded.claims,
                route.as_ref(),
            );
        }
    }

    // The verdict: exactly the gateway's decision, through the same Authenticator.
    let target_uri: Option<http::Uri> = request
        .route
        .as_ref()
        .and_then(|(_, target)| target.parse().ok());
    let verdict: Result<(), AuthError> = match &request.route {
        None => validator.validate(token).await.map(|_| ()),
        Some((method, target)) => match NormalizedPath::parse(
            target_uri
                .as_ref()
                .map_or(target.as_str(), |uri| uri.path()),
        ) {
            Err(e) => Err(AuthError::new(DenyReason::InvalidRequest, e.to_string())),
            Ok(path) => {
                let mut authenticator =
                    Authenticator::new(validator.clone(), policy, Arc::new(Metrics::new()));
                let mut headers = HeaderMap::new();
                let scheme = if request.dpop.is_some() {
                    "DPoP"
                } else {
                    "Bearer"
                };
                if let Ok(value) = HeaderValue::from_str(&format!("{scheme} {token}")) {
                    headers.insert(header::AUTHORIZATION, value);
                }
                if let Some(proof) = &request.dpop {
                    match explain_dpop(config, proof, &mut headers) {
                        Ok(dpop) => authenticator = authenticator.with_dpop(dpop),
                        Err(e) => {
                            report.fail("DPoP", &e, "check the DPoP settings");
                            return Explanation {
                                report: report.text,
                                accepted: false,
                            };
                        }
                    }
                }
                let uri = target_uri
                    .clone()
                    .unwrap_or_else(|| http::Uri::from_static("/"));
                let target = crate::auth::dpop::RequestTarget {
                    method,
                    uri: &uri,
                    headers: &headers,
                    peer: None,
                };
                authenticator
                    .authorize(&target, &path)
                    .await
                    .result
                    .map(|_| ())
            }
        },
    };
    let accepted = match &verdict {
        Ok(()) => {
            let _ = writeln!(report.text, "verdict: ACCEPTED");
            true
        }
        Err(e) => {
            let _ = writeln!(
                report.text,
                "verdict: REJECTED with {} {}: {}",
                e.status().as_u16(),
                e.code(),
                e.description
            );
            let _ = writeln!(report.text, "fix: {}", fix_for(e.reason, config));
            false
        }
    };
    Explanation {
        report: report.text,
        accepted,
    }
}

#[allow(clippy::too_many_arguments)]
async fn explain_decoded(
    report: &mut Report,
    config: &Config,
    validator: &Validator,
    keys: &KeyStore,
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    token: &str,
    message: &str,
    signature: &str,
    now: f64,
    dpop: bool,
) {
    let (alg, kid) = match validator.check_jws_header(token, header) {
        Ok(found) => found,
        Err(e) => {
            report.fail("header", &e.description, &fix_for(e.reason, config));
            return;
        }
    };
    report.pass(
        "header",
        &format!(
            "alg {alg:?}, kid '{}', typ {}",
            sanitize(&kid),
            header
                .get("typ")
                .map_or("absent".into(), ToString::to_string)
        ),
    );
    match keys.lookup(&kid).await {
        KeyLookup::Found(key) => {
            report.pass(
                "signing key",
                &format!("kid '{}' is in the issuer's key set", sanitize(&kid)),
            );
            let valid = key.accepts(alg) && key.verify(alg, message.as_bytes(), signature);
            if valid {
                report.pass("signature", "verifies with the issuer's key");
            } else {
                report.fail(
                    "signature",
                    "does not verify with the issuer's key",
                    &fix_for(DenyReason::BadSignature, config),
                );
            }
        }
        KeyLookup::Unknown => report.fail(
            "signing key",
            &format!("kid '{}' is not in the issuer's key set", sanitize(&kid)),
            &fix_for(DenyReason::UnknownKid, config),
        ),
        KeyLookup::Unavailable => report.fail(
            "signing key",
            "the issuer's keys are unavailable",
            &fix_for(DenyReason::KeysUnavailable, config),
        ),
    }
    let string = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    match string("iss") {
        Some(iss) if validator.check_issuer(&iss).is_ok() => {
            report.pass("issuer", &format!("iss '{}' is accepted", sanitize(&iss)))
        }
        Some(iss) => {
            let hint = if iss.trim_end_matches('/')
                == config.auth.valid_issuers[0].trim_end_matches('/')
            {
                " (differs only by a trailing slash)"
            } else {
                ""
            };
            report.fail(
                "issuer",
                &format!(
                    "iss '{}' vs ValidIssuer '{}'{hint}",
                    sanitize(&iss),
                    config.auth.valid_issuers[0]
                ),
                &fix_for(DenyReason::WrongIssuer, config),
            );
        }
        None => report.fail(
            "issuer",
            "no iss string claim",
            &fix_for(DenyReason::MissingClaim, config),
        ),
    }
    let audiences: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    if validator.check_audiences(&audiences).is_ok() {
        report.pass(
            "audience",
            &format!("aud {audiences:?} includes an accepted audience"),
        );
    } else {
        report.fail(
            "audience",
            &sanitize(&format!(
                "aud {audiences:?} vs ValidAudiences {:?}",
                config.auth.valid_audiences
            )),
            &fix_for(DenyReason::WrongAudience, config),
        );
    }
    match claims.get("exp").and_then(Value::as_f64) {
        Some(exp) if validator.check_expiry(exp, now).is_err() => report.fail(
            "expiry",
            &format!("expired {} s ago", seconds(now - exp)),
            &fix_for(DenyReason::Expired, config),
        ),
        Some(exp) => report.pass("expiry", &format!("expires in {} s", seconds(exp - now))),
        None => report.fail(
            "expiry",
            "no numeric exp claim",
            &fix_for(DenyReason::MissingClaim, config),
        ),
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64) {
        if validator.check_not_before(nbf, now).is_err() {
            report.fail(
                "not before",
                &format!("valid only in {} s", seconds(nbf - now)),
                &fix_for(DenyReason::NotYetValid, config),
            );
        } else {
            report.pass("not before", "already valid");
        }
    }
    if claims.contains_key("cnf") && dpop {
        report.pass(
            "sender constraint",
            "DPoP-bound (cnf); checked with the proof in the verdict",
        );
    } else if let Some(cnf) = claims.get("cnf") {
        report.fail(
            "sender constraint",
            &crate::auth::cnf::refusal(cnf),
            &fix_for(DenyReason::SenderConstrained, config),
        );
    } else {
        report.pass("sender constraint", "plain bearer token (no cnf)");
    }
}

/// Client id, scopes and roles as the validator reads them, with what granted each role; with
/// a route, its three checks in the order the gateway runs them.
fn explain_access(
    report: &mut Report,
    config: &Config,
    validator: &Validator,
    claims: &Map<String, Value>,
    route: Option<&RouteRule>,
) {
    let token = match validator.claim_rules().access(claims) {
        Ok(token) => token,
        Err(e) => {
            report.fail("claims", &e.description, &fix_for(e.reason, config));
            return;
        }
    };
    let client = match (&token.client_id, &token.client_id_claim) {
        (Some(id), Some(claim)) => format!("{} (claim '{claim}')", quote(id)),
        _ => format!(
            "none (no {} claim)",
            config
                .auth
                .client_id_claim
                .as_deref()
                .unwrap_or("cid or client_id")
        ),
    };
    let _ = writeln!(report.text, "  [info] client id: {}", sanitize(&client));
    let scopes = match &token.scope_claim {
        Some(claim) if !token.scopes.is_empty() => {
            format!("{} (claim '{claim}')", token.scopes.join(" "))
        }
        _ => format!(
            "none (no scopes in {})",
            config.auth.scope_claim.as_deref().unwrap_or("scp or scope")
        ),
    };
    let _ = writeln!(
        report.text,
        "  [info] scopes granted: {}",
        sanitize(&scopes)
    );
    for granted in &token.roles {
        let by = match granted.source {
            RoleSource::Claim => format!("the role claim '{}'", config.auth.role_claim),
            RoleSource::Mapping(i) => {
                let m = &config.auth.role_mappings[i];
                format!(
                    "Authentication__Schemes__Bearer__RoleMappings__{i} (claim '{}' holds '{}')",
                    m.claim, m.value
                )
            }
            RoleSource::Default => format!(
                "DefaultRole (no '{}' claim and no matching RoleMappings)",
                config.auth.role_claim
            ),
        };
        let _ = writeln!(
            report.text,
            "  [info] role {}: granted by {}",
            sanitize(&granted.role),
            sanitize(&by)
        );
    }
    let Some(route) = route else {
        return;
    };
    let _ = writeln!(report.text, "  route: {}", sanitize(&route.to_string()));
    if route.required == RequiredRole::Anonymous {
        report.pass("route", "anonymous: no token checks");
        return;
    }
    match route.access.check_client(&token) {
        Ok(()) if route.access.any_client() => report.pass("client", "any client is allowed"),
        Ok(()) => report.pass("client", &format!("{} is allowed", sanitize(&client))),
        Err(e) => report.fail("client", &e.description, &fix_for(e.reason, config)),
    }
    let missing = route.access.missing_scopes(&token);
    let needs = if route.access.scopes.is_empty() {
        "none".to_owned()
    } else {
        route.access.scopes.join(" ")
    };
    match route.access.check_scopes(&token) {
        Ok(()) => report.pass("scopes", &format!("route needs {needs}; all granted")),
        Err(e) => report.fail(
            "scopes",
            &sanitize(&format!(
                "route needs {needs}; missing {}",
                missing.join(" ")
            )),
            &fix_for(e.reason, config),
        ),
    }
    match (access::check_role(&route.required, &token), &route.required) {
        (Ok(()), RequiredRole::Role(role)) => {
            report.pass("role", &format!("{} granted", sanitize(role)))
        }
        (Ok(()), _) => report.pass("role", "any role"),
        (Err(e), _) => report.fail("role", &e.description, &fix_for(e.reason, config)),
    }
}
