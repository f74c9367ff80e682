//! One DPoP proof against one request and access token: every check of RFC 9449 §4.3 (and
//! `ath`, §7), cheapest first, each failing with the name of the check for the access log.
//! Nothing from the proof is trusted (not even for a thumbprint) before its signature verifies.

use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::HeaderName;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::RequestTarget;
use super::htu::{normalize_path, parse_htu};
use super::nonce::Nonces;
use super::replay::ReplayKey;
use crate::auth::error::{AuthError, DenyReason};
use crate::auth::validate::decode;
use crate::http::text::quote;

/// The proof header (RFC 9449 §4.1).
pub const DPOP: HeaderName = HeaderName::from_static("dpop");
/// Longest proof accepted, checked before decoding.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;
/// Longest `jti` accepted (§11.1: refuse needlessly large values).
pub const MAX_JTI_BYTES: usize = 256;
/// JWK members that only a private key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
/// `typ` of a proof (§4.2), compared exactly.
const PROOF_TYPE: &str = "dpop+jwt";

/// What a proof must satisfy, from `Authentication__Schemes__Bearer__DPoP__*`.
#[derive(Debug)]
pub struct ProofRules {
    pub algorithms: Vec<Algorithm>,
    /// `ProofMaxAge` in seconds.
    pub max_age: i64,
    /// `ProofClockSkew` in seconds.
    pub clock_skew: i64,
    /// `Some` when `RequireNonce` is on.
    pub nonces: Option<Nonces>,
}

/// A proof that passed every check; the caller still compares `cnf.jkt` and remembers it.
#[derive(Debug, Clone)]
pub struct CheckedProof {
    /// RFC 7638 SHA-256 thumbprint of the proof's key.
    pub jkt: String,
    pub replay_key: ReplayKey,
    /// How long the proof stays acceptable: how long the replay cache must keep it.
    pub window: Duration,
}

fn fail(check: &'static str, description: impl Into<String>) -> AuthError {
    let mut error = AuthError::new(DenyReason::InvalidDpopProof, description);
    error.dpop_mut().failed_check = Some(check);
    error
}

/// `base64url(SHA-256(token))`: the `ath` claim (§4.2).
pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

impl ProofRules {
    /// Checks the request's proof at `now` (Unix seconds), given the origins the request may
    /// have been sent to; with an access token (a resource request) `ath` must match it, and
    /// without one (a token request, §5) the proof has no `ath`.
    pub fn check(
        &self,
        target: &RequestTarget<'_>,
        origins: &[String],
        token: Option<&str>,
        now: i64,
    ) -> Result<CheckedProof, AuthError> {
        let proof = self.single_proof(target)?;
        let decoded = decode(proof).map_err(|e| fail("syntax", format!("DPoP proof: {e}")))?;
        let header = &decoded.header;
        match header.get("typ") {
            Some(Value::String(typ)) if typ == PROOF_TYPE => {}
            _ => return Err(fail("typ", "the DPoP proof's typ is not dpop+jwt")),
        }
        let alg = self.algorithm(header)?;
        let jwk = public_jwk(header, alg)?;
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|_| fail("jwk", "the DPoP proof's jwk is not a usable public key"))?;
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(proof, &key, &validation).map_err(|_| {
            fail(
                "signature",
                "the DPoP proof's signature does not verify with its jwk",
            )
        })?;
        let jkt = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| fail("jwk", "the DPoP proof's jwk has no RFC 7638 thumbprint"))?;
        self.check_claims(&decoded.claims, target, origins, token, now)
            .map(|(htu, jti, window)| CheckedProof {
                replay_key: replay_key(&jkt, &htu, jti),
                jkt: jkt.clone(),
                window,
            })
            .map_err(|mut e| {
                e.dpop_mut().jkt = Some(jkt.clone());
                e
            })
    }

    /// Exactly one `DPoP` header (§4.3 step 1), at most [`MAX_PROOF_BYTES`].
    fn single_proof<'a>(&self, target: &RequestTarget<'a>) -> Result<&'a str, AuthError> {
        let mut values = target.headers.get_all(DPOP).iter();
        let Some(value) = values.next() else {
            return Err(fail("header", "the request has no DPoP proof header"));
        };
        if values.next().is_some() {
            return Err(fail("header", "the request has more than one DPoP header"));
        }
        if value.len() > MAX_PROOF_BYTES {
            return Err(fail(
                "size",
                format!("the DPoP proof is longer than {MAX_PROOF_BYTES} bytes"),
            ));
        }
        value
            .to_str()
            .map_err(|_| fail("syntax", "the DPoP header is not visible ASCII"))
    }

    /// An asymmetric algorithm from `Algorithms` (§4.3 step 5).
    fn algorithm(&self, header: &Map<String, Value>) -> Result<Algorithm, AuthError> {
        let Some(Value::String(name)) = header.get("alg") else {
            return Err(fail("alg", "the DPoP proof has no alg"));
        };
        name.parse::<Algorithm>()
            .ok()
            .filter(|alg| self.algorithms.contains(alg))
            .ok_or_else(|| {
                fail(
                    "alg",
                    format!("the DPoP proof algorithm {} is not accepted", quote(name)),
                )
            })
    }

    /// `jti`, `htm`, `htu`, `iat`, `ath`, `nonce`, in that order; returns the normalized
    /// `htu`, the `jti` and the proof's remaining window.
    fn check_claims<'c>(
        &self,
        claims: &'c Map<String, Value>,
        target: &RequestTarget<'_>,
        origins: &[String],
        token: Option<&str>,
        now: i64,
    ) -> Result<(String, &'c str, Duration), AuthError> {
        let claim = |name: &'static str| match claims.get(name) {
            Some(Value::String(value)) => Ok(value.as_str()),
            Some(_) => Err(fail(
                name,
                format!("the DPoP proof's {name} is not a string"),
            )),
            None => Err(fail(name, format!("the DPoP proof has no {name} claim"))),
        };
        let jti = claim("jti")?;
        if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
            return Err(fail(
                "jti",
                format!("the DPoP proof's jti is empty or longer than {MAX_JTI_BYTES} bytes"),
            ));
        }
        let htm = claim("htm")?;
        if htm != target.method.as_str() {
            return Err(fail(
                "htm",
                format!(
                    "the DPoP proof's htm {} is not the request method {}",
                    quote(htm),
                    target.method
                ),
            ));
        }
        let htu = parse_htu(claim("htu")?)
            .map_err(|why| fail("htu", format!("the DPoP proof's {why}")))?;
        let path = normalize_path(target.uri.path());
        if htu.path != path || !origins.contains(&htu.origin) {
            return Err(fail(
                "htu",
                format!(
                    "the DPoP proof's htu {} is not this request's URI {}",
                    quote(&htu.joined()),
                    quote(&format!(
                        "{}{path}",
                        origins.first().map_or("", String::as_str)
                    ))
                ),
            ));
        }
        let window = self.check_iat(claims.get("iat"), now)?;
        if let Some(token) = token
            && claim("ath")? != token_hash(token)
        {
            return Err(fail(
                "ath",
                "the DPoP proof's ath is not the hash of this access token",
            ));
        }
        if let Some(nonces) = &self.nonces {
            let now = u64::try_from(now).unwrap_or(0);
            let fresh =
                matches!(claims.get("nonce"), Some(Value::String(n)) if nonces.accepts(n, now));
            if !fresh {
                let mut error = AuthError::new(
                    DenyReason::UseDpopNonce,
                    "Resource server requires nonce in DPoP proof",
                );
                let details = error.dpop_mut();
                details.failed_check = Some("nonce");
                details.nonce = Some(nonces.issue(now));
                return Err(error);
            }
        }
        Ok((htu.joined(), jti, window))
    }

    /// `iat` within `[now - max_age - skew, now + skew]`, in `i128` so no hostile value can
    /// overflow; returns how long the proof stays acceptable (+1 s for rounding).
    fn check_iat(&self, iat: Option<&Value>, now: i64) -> Result<Duration, AuthError> {
        let iat: i128 = match iat {
            None => return Err(fail("iat", "the DPoP proof has no iat claim")),
            Some(Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => i.into(),
                (None, Some(u), _) => u.into(),
                // A fractional NumericDate: whole seconds are enough for this window.
                (None, None, Some(f)) if f.is_finite() && f.abs() < 1e18 => f.floor() as i128,
                _ => return Err(fail("iat", "the DPoP proof's iat is not a valid number")),
            },
            Some(_) => return Err(fail("iat", "the DPoP proof's iat is not a number")),
        };
        let (now, max_age, skew) = (
            i128::from(now),
            i128::from(self.max_age),
            i128::from(self.clock_skew),
        );
        if iat > now + skew {
            return Err(fail(
                "iat",
                format!("the DPoP proof is issued {} s in the future", iat - now),
            ));
        }
        if iat < now - max_age - skew {
            return Err(fail(
                "iat",
                format!(
                    "the DPoP proof is {} s old, more than the {max_age} s allowed",
                    now - iat
                ),
            ));
        }
        let left = iat + max_age + skew - now + 1;
        Ok(Duration::from_secs(u64::try_from(left).unwrap_or(1).max(1)))
    }
}

/// The header's `jwk` as a public key fit for `alg` (§4.3 step 7): no private members, no
/// symmetric key, RSA of 2048 bits or more, the curve `alg` names.
fn public_jwk(header: &Map<String, Value>, alg: Algorithm) -> Result<Jwk, AuthError> {
    let Some(Value::Object(raw)) = header.get("jwk") else {
        return Err(fail(
            "jwk",
            "the DPoP proof has no jwk object in its header",
        ));
    };
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| raw.contains_key(**m)) {
        return Err(fail(
            "jwk",
            format!("the DPoP proof's jwk holds the private member '{member}'"),
        ));
    }
    if raw.get("kty").and_then(Value::as_str) == Some("oct") {
        return Err(fail("jwk", "the DPoP proof's jwk is a symmetric (oct) key"));
    }
    let jwk: Jwk = serde_json::from_value(Value::Object(raw.clone()))
        .map_err(|_| fail("jwk", "the DPoP proof's jwk is not a valid JWK"))?;
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(rsa), _) => {
            if rsa_bits(&rsa.n).unwrap_or(0) < 2048 {
                return Err(fail(
                    "jwk",
                    "the DPoP proof's RSA key is shorter than 2048 bits",
                ));
            }
            matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            )
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    if !fits {
        return Err(fail(
            "jwk",
            format!("the DPoP proof's jwk is not a key for {alg:?}"),
        ));
    }
    Ok(jwk)
}

/// Bits of an RSA modulus given as base64url.
fn rsa_bits(n: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(n).ok()?;
    let start = bytes.iter().position(|b| *b != 0)?;
    let top = bytes[start];
    Some((bytes.len() - start) * 8 - top.leading_zeros() as usize)
}

/// SHA-256 of key, target URI and `jti`, NUL-separated: the proof's identity in the replay
/// cache, scoped to its key so one client cannot pre-claim another's `jti`.
fn replay_key(jkt: &str, htu: &str, jti: &str) -> ReplayKey {
    let mut context = digest::Context::new(&digest::SHA256);
    for (i, part) in [jkt, htu, jti].iter().enumerate() {
        if i > 0 {
            context.update(&[0]);
        }
        context.update(part.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9449 §7.1, figure 14: the access token and its `ath`.
    #[test]
    fn ath_matches_rfc_9449_example() {
        assert_eq!(
            token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    /// RFC 9449 §6.1 figure 9 (EC key of the §4.2 example) and RFC 7638 §3.1 (RSA key).
    #[test]
    fn jkt_matches_rfc_examples() {
        let ec: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
            "crv": "P-256"
        }))
        .unwrap();
        assert_eq!(
            ec.thumbprint(ThumbprintHash::SHA256).unwrap(),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        let rsa: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            rsa.thumbprint(ThumbprintHash::SHA256).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn iat_window_is_overflow_safe() {
        let rules = ProofRules {
            algorithms: vec![Algorithm::ES256],
            max_age: 60,
            clock_skew: 5,
            nonces: None,
        };
        let now = 1_700_000_000;
        let at = |v: Value| rules.check_iat(Some(&v), now).map(|d| d.as_secs());
        assert_eq!(at(now.into()), Ok(66));
        assert_eq!(at((now + 5).into()), Ok(71));
        assert_eq!(at((now - 65).into()), Ok(1));
        for bad in [
            Value::from(now + 6),
            Value::from(now - 66),
            Value::from(i64::MIN),
            Value::from(i64::MAX),
            Value::from(u64::MAX),
            serde_json::json!(1e300),
            serde_json::json!(-1e300),
            serde_json::json!("1700000000"),
        ] {
            assert!(at(bad.clone()).is_err(), "{bad}");
        }
        let edge = ProofRules {
            max_age: i64::MAX,
            clock_skew: i64::MAX,
            ..rules
        };
        assert!(edge.check_iat(Some(&Value::from(0)), i64::MAX).is_ok());
        assert!(
            edge.check_iat(Some(&Value::from(i64::MIN)), i64::MAX)
                .is_err()
        );
    }

    #[test]
    fn rsa_bits_counts_the_modulus() {
        assert_eq!(
            rsa_bits(&URL_SAFE_NO_PAD.encode([0u8, 0x80, 0, 0])),
            Some(24)
        );
        assert_eq!(rsa_bits(&URL_SAFE_NO_PAD.encode([0x01; 256])), Some(2041));
        assert_eq!(rsa_bits("!"), None);
    }
}
