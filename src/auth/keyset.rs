//! JWKS ingestion, key by key (RFC 7517 §5): a key that is unsupported or malformed is skipped
//! with a reason, never failing the whole set (so `JwkSet`, which fails whole, is not used).
//!
//! jsonwebtoken reads each key ([`Jwk`]) and builds its [`DecodingKey`]
//! ([`DecodingKey::from_jwk`]). Around it, the rules it does not enforce: dropped are `use: enc`
//! keys (silently), `key_ops` without `verify`, keys carrying private members, keys without a
//! `kid`, symmetric (`oct`) keys and other types or curves, RSA under 2048 bits or with an even
//! or < 3 exponent, and every key of a `kid` that appears twice (refused rather than guessed).
//! A JWK `alg` binds the key to that algorithm.
//!
//! Each key is also parsed once by aws-lc per algorithm it allows, and [`PROVIDER`] hands that
//! parsed key to jsonwebtoken's signature check: jsonwebtoken's own aws-lc verifier rebuilds an
//! RSA key from `n`/`e` on every call (see docs/performance.md).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Once};

use aws_lc_rs::signature::{
    self as sig, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents, VerificationAlgorithm,
};
use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier, aws_lc};
use jsonwebtoken::errors::Result as JwtResult;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, TokenData, Validation};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use crate::http::text::printable;

/// The longest `kid` accepted, in keys and in tokens.
pub const MAX_KID_LEN: usize = 256;

/// Asymmetric algorithms the gateway accepts (RFC 8725 §3.1: no `none`, no HMAC).
pub const ALLOWED_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A JWKS key: jsonwebtoken's [`DecodingKey`], plus aws-lc's parsed form of it for each
/// algorithm it allows (built at ingestion, used by [`PROVIDER`]).
pub struct VerifyKey {
    pub kid: Arc<str>,
    /// Algorithms this key may verify: the JWK's `alg`, or every algorithm of its type.
    pub algorithms: Vec<Algorithm>,
    decoding: DecodingKey,
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

impl VerifyKey {
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg)
    }

    /// jsonwebtoken's `decode` with this key: header, signature, then `validation`'s claim
    /// checks. The claims are only skipped over here; callers read them from the strict parse.
    pub fn decode(
        self: &Arc<Self>,
        token: &str,
        validation: &Validation,
    ) -> JwtResult<TokenData<IgnoredAny>> {
        let _in_use = InUse::enter(self);
        jsonwebtoken::decode(token, &self.decoding, validation)
    }

    /// jsonwebtoken's signature check alone: `signature_b64` (as in the token) over `message`.
    pub fn verify(self: &Arc<Self>, alg: Algorithm, message: &[u8], signature_b64: &str) -> bool {
        if !self.accepts(alg) {
            return false;
        }
        let _in_use = InUse::enter(self);
        jsonwebtoken::crypto::verify(signature_b64, message, &self.decoding, alg).unwrap_or(false)
    }
}

thread_local! {
    /// The key a [`VerifyKey`] call on this thread is verifying with, for [`PROVIDER`].
    static IN_USE: RefCell<Option<Arc<VerifyKey>>> = const { RefCell::new(None) };
}

/// Marks a key as in use on this thread for the length of one jsonwebtoken call.
struct InUse(Option<Arc<VerifyKey>>);

impl InUse {
    fn enter(key: &Arc<VerifyKey>) -> Self {
        Self(IN_USE.replace(Some(key.clone())))
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        IN_USE.set(self.0.take());
    }
}

/// jsonwebtoken's aws-lc provider, except that verifying with the [`DecodingKey`] of the
/// [`VerifyKey`] in use uses the key aws-lc parsed at ingestion.
pub static PROVIDER: LazyLock<CryptoProvider> = LazyLock::new(|| CryptoProvider {
    verifier_factory: pre_parsed_verifier,
    ..aws_lc::DEFAULT_PROVIDER.clone()
});

/// Makes [`PROVIDER`] jsonwebtoken's process-wide provider (before the first key exists).
fn install_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if PROVIDER.install_default().is_err() {
            tracing::warn!(
                "jsonwebtoken's crypto provider was chosen elsewhere; RSA keys are rebuilt for every signature check"
            );
        }
    });
}

fn pre_parsed_verifier(alg: &Algorithm, key: &DecodingKey) -> JwtResult<Box<dyn JwtVerifier>> {
    let in_use = IN_USE.with_borrow(|in_use| {
        in_use
            .as_ref()
            .filter(|k| std::ptr::eq(&k.decoding, key))
            .and_then(|k| {
                let index = k.parsed.iter().position(|(a, _)| a == alg)?;
                Some(PreParsed {
                    key: k.clone(),
                    index,
                })
            })
    });
    match in_use {
        Some(verifier) => Ok(Box::new(verifier)),
        None => (aws_lc::DEFAULT_PROVIDER.verifier_factory)(alg, key),
    }
}

/// A signature check with a key parsed at ingestion.
struct PreParsed {
    key: Arc<VerifyKey>,
    index: usize,
}

impl jsonwebtoken::signature::Verifier<Vec<u8>> for PreParsed {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> Result<(), jsonwebtoken::signature::Error> {
        self.key.parsed[self.index]
            .1
            .verify_sig(message, signature)
            .map_err(|_| jsonwebtoken::signature::Error::new())
    }
}

impl JwtVerifier for PreParsed {
    fn algorithm(&self) -> Algorithm {
        self.key.parsed[self.index].0
    }
}

/// The usable keys of a JWKS and what was skipped (for logs).
#[derive(Debug, Default)]
pub struct ParsedKeySet {
    pub keys: Vec<Arc<VerifyKey>>,
    pub skipped: Vec<String>,
}

/// Parses a JWKS document. Fails only when the document itself is not a key set.
pub fn parse_jwks(body: &[u8]) -> Result<ParsedKeySet, String> {
    install_provider();
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("the key set is not JSON ({e})"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the key set has no \"keys\" array")?;
    let mut parsed = ParsedKeySet::default();
    let mut by_kid: HashMap<Arc<str>, Vec<Arc<VerifyKey>>> = HashMap::new();
    for (index, jwk) in keys.iter().enumerate() {
        match parse_key(jwk) {
            Ok(Some(key)) => by_kid
                .entry(key.kid.clone())
                .or_default()
                .push(Arc::new(key)),
            Ok(None) => {}
            Err(reason) => {
                let kid = jwk
                    .get("kid")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("#{index}"), |k| format!("'{}'", printable(k)));
                parsed.skipped.push(format!("key {kid} skipped: {reason}"));
            }
        }
    }
    for (kid, mut keys) in by_kid {
        if keys.len() > 1 {
            parsed.skipped.push(format!(
                "key '{}' refused: {} usable keys share this kid",
                printable(&kid),
                keys.len()
            ));
        } else if let Some(key) = keys.pop() {
            parsed.keys.push(key);
        }
    }
    parsed.keys.sort_by(|a, b| a.kid.cmp(&b.kid));
    Ok(parsed)
}

/// `Ok(None)` for keys that are validly not ours (encryption keys).
fn parse_key(jwk: &Value) -> Result<Option<VerifyKey>, String> {
    let obj = jwk.as_object().ok_or("not a JSON object")?;
    if obj.get("use").and_then(Value::as_str) == Some("enc") {
        return Ok(None);
    }
    if let Some(ops) = obj.get("key_ops").and_then(Value::as_array)
        && !ops.iter().any(|op| op.as_str() == Some("verify"))
    {
        return Err("key_ops does not include verify".into());
    }
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
        return Err(format!("it carries the private member '{member}'"));
    }
    let kid = match obj.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_LEN => {
            Arc::<str>::from(kid.as_str())
        }
        Some(Value::String(_)) => {
            return Err(format!("kid is empty or longer than {MAX_KID_LEN} bytes"));
        }
        Some(_) => return Err("kid is not a string".into()),
        None => return Err("it has no kid".into()),
    };
    let kty = str_member(obj, "kty")?.ok_or("it has no kty")?;
    let family: Vec<Algorithm> = match kty {
        "RSA" => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        "EC" => match str_member(obj, "crv")? {
            Some("P-256") => vec![Algorithm::ES256],
            Some("P-384") => vec![Algorithm::ES384],
            other => return Err(format!("EC curve {other:?} is not supported")),
        },
        "OKP" => match str_member(obj, "crv")? {
            Some("Ed25519") => vec![Algorithm::EdDSA],
            other => return Err(format!("OKP curve {other:?} is not supported")),
        },
        "oct" => return Err("symmetric keys are never accepted".into()),
        other => return Err(format!("kty '{}' is not supported", printable(other))),
    };
    let algorithms = match str_member(obj, "alg")? {
        None => family,
        Some(alg) => {
            let alg: Algorithm = alg
                .parse()
                .map_err(|_| format!("alg '{}' is not supported", printable(alg)))?;
            if !ALLOWED_ALGS.contains(&alg) || !family.contains(&alg) {
                return Err(format!("alg {alg:?} does not fit a {kty} key"));
            }
            vec![alg]
        }
    };
    let jwk = Jwk::deserialize(&unpadded(obj)).map_err(|e| format!("it is not a JWK ({e})"))?;
    let decoding = DecodingKey::from_jwk(&jwk)
        .map_err(|e| format!("jsonwebtoken cannot use it ({})", printable(&e.to_string())))?;
    match decoding.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => check_rsa(n, e)?,
        DecodingKeyKind::SecretOrDer(point) if kty == "EC" => {
            // x and y are each one field element (RFC 7518 §6.2.1.2), not just 2 in total.
            let size = if algorithms.contains(&Algorithm::ES256) {
                32
            } else {
                48
            };
            let length =
                |name| str_member(obj, name).map(|s| s.map(|s| s.trim_end_matches('=').len()));
            let same_length = length("x")? == length("y")?;
            if !same_length || point.len() != 1 + 2 * size {
                return Err("EC coordinates have the wrong length".into());
            }
        }
        DecodingKeyKind::SecretOrDer(_) => {}
    }
    let parsed = algorithms
        .iter()
        .map(|alg| pre_parse(&decoding, *alg).map(|key| (*alg, key)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(VerifyKey {
        kid,
        algorithms,
        decoding,
        parsed,
    }))
}

/// The JWK with `=` padding dropped from its base64url members: RFC 7515 §2 says unpadded,
/// some issuers pad anyway, and jsonwebtoken refuses padding.
fn unpadded(obj: &Map<String, Value>) -> Value {
    let mut obj = obj.clone();
    for name in ["n", "e", "x", "y"] {
        if let Some(Value::String(text)) = obj.get_mut(name) {
            let trimmed = text.trim_end_matches('=').len();
            text.truncate(trimmed);
        }
    }
    Value::Object(obj)
}

/// aws-lc's parsed form of `key` for `alg`, with the same aws-lc algorithm jsonwebtoken's
/// provider would use.
fn pre_parse(key: &DecodingKey, alg: Algorithm) -> Result<ParsedPublicKey, String> {
    let parsed = match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => RsaPublicKeyComponents {
            n: strip_leading_zeros(n),
            e: strip_leading_zeros(e),
        }
        .to_parsed_public_key(rsa_parameters(alg)),
        DecodingKeyKind::SecretOrDer(bytes) => ParsedPublicKey::new(curve_algorithm(alg), bytes),
    };
    parsed.map_err(|e| format!("the key is rejected by the crypto library ({e})"))
}

/// aws-lc's RSA parameters for a JWS `alg` (RFC 7518 §3.3, §3.5).
fn rsa_parameters(alg: Algorithm) -> &'static RsaParameters {
    match alg {
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => &sig::RSA_PKCS1_2048_8192_SHA256,
    }
}

/// aws-lc's algorithm for an EC or Ed25519 JWS `alg`: ECDSA signatures are the fixed-size
/// `r || s` form (RFC 7518 §3.4).
fn curve_algorithm(alg: Algorithm) -> &'static dyn VerificationAlgorithm {
    match alg {
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        _ => &sig::ECDSA_P256_SHA256_FIXED,
    }
}

/// An RSA key's size and exponent (RFC 8725 §3.5: at least 2048 bits).
fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), String> {
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
    let Some(top) = n.first() else {
        return Err("RSA modulus is empty".into());
    };
    let bits = n.len() * 8 - top.leading_zeros() as usize;
    if bits < 2048 {
        return Err(format!("RSA modulus of {bits} bits is under 2048"));
    }
    if e.len() > 8 {
        return Err("RSA exponent is too large".into());
    }
    let exponent = e.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
    if exponent < 3 || exponent % 2 == 0 {
        return Err(format!("RSA exponent {exponent} is even or under 3"));
    }
    Ok(())
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn str_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("'{name}' is not a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn rsa(kid: &str, bits: usize, e: &[u8]) -> Value {
        let mut n = vec![0xC5u8; bits / 8];
        n[bits / 8 - 1] |= 1;
        json!({ "kty": "RSA", "kid": kid, "use": "sig", "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e) })
    }

    fn kids(set: &ParsedKeySet) -> Vec<&str> {
        set.keys.iter().map(|k| &*k.kid).collect()
    }

    fn parse(keys: Vec<Value>) -> ParsedKeySet {
        parse_jwks(json!({ "keys": keys }).to_string().as_bytes()).expect("a key set")
    }

    #[test]
    fn usable_keys_survive_and_bad_ones_are_skipped_with_a_reason() {
        let mut with_private = rsa("private", 2048, &[1, 0, 1]);
        with_private["d"] = json!("AQAB");
        let mut enc = rsa("enc", 2048, &[1, 0, 1]);
        enc["use"] = json!("enc");
        let mut no_kid = rsa("x", 2048, &[1, 0, 1]);
        no_kid.as_object_mut().expect("object").remove("kid");
        let set = parse(vec![
            rsa("good", 2048, &[1, 0, 1]),
            rsa("small", 1024, &[1, 0, 1]),
            rsa("even", 2048, &[1, 0, 0]),
            rsa("one", 2048, &[1]),
            json!({ "kty": "RSA", "kid": "empty", "n": "", "e": "AQAB" }),
            json!({ "kty": "RSA", "kid": "zeros", "n": "AAAA", "e": "AQAB" }),
            with_private,
            enc,
            no_kid,
            json!({ "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" }),
            json!({ "kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA" }),
            json!(["not", "an", "object"]),
        ]);
        assert_eq!(kids(&set), ["good"]);
        let skipped = set.skipped.join("\n");
        for reason in [
            "under 2048",
            "even or under 3",
            "private member 'd'",
            "no kid",
            "key 'hmac' skipped",
            "P-521",
            "not a JSON object",
        ] {
            assert!(
                skipped.contains(reason),
                "missing '{reason}' in:\n{skipped}"
            );
        }
        assert!(
            !skipped.contains("'enc'"),
            "encryption keys are silently not ours"
        );
    }

    #[test]
    fn a_jwk_alg_binds_and_must_fit_the_key_type() {
        let mut bound = rsa("bound", 2048, &[1, 0, 1]);
        bound["alg"] = json!("PS384");
        let mut misfit = rsa("misfit", 2048, &[1, 0, 1]);
        misfit["alg"] = json!("ES256");
        let mut hmac = rsa("hs", 2048, &[1, 0, 1]);
        hmac["alg"] = json!("HS256");
        let set = parse(vec![bound, misfit, hmac]);
        assert_eq!(kids(&set), ["bound"]);
        assert_eq!(set.keys[0].algorithms, [Algorithm::PS384]);
        assert!(set.keys[0].accepts(Algorithm::PS384) && !set.keys[0].accepts(Algorithm::RS256));
    }

    #[test]
    fn a_kid_used_twice_is_refused_not_guessed() {
        let set = parse(vec![
            rsa("twin", 2048, &[1, 0, 1]),
            rsa("twin", 2048, &[1, 0, 1]),
            rsa("single", 2048, &[1, 0, 1]),
        ]);
        assert_eq!(kids(&set), ["single"]);
        assert!(set.skipped.iter().any(|s| s.contains("share this kid")));
    }

    #[test]
    fn jsonwebtoken_reads_each_key_and_padded_members_are_tolerated() {
        let mut padded = rsa("padded", 2048, &[1, 0, 1]);
        padded["n"] = json!(format!("{}==", padded["n"].as_str().expect("n")));
        let mut bad_chain = rsa("chain", 2048, &[1, 0, 1]);
        bad_chain["x5c"] = json!("not a certificate list");
        let mut no_modulus = rsa("no-n", 2048, &[1, 0, 1]);
        no_modulus.as_object_mut().expect("object").remove("n");
        let set = parse(vec![padded, bad_chain, no_modulus]);
        assert_eq!(kids(&set), ["padded"]);
        let skipped = set.skipped.join("\n");
        assert!(
            skipped.contains("key 'chain' skipped: it is not a JWK"),
            "{skipped}"
        );
        assert!(
            skipped.contains("key 'no-n' skipped: jsonwebtoken cannot use it"),
            "{skipped}"
        );
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Signs `message` with a freshly generated key of each type, publishes the public half as
    /// a JWK, and checks the ingested key verifies it (and nothing else).
    #[test]
    fn every_supported_key_type_verifies_its_signatures() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
        use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};
        let rng = SystemRandom::new();
        let message = b"header.payload";
        let mut cases: Vec<(Value, Algorithm, Vec<u8>)> = Vec::new();

        for (alg, signing, crv, size) in [
            (
                Algorithm::ES256,
                &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                "P-256",
                32,
            ),
            (
                Algorithm::ES384,
                &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
                "P-384",
                48,
            ),
        ] {
            let pair = EcdsaKeyPair::generate(signing).expect("ec key");
            let point = pair.public_key().as_ref();
            let (x, y) = point[1..].split_at(size);
            let jwk = json!({ "kty": "EC", "kid": crv, "crv": crv, "x": b64(x), "y": b64(y) });
            let signature = pair.sign(&rng, message).expect("sign").as_ref().to_vec();
            cases.push((jwk, alg, signature));
        }
        let ed = Ed25519KeyPair::generate().expect("ed key");
        let jwk = json!({ "kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(ed.public_key().as_ref()) });
        cases.push((jwk, Algorithm::EdDSA, ed.sign(message).as_ref().to_vec()));
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa key");
        let public = PublicKeyComponents::<Vec<u8>>::from(rsa.public_key());
        let jwk = json!({ "kty": "RSA", "kid": "rsa", "n": b64(&public.n), "e": b64(&public.e) });
        for (alg, padding) in [
            (
                Algorithm::RS256,
                &sig::RSA_PKCS1_SHA256 as &'static dyn sig::RsaEncoding,
            ),
            (Algorithm::PS512, &sig::RSA_PSS_SHA512),
        ] {
            let mut signature = vec![0; rsa.public_modulus_len()];
            rsa.sign(padding, &rng, message, &mut signature)
                .expect("sign");
            cases.push((jwk.clone(), alg, signature));
        }

        for (jwk, alg, signature) in cases {
            let set = parse(vec![jwk.clone()]);
            assert_eq!(set.keys.len(), 1, "{jwk} skipped: {:?}", set.skipped);
            let key = &set.keys[0];
            assert!(
                key.verify(alg, message, &b64(&signature)),
                "{alg:?} verifies"
            );
            assert!(
                !key.verify(alg, b"header.tampered", &b64(&signature)),
                "{alg:?} rejects other bytes"
            );
            let wrong = if alg == Algorithm::RS256 {
                Algorithm::RS384
            } else {
                Algorithm::RS256
            };
            assert!(
                !key.verify(wrong, message, &b64(&signature)),
                "{alg:?} key refuses {wrong:?}"
            );
        }
    }

    #[test]
    fn documents_that_are_not_key_sets_fail_whole() {
        assert!(parse_jwks(b"<html>").is_err());
        assert!(parse_jwks(b"{\"nokeys\":[]}").is_err());
        assert!(parse(vec![]).keys.is_empty());
    }
}
