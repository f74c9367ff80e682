//! `auth::keyset::parse_jwks`: the issuer's JWKS document, key by key.
//!
//! Invariants on the keys it returns: a non-empty `kid` of at most 256 bytes, no two keys
//! sharing a `kid` (and no `kid` the document gives to two usable keys), sorted by `kid`,
//! algorithms from the allowed asymmetric set only; and each returned key is backed by a JWK
//! in the document that is a public signing key (no private members, not `use: enc`, not
//! `oct`, `key_ops` allowing verify, RSA of >= 2048 bits with an odd exponent >= 3).

#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use halo_gateway::auth::keyset::{ALLOWED_ALGS, MAX_KID_LEN, parse_jwks};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn b64(obj: &Map<String, Value>, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(obj.get(name)?.as_str()?.trim_end_matches('=')).ok()
}

/// Could this JWK, by the documented rules, become a verification key?
fn acceptable(jwk: &Map<String, Value>) -> bool {
    if jwk.get("use").and_then(Value::as_str) == Some("enc") || PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return false;
    }
    if let Some(ops) = jwk.get("key_ops").and_then(Value::as_array) {
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return false;
        }
    }
    match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => {
            let (Some(n), Some(e)) = (b64(jwk, "n"), b64(jwk, "e")) else { return false };
            let n: Vec<u8> = n.into_iter().skip_while(|b| *b == 0).collect();
            let e: Vec<u8> = e.into_iter().skip_while(|b| *b == 0).collect();
            let bits = match n.first() {
                None => 0,
                Some(first) => n.len() * 8 - first.leading_zeros() as usize,
            };
            let exponent = if e.len() > 8 { 0 } else { e.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)) };
            bits >= 2048 && exponent >= 3 && exponent % 2 == 1
        }
        Some("EC") | Some("OKP") => true,
        _ => false,
    }
}

/// Inputs that reach the known RSA-modulus underflow (fuzz/regressions/jwks_ingestion/).
fn hits_known_bug(doc: &Value) -> bool {
    doc.get("keys").and_then(Value::as_array).is_some_and(|keys| {
        keys.iter().filter_map(Value::as_object).any(|jwk| {
            jwk.get("kty").and_then(Value::as_str) == Some("RSA") && b64(jwk, "n").is_some_and(|n| n.iter().all(|b| *b == 0))
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let doc: Option<Value> = serde_json::from_slice(data).ok();
    if common::skip_known() && doc.as_ref().is_some_and(hits_known_bug) {
        return;
    }
    let Ok(set) = parse_jwks(data) else {
        // Only a document that is not an object with a "keys" array is refused whole.
        assert!(doc.as_ref().and_then(|d| d.get("keys")).and_then(Value::as_array).is_none(), "a key set was refused whole");
        return;
    };
    let doc = doc.expect("parse_jwks accepted what serde_json refuses");
    let jwks: Vec<&Map<String, Value>> = doc["keys"].as_array().expect("keys array").iter().filter_map(Value::as_object).collect();
    let mut seen = HashSet::new();
    for key in &set.keys {
        let kid: &str = &key.kid;
        assert!(!kid.is_empty(), "key with an empty kid");
        assert!(kid.len() <= MAX_KID_LEN, "kid of {} bytes", kid.len());
        assert!(seen.insert(kid.to_owned()), "two keys share kid {kid:?}");
        assert!(!key.algorithms.is_empty(), "key {kid:?} verifies nothing");
        assert!(key.algorithms.iter().all(|a| ALLOWED_ALGS.contains(a)), "key {kid:?} allows {:?}", key.algorithms);
        for a in ALLOWED_ALGS {
            assert_eq!(key.accepts(*a), key.algorithms.contains(a));
        }
        let backing: Vec<_> = jwks.iter().filter(|j| j.get("kid").and_then(Value::as_str) == Some(kid)).collect();
        assert!(!backing.is_empty(), "key {kid:?} is not in the document");
        assert!(backing.iter().any(|j| acceptable(j)), "key {kid:?} comes from no acceptable JWK: {backing:?}");
    }
    assert!(set.keys.windows(2).all(|w| w[0].kid < w[1].kid), "keys not sorted by kid");
    // Every JWK is kept or accounted for: an encryption key is dropped silently, any other
    // refusal is one `skipped` line, and the keys of a shared kid are refused in one line.
    let total = doc["keys"].as_array().map_or(0, Vec::len);
    let enc = jwks.iter().filter(|j| j.get("use").and_then(Value::as_str) == Some("enc")).count();
    assert!(set.keys.len() + set.skipped.len() + enc <= total, "more outcomes than keys");
    assert!(total == enc || !set.keys.is_empty() || !set.skipped.is_empty(), "keys vanished without a reason");
});
