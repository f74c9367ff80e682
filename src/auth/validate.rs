//! One bearer token -> a [`VerifiedToken`], or the precise reason it is refused.
//!
//! jsonwebtoken does the JWT work: it reads the header ([`jsonwebtoken::decode_header`]),
//! verifies the signature with the JWKS key it built ([`super::keyset::VerifyKey::decode`]), and validates
//! `iss`, `aud`, `exp`/`nbf` with the clock skew and the presence of `iss`/`aud`/`sub`/`exp`
//! ([`Validation`]). A token it refuses is refused.
//!
//! Around it, the rules it does not enforce (RFC 8725, RFC 9068 §4), as pre-checks: the length
//! cap before any parsing; the JWS shape and duplicate JSON members ([`decode`]); `alg` from
//! the asymmetric set, `typ` absent or `at+jwt`, no `crit`/`jku`/`x5u`/`jwk`/`x5c`/`b64`/`cty`,
//! a bounded `kid` ([`Validator::check_header`]); and once the signature holds, claim types (a
//! claim of the wrong type is invalid, not absent), `iat` not in the future, `exp - iat` within
//! `MaxTokenLifetime` ([`Validator::check_claims`]); no `cnf` under Bearer
//! ([`Validator::validate`]; the DPoP path uses [`Validator::verify`] and compares `cnf.jkt`
//! itself). jsonwebtoken reports only an error kind, and checks time against the system clock in whole seconds, so
//! `check_claims` also names the first failing rule in the order clients have always seen, to
//! the fraction of a second; the `check_*` helpers re-check `exp`/`nbf` of cached tokens.
//!
//! A verified token is remembered (keyed by its SHA-256) until its `exp`, so a client reusing
//! its token costs one signature check; time claims are still checked on every request.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::access::{ClaimRules, TokenAccess};
use super::error::{AuthError, DenyReason};
use super::keys::{KeyLookup, KeyStore};
use super::keyset::{ALLOWED_ALGS, MAX_KID_LEN};
use super::strict_json::parse_object;
use crate::config::AuthConfig;
use crate::http::text::{quote, seconds};
use crate::metrics::Metrics;

/// jsonwebtoken computes `now - leeway` in unsigned seconds: a larger skew (ten years) could
/// underflow it.
const MAX_LIBRARY_LEEWAY: u64 = 10 * 365 * 86_400;

/// Header members that name an extension or a key source we will not honour.
const FORBIDDEN_HEADER_MEMBERS: &[&str] = &["crit", "b64", "cty", "jku", "x5u", "jwk", "x5c"];

/// A token whose signature and claims were accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub kid: Arc<str>,
    pub alg: Algorithm,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub subject: String,
    /// Scopes, client id and roles, with what granted each role ([`ClaimRules::access`]).
    pub access: TokenAccess,
    pub expires_at: f64,
    pub not_before: Option<f64>,
    pub issued_at: Option<f64>,
    /// The `cnf` claim: whom the token is bound to (RFC 7800, RFC 9449 §6).
    pub confirmation: Confirmation,
}

/// A token's `cnf` claim as far as DPoP is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// No `cnf`: a plain bearer token.
    None,
    /// `cnf.jkt`: bound to the DPoP key with this RFC 7638 thumbprint.
    Jkt(String),
    /// A `cnf` without a well-formed `jkt` (e.g. `cnf: {}`, mutual TLS): sender-constrained,
    /// but not to anything DPoP can prove; the message names the binding found.
    Unusable(String),
}

impl Confirmation {
    fn from_claims(claims: &Map<String, Value>) -> Self {
        match claims.get("cnf") {
            None => Self::None,
            Some(Value::Object(cnf)) => match cnf.get("jkt") {
                // base64url of a SHA-256: 43 characters.
                Some(Value::String(jkt))
                    if jkt.len() == 43
                        && jkt
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
                {
                    Self::Jkt(jkt.clone())
                }
                _ => Self::Unusable(super::cnf::refusal(&Value::Object(cnf.clone()))),
            },
            Some(other) => Self::Unusable(super::cnf::refusal(other)),
        }
    }

    /// Why a bearer token with this `cnf` is refused, `None` without one.
    pub fn bearer_refusal(&self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Jkt(jkt) => Some(super::cnf::refusal(&serde_json::json!({ "jkt": jkt }))),
            Self::Unusable(refusal) => Some(refusal.clone()),
        }
    }
}

impl VerifiedToken {
    pub fn has_role(&self, role: &str) -> bool {
        self.access.has_role(role)
    }

    pub fn client_id(&self) -> Option<&str> {
        self.access.client_id.as_deref()
    }
}

/// The pieces of a compact JWS, decoded but not yet trusted.
#[derive(Debug)]
pub struct DecodedToken<'a> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// `header.payload`, the signed bytes.
    pub message: &'a str,
    pub signature: &'a str,
}

struct ExpireAtToken {
    skew: Duration,
}

impl moka::Expiry<[u8; 32], Arc<VerifiedToken>> for ExpireAtToken {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        token: &Arc<VerifiedToken>,
        _: Instant,
    ) -> Option<Duration> {
        let left = token.expires_at + self.skew.as_secs_f64() - unix_now();
        Some(Duration::from_secs_f64(left.clamp(0.0, 1e9)))
    }
}

/// Token validation with the configured issuers, audiences, skew and limits.
pub struct Validator {
    keys: Arc<KeyStore>,
    cache: Option<moka::sync::Cache<[u8; 32], Arc<VerifiedToken>>>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    skew: f64,
    max_lifetime: f64,
    max_len: usize,
    claim_rules: ClaimRules,
    /// jsonwebtoken's claim checks, one per accepted algorithm (a `Validation` names it).
    validations: Vec<(Algorithm, Validation)>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl Validator {
    pub fn new(config: &AuthConfig, keys: Arc<KeyStore>, metrics: Arc<Metrics>) -> Arc<Self> {
        let cache = (config.token_cache_size > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.token_cache_size)
                .expire_after(ExpireAtToken {
                    skew: config.clock_skew,
                })
                .support_invalidation_closures()
                .build()
        });
        let validator = Arc::new(Self {
            keys: keys.clone(),
            cache,
            issuers: config.valid_issuers.clone(),
            audiences: config.valid_audiences.clone(),
            skew: config.clock_skew.as_secs_f64(),
            max_lifetime: config.max_token_lifetime.as_secs_f64(),
            max_len: config.max_token_length,
            claim_rules: ClaimRules::from_config(config),
            validations: ALLOWED_ALGS
                .iter()
                .map(|alg| (*alg, library_validation(*alg, config)))
                .collect(),
            metrics,
        });
        let weak = Arc::downgrade(&validator);
        keys.on_key_removed(Box::new(move |kid| {
            if let Some(validator) = weak.upgrade() {
                validator.forget_kid(kid);
            }
        }));
        validator
    }

    /// How claims become scopes, a client id and roles.
    pub fn claim_rules(&self) -> &ClaimRules {
        &self.claim_rules
    }

    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Drops cached tokens signed by `kid` (the key left the key set).
    pub fn forget_kid(&self, kid: &str) {
        if let Some(cache) = &self.cache {
            let kid: Arc<str> = kid.into();
            let _ = cache.invalidate_entries_if(move |_, token| token.kid == kid);
        }
    }

    /// Validates a bearer token now.
    pub async fn validate(&self, token: &str) -> Result<Arc<VerifiedToken>, AuthError> {
        self.validate_at(token, unix_now()).await
    }

    /// Validates a bearer token at `now` (Unix seconds): every check of [`Self::verify_at`],
    /// and no `cnf` (a DPoP-bound token presented as a bearer token, RFC 9449 §7.2).
    pub async fn validate_at(
        &self,
        token: &str,
        now: f64,
    ) -> Result<Arc<VerifiedToken>, AuthError> {
        let verified = self.verify_at(token, now).await?;
        if let Some(refusal) = verified.confirmation.bearer_refusal() {
            return Err(AuthError::new(DenyReason::SenderConstrained, refusal));
        }
        Ok(verified)
    }

    /// Checks a token now, whatever its `cnf` (the DPoP scheme compares it to the proof).
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, AuthError> {
        self.verify_at(token, unix_now()).await
    }

    /// Signature, header and claims at `now` (Unix seconds); `cnf` is only read.
    pub async fn verify_at(&self, token: &str, now: f64) -> Result<Arc<VerifiedToken>, AuthError> {
        if token.len() > self.max_len {
            return Err(AuthError::new(
                DenyReason::TokenTooLong,
                format!(
                    "the token is longer than {} bytes ({} bytes; the limit is Authentication__Schemes__Bearer__MaxTokenLength)",
                    self.max_len,
                    token.len()
                ),
            ));
        }
        let cache_key: [u8; 32] = {
            let d = digest::digest(&digest::SHA256, token.as_bytes());
            let mut key = [0u8; 32];
            key.copy_from_slice(d.as_ref());
            key
        };
        if let Some(cached) = self.cache.as_ref().and_then(|c| c.get(&cache_key)) {
            // A key that left the set (past its grace period) takes its tokens with it.
            if self.keys.contains(&cached.kid) {
                self.metrics.token_cache_hits.inc();
                self.check_times(&cached, now)?;
                return Ok(cached);
            }
        }
        self.metrics.token_cache_misses.inc();
        let decoded = decode(token)?;
        let (alg, kid) = self.check_jws_header(token, &decoded.header)?;
        let key = match self.keys.lookup(&kid).await {
            KeyLookup::Found(key) => key,
            KeyLookup::Unknown => {
                return Err(AuthError::new(
                    DenyReason::UnknownKid,
                    format!(
                        "the signing key {} is not in the issuer's key set",
                        quote(&kid)
                    ),
                ));
            }
            KeyLookup::Unavailable => {
                return Err(AuthError::new(
                    DenyReason::KeysUnavailable,
                    "the issuer's signing keys are not available yet; retry shortly",
                ));
            }
        };
        if !key.accepts(alg) {
            return Err(AuthError::new(
                DenyReason::DisallowedAlg,
                format!(
                    "the key {} does not allow the algorithm {alg:?}",
                    quote(&kid)
                ),
            ));
        }
        self.metrics.signature_verifications.inc();
        let verdict = key.decode(token, self.validation(alg));
        if let Err(e) = &verdict
            && !is_claims_refusal(e.kind())
        {
            return Err(AuthError::new(
                DenyReason::BadSignature,
                format!("the signature does not verify with key {}", quote(&kid)),
            ));
        }
        // The signature holds: the first rule the claims break, in the documented order.
        let token_data = self.check_claims(&decoded.claims, key.kid.clone(), alg, now)?;
        if let Err(e) = verdict {
            return Err(library_refusal(&e));
        }
        let token_data = Arc::new(token_data);
        if let Some(cache) = &self.cache {
            cache.insert(cache_key, token_data.clone());
        }
        Ok(token_data)
    }

    /// The header pre-checks ([`Self::check_header`]), then jsonwebtoken's reading of it, which
    /// also refuses registered parameters of the wrong type (RFC 7515 §4.1).
    pub fn check_jws_header(
        &self,
        token: &str,
        header: &Map<String, Value>,
    ) -> Result<(Algorithm, String), AuthError> {
        let (alg, kid) = self.check_header(header)?;
        jsonwebtoken::decode_header(token).map_err(|e| {
            AuthError::new(
                DenyReason::Malformed,
                format!("the token is malformed: the header does not fit RFC 7515 ({e})"),
            )
        })?;
        Ok((alg, kid))
    }

    fn validation(&self, alg: Algorithm) -> &Validation {
        self.validations
            .iter()
            .find(|(a, _)| *a == alg)
            .map_or(&self.validations[0].1, |(_, v)| v)
    }

    /// `alg`, `typ`, extensions and `kid`.
    pub fn check_header(
        &self,
        header: &Map<String, Value>,
    ) -> Result<(Algorithm, String), AuthError> {
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg,
            Some(_) => {
                return Err(AuthError::new(
                    DenyReason::Malformed,
                    "the header's alg is not a string",
                ));
            }
            None => {
                return Err(AuthError::new(
                    DenyReason::Malformed,
                    "the header has no alg",
                ));
            }
        };
        let alg = alg
            .parse::<Algorithm>()
            .ok()
            .filter(|a| ALLOWED_ALGS.contains(a))
            .ok_or_else(|| {
                AuthError::new(
                    DenyReason::DisallowedAlg,
                    format!(
                        "the algorithm {} is not accepted; only RS/PS/ES/EdDSA signatures are",
                        quote(alg)
                    ),
                )
            })?;
        match header.get("typ") {
            None => {}
            Some(Value::String(typ))
                if typ.eq_ignore_ascii_case("at+jwt")
                    || typ.eq_ignore_ascii_case("application/at+jwt") => {}
            Some(Value::String(typ))
                if typ.eq_ignore_ascii_case("application/okta-internal-at+jwt") =>
            {
                return Err(AuthError::new(
                    DenyReason::DisallowedType,
                    "this is an Okta org authorization server token; use a custom authorization server",
                ));
            }
            Some(Value::String(typ)) => {
                return Err(AuthError::new(
                    DenyReason::DisallowedType,
                    format!("the token type {} is not an access token", quote(typ)),
                ));
            }
            Some(_) => {
                return Err(AuthError::new(
                    DenyReason::Malformed,
                    "the header's typ is not a string",
                ));
            }
        }
        if let Some(member) = FORBIDDEN_HEADER_MEMBERS
            .iter()
            .find(|m| header.contains_key(**m))
        {
            return Err(AuthError::new(
                DenyReason::DisallowedHeader,
                format!("the header parameter '{member}' is not supported"),
            ));
        }
        let kid = match header.get("kid") {
            Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_LEN => kid.clone(),
            Some(Value::String(_)) => {
                return Err(AuthError::new(
                    DenyReason::Malformed,
                    "the header's kid is empty or too long",
                ));
            }
            Some(_) => {
                return Err(AuthError::new(
                    DenyReason::Malformed,
                    "the header's kid is not a string",
                ));
            }
            None => {
                return Err(AuthError::new(
                    DenyReason::Malformed,
                    "the header has no kid",
                ));
            }
        };
        Ok((alg, kid))
    }

    /// Every claim rule, in the order their failures are reported.
    pub fn check_claims(
        &self,
        claims: &Map<String, Value>,
        kid: Arc<str>,
        alg: Algorithm,
        now: f64,
    ) -> Result<VerifiedToken, AuthError> {
        let issuer = required_string(claims, "iss")?;
        let audiences = audiences(claims)?;
        let subject = required_string(claims, "sub")?;
        let expires_at = numeric(claims, "exp")?.ok_or_else(|| {
            AuthError::new(DenyReason::MissingClaim, "the token has no exp claim")
        })?;
        let not_before = numeric(claims, "nbf")?;
        let issued_at = numeric(claims, "iat")?;
        let access = self.claim_rules.access(claims)?;
        let token = VerifiedToken {
            kid,
            alg,
            issuer,
            audiences,
            subject,
            access,
            expires_at,
            not_before,
            issued_at,
            confirmation: Confirmation::from_claims(claims),
        };
        self.check_times(&token, now)?;
        if let Some(iat) = issued_at
            && iat > now + self.skew
        {
            return Err(AuthError::new(
                DenyReason::IssuedInFuture,
                format!("the token is issued {} s in the future", seconds(iat - now)),
            ));
        }
        let lifetime = expires_at - issued_at.unwrap_or(now);
        if lifetime > self.max_lifetime {
            return Err(AuthError::new(
                DenyReason::LifetimeTooLong,
                format!(
                    "the token lives {} s, more than the {} s allowed",
                    seconds(lifetime),
                    seconds(self.max_lifetime)
                ),
            ));
        }
        self.check_issuer(&token.issuer)?;
        self.check_audiences(&token.audiences)?;
        Ok(token)
    }

    /// `iss` is one of the accepted issuers (exact match).
    pub fn check_issuer(&self, issuer: &str) -> Result<(), AuthError> {
        if self.issuers.iter().any(|i| i == issuer) {
            return Ok(());
        }
        Err(AuthError::new(
            DenyReason::WrongIssuer,
            format!(
                "the issuer {} is not accepted (expected {})",
                quote(issuer),
                quote(&self.issuers[0])
            ),
        ))
    }

    /// At least one of the token's audiences is accepted.
    pub fn check_audiences(&self, audiences: &[String]) -> Result<(), AuthError> {
        if audiences.iter().any(|a| self.audiences.contains(a)) {
            return Ok(());
        }
        let shown = audiences
            .iter()
            .map(|a| quote(a))
            .collect::<Vec<_>>()
            .join(", ");
        Err(AuthError::new(
            DenyReason::WrongAudience,
            format!("the audience {shown} is not accepted"),
        ))
    }

    /// `exp` and `nbf` against `now`, with the clock skew.
    pub fn check_times(&self, token: &VerifiedToken, now: f64) -> Result<(), AuthError> {
        self.check_expiry(token.expires_at, now)?;
        match token.not_before {
            Some(nbf) => self.check_not_before(nbf, now),
            None => Ok(()),
        }
    }

    /// `exp` against `now`, with the clock skew.
    pub fn check_expiry(&self, expires_at: f64, now: f64) -> Result<(), AuthError> {
        if now > expires_at + self.skew {
            return Err(AuthError::new(
                DenyReason::Expired,
                format!("the token expired {} s ago", seconds(now - expires_at)),
            ));
        }
        Ok(())
    }

    /// `nbf` against `now`, with the clock skew.
    pub fn check_not_before(&self, not_before: f64, now: f64) -> Result<(), AuthError> {
        if not_before > now + self.skew {
            return Err(AuthError::new(
                DenyReason::NotYetValid,
                format!(
                    "the token is not valid for another {} s",
                    seconds(not_before - now)
                ),
            ));
        }
        Ok(())
    }
}

/// Splits and decodes a compact JWS without trusting it.
pub fn decode(token: &str) -> Result<DecodedToken<'_>, AuthError> {
    let malformed = |what: &str| {
        AuthError::new(
            DenyReason::Malformed,
            format!("the token is malformed: {what}"),
        )
    };
    let (message, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| malformed("it is not a JWS (header.payload.signature)"))?;
    let (header_b64, payload_b64) = message
        .split_once('.')
        .ok_or_else(|| malformed("it is not a JWS (header.payload.signature)"))?;
    if payload_b64.contains('.') {
        return Err(malformed(
            "it has more than three parts (encrypted tokens are not accepted)",
        ));
    }
    if signature.is_empty() {
        return Err(malformed("the signature is empty"));
    }
    let header = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| malformed("the header is not base64url"))?;
    let header = parse_object(&header)
        .map_err(|e| malformed(&format!("the header is not a JSON object ({e})")))?;
    let claims = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| malformed("the payload is not base64url"))?;
    let claims = parse_object(&claims)
        .map_err(|e| malformed(&format!("the payload is not a JSON object ({e})")))?;
    Ok(DecodedToken {
        header,
        claims,
        message,
        signature,
    })
}

fn required_string(claims: &Map<String, Value>, name: &str) -> Result<String, AuthError> {
    match claims.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(AuthError::new(
            DenyReason::Malformed,
            format!("the claim '{name}' is not a string"),
        )),
        None => Err(AuthError::new(
            DenyReason::MissingClaim,
            format!("the token has no {name} claim"),
        )),
    }
}

fn audiences(claims: &Map<String, Value>) -> Result<Vec<String>, AuthError> {
    let bad = || {
        AuthError::new(
            DenyReason::Malformed,
            "the claim 'aud' must be a string or an array of strings",
        )
    };
    match claims.get("aud") {
        Some(Value::String(aud)) => Ok(vec![aud.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
        None => Err(AuthError::new(
            DenyReason::MissingClaim,
            "the token has no aud claim",
        )),
    }
}

fn numeric(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| {
                AuthError::new(
                    DenyReason::Malformed,
                    format!("the claim '{name}' is not a valid number"),
                )
            }),
        Some(_) => Err(AuthError::new(
            DenyReason::Malformed,
            format!("the claim '{name}' is not a number"),
        )),
    }
}

/// jsonwebtoken's checks for a token signed with `alg`.
fn library_validation(alg: Algorithm, config: &AuthConfig) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&config.valid_issuers);
    validation.set_audience(&config.valid_audiences);
    validation.set_required_spec_claims(&["iss", "aud", "sub", "exp"]);
    validation.validate_nbf = true;
    // It compares whole seconds (claims rounded, clock truncated): the skew rounded up, plus
    // one second, keeps it from refusing a token the exact check accepts.
    validation.leeway = (whole_seconds_up(config.clock_skew) + 1).min(MAX_LIBRARY_LEEWAY);
    validation
}

fn whole_seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Whether jsonwebtoken refused the claims (its signature check passed).
fn is_claims_refusal(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ExpiredSignature
            | ErrorKind::ImmatureSignature
            | ErrorKind::InvalidIssuer
            | ErrorKind::InvalidAudience
            | ErrorKind::InvalidSubject
            | ErrorKind::MissingRequiredClaim(_)
            | ErrorKind::InvalidClaimFormat(_)
            | ErrorKind::Json(_)
    )
}

/// jsonwebtoken refused claims that [`Validator::check_claims`] accepted: a NumericDate it cannot
/// read (negative, beyond u64), or a clock edge of under a second.
fn library_refusal(e: &JwtError) -> AuthError {
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::new(DenyReason::Expired, "the token has expired"),
        ErrorKind::ImmatureSignature => {
            AuthError::new(DenyReason::NotYetValid, "the token is not valid yet")
        }
        ErrorKind::InvalidIssuer => {
            AuthError::new(DenyReason::WrongIssuer, "the issuer is not accepted")
        }
        ErrorKind::InvalidAudience => {
            AuthError::new(DenyReason::WrongAudience, "the audience is not accepted")
        }
        ErrorKind::MissingRequiredClaim(name) | ErrorKind::InvalidClaimFormat(name) => {
            AuthError::new(
                DenyReason::Malformed,
                format!("the claim {} is not a valid number", quote(name)),
            )
        }
        _ => AuthError::new(
            DenyReason::Malformed,
            format!("the claims are refused ({e})"),
        ),
    }
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
