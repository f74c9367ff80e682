//! `auth::validate`: decoding a compact JWS and every header and claim rule, offline.
//!
//! A real `Validator` (from the ASP.NET-style environment, as the gateway builds it) is made
//! once; `check_header` and `check_claims` never touch the network (`validate()` might fetch
//! keys, so it is not called). Input: byte 0 picks the mode, bytes 1..5 the clock (`now`,
//! Unix seconds, little-endian u32), the rest is
//! - mode 0: a compact token, decoded, then its header (pre-checks, and with jsonwebtoken's
//!   `decode_header`) and claims checked;
//! - mode 1: a claims JSON object (strict parser), checked with `check_claims`;
//! - mode 2: a header JSON object, checked with `check_header`.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::sync::{Arc, LazyLock};

use halo_gateway::auth::{AuthError, DenyReason};
use halo_gateway::auth::jwks::Fetcher;
use halo_gateway::auth::keys::KeyStore;
use halo_gateway::auth::keyset::{ALLOWED_ALGS, MAX_KID_LEN};
use halo_gateway::auth::strict_json::parse_object;
use halo_gateway::auth::validate::{Confirmation, Validator, VerifiedToken, decode};
use halo_gateway::config::{AspNetEnv, AuthConfig, Config};
use halo_gateway::metrics::Metrics;
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const ISSUER: &str = "http://127.0.0.1:1/oauth2/default";
const AUDIENCE: &str = "api://halo";
const FORBIDDEN_HEADER_MEMBERS: &[&str] = &["crit", "b64", "cty", "jku", "x5u", "jwk", "x5c"];

struct Fixture {
    auth: AuthConfig,
    validator: Arc<Validator>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let env = AspNetEnv::from_vars(vec![
        ("Authentication__Schemes__Bearer__Authority".into(), ISSUER.into()),
        ("Authentication__Schemes__Bearer__ValidAudiences__0".into(), AUDIENCE.into()),
        ("Authentication__Schemes__Bearer__RequireHttpsMetadata".into(), "false".into()),
        ("Gateway__Upstream".into(), "http://127.0.0.1:2".into()),
    ]);
    let config = Config::load_with_env(None, env).expect("fuzz configuration");
    let metrics = Arc::new(Metrics::new());
    let fetcher = Fetcher::new(&config.auth, None).expect("fetcher");
    let keys = Arc::new(KeyStore::new(&config.auth, fetcher, metrics.clone()));
    let validator = Validator::new(&config.auth, keys, metrics);
    assert_eq!(config.auth.valid_issuers, [ISSUER]);
    assert_eq!(config.auth.valid_audiences, [AUDIENCE]);
    Fixture { auth: config.auth, validator }
});

fn check_header(header: &Map<String, Value>) -> Option<(Algorithm, String)> {
    match FIXTURE.validator.check_header(header) {
        Ok((alg, kid)) => {
            assert!(ALLOWED_ALGS.contains(&alg), "{alg:?} accepted");
            assert_eq!(header.get("alg").and_then(Value::as_str).and_then(|a| a.parse().ok()), Some(alg));
            assert!(!kid.is_empty() && kid.len() <= MAX_KID_LEN, "kid of {} bytes accepted", kid.len());
            assert_eq!(header.get("kid").and_then(Value::as_str), Some(kid.as_str()));
            if let Some(member) = FORBIDDEN_HEADER_MEMBERS.iter().find(|m| header.contains_key(**m)) {
                panic!("header with '{member}' accepted");
            }
            match header.get("typ") {
                None => {}
                Some(Value::String(t)) => {
                    let t = t.to_ascii_lowercase();
                    assert!(t == "at+jwt" || t == "application/at+jwt", "typ {t:?} accepted");
                }
                Some(other) => panic!("typ {other} accepted"),
            }
            Some((alg, kid))
        }
        Err(e) => {
            common::check_error(&e);
            None
        }
    }
}

/// jsonwebtoken's reading of the header after the pre-checks refuses only more, as malformed.
fn check_jws_header(token: &str, header: &Map<String, Value>) {
    let validator = &FIXTURE.validator;
    match (validator.check_header(header), validator.check_jws_header(token, header)) {
        (Ok(pre), Ok(full)) => assert_eq!(pre, full),
        (Err(pre), Err(full)) => assert_eq!(pre, full),
        (Ok(_), Err(e)) => {
            assert_eq!(e.reason, DenyReason::Malformed, "{e:?}");
            common::check_error(&e);
        }
        (Err(e), Ok(_)) => panic!("jsonwebtoken's reading let through a header the pre-checks refuse: {e:?}"),
    }
}

fn number(claims: &Map<String, Value>, name: &str) -> Option<f64> {
    claims.get(name).and_then(Value::as_f64)
}

fn check_claims(claims: &Map<String, Value>, kid: &str, alg: Algorithm, now: f64) {
    let fx = &*FIXTURE;
    let skew = fx.auth.clock_skew.as_secs_f64();
    let max_lifetime = fx.auth.max_token_lifetime.as_secs_f64();
    match fx.validator.check_claims(claims, kid.into(), alg, now) {
        Ok(token) => {
            let VerifiedToken { kid: k, alg: a, issuer, audiences, subject, access, expires_at, not_before, issued_at, confirmation } = &token;
            let roles: Vec<String> = access.role_names().into_iter().map(str::to_owned).collect();
            assert_eq!((&**k, *a), (kid, alg));
            assert!(fx.auth.valid_issuers.contains(issuer), "issuer {issuer:?} accepted");
            assert_eq!(claims.get("iss").and_then(Value::as_str), Some(issuer.as_str()));
            assert!(audiences.iter().any(|a| fx.auth.valid_audiences.contains(a)), "audiences {audiences:?} accepted");
            assert_eq!(claims.get("sub").and_then(Value::as_str), Some(subject.as_str()));
            // ClientIdClaim unset: cid, else client_id; an empty id is no id.
            let client_claim = if claims.contains_key("cid") { "cid" } else { "client_id" };
            assert_eq!(claims.get(client_claim).and_then(Value::as_str).filter(|id| !id.is_empty()), token.client_id());
            assert_eq!(number(claims, "exp"), Some(*expires_at));
            assert_eq!(number(claims, "nbf"), *not_before);
            assert_eq!(number(claims, "iat"), *issued_at);
            assert!(expires_at.is_finite() && now <= expires_at + skew, "expired token accepted (exp {expires_at}, now {now})");
            assert!(not_before.is_none_or(|nbf| nbf.is_finite() && nbf <= now + skew), "token before nbf accepted");
            assert!(issued_at.is_none_or(|iat| iat.is_finite() && iat <= now + skew), "token issued in the future accepted");
            assert!(expires_at - issued_at.unwrap_or(now) <= max_lifetime, "over-long lifetime accepted");
            // check_claims only reads cnf (Bearer refuses it in `validate`, DPoP compares it).
            assert_eq!(claims.contains_key("cnf"), confirmation.bearer_refusal().is_some(), "cnf {confirmation:?}");
            if let Confirmation::Jkt(jkt) = confirmation {
                assert_eq!(claims.get("cnf").and_then(|c| c.get("jkt")).and_then(Value::as_str), Some(jkt.as_str()));
            }
            match claims.get(&fx.auth.role_claim) {
                None => assert_eq!(roles, [fx.auth.default_role.clone()]),
                Some(Value::String(r)) => assert_eq!(roles, std::slice::from_ref(r)),
                // Each role name once; an empty array falls back to DefaultRole.
                Some(Value::Array(items)) => {
                    let mut expected: Vec<String> = Vec::new();
                    for item in items {
                        let role = item.as_str().expect("a non-string role accepted");
                        if !expected.iter().any(|r| r == role) {
                            expected.push(role.to_owned());
                        }
                    }
                    if expected.is_empty() {
                        expected.push(fx.auth.default_role.clone());
                    }
                    assert_eq!(roles, expected);
                }
                Some(other) => panic!("role claim {other} accepted"),
            }
            for role in &roles {
                assert_eq!(token.has_role(role), true);
            }
            // The per-request time check agrees with the full check at the same instant.
            assert!(fx.validator.check_times(&token, now).is_ok());
        }
        Err(e) => common::check_error(&e),
    }
}

fn check_decode_error(token: &str, e: &AuthError) {
    common::check_error(e);
    assert!(token.len() < 16 || !e.description.contains(token), "the description echoes the token: {:?}", e.description);
}

fuzz_target!(|data: &[u8]| {
    let [mode, a, b, c, d, rest @ ..] = data else { return };
    let now = f64::from(u32::from_le_bytes([*a, *b, *c, *d]));
    match mode % 3 {
        0 => {
            let token = String::from_utf8_lossy(rest);
            match decode(&token) {
                Ok(decoded) => {
                    assert_eq!(format!("{}.{}", decoded.message, decoded.signature), token, "pieces do not make the token");
                    assert!(!decoded.signature.is_empty());
                    assert_eq!(decoded.message.matches('.').count(), 1);
                    let (alg, kid) = check_header(&decoded.header).unwrap_or((Algorithm::RS256, "k".into()));
                    check_jws_header(&token, &decoded.header);
                    check_claims(&decoded.claims, &kid, alg, now);
                }
                Err(e) => check_decode_error(&token, &e),
            }
        }
        1 => {
            if let Ok(claims) = strict_object(rest) {
                check_claims(&claims, "fuzz-kid", Algorithm::RS256, now);
            }
        }
        _ => {
            if let Ok(header) = strict_object(rest) {
                check_header(&header);
            }
        }
    }
});

/// The strict parser, checked against serde_json: whatever it accepts, serde_json reads the
/// same (no duplicates means last-wins changes nothing).
fn strict_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let strict = parse_object(bytes);
    match &strict {
        Ok(map) => {
            let plain: Value = serde_json::from_slice(bytes).expect("strict parser accepted what serde_json refuses");
            assert_eq!(plain, Value::Object(map.clone()), "strict parser disagrees with serde_json");
        }
        Err(message) => {
            if message.contains("duplicate member") {
                assert!(message.is_ascii(), "duplicate-member error is not sanitized: {message:?}");
            }
        }
    }
    strict
}
