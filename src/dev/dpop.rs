//! DPoP at the embedded issuer's token endpoint, as Okta does it (RFC 9449 §5, §8): a token
//! request with a `DPoP` proof first gets 400 `use_dpop_nonce` with a `DPoP-Nonce`; the retry
//! with that nonce gets a DPoP-bound token (`token_type: DPoP`, `cnf.jkt`). The proof is
//! checked by the gateway's own proof rules (no `ath` at a token endpoint).

use aws_lc_rs::rand;
use axum::http::{HeaderMap, Method, Uri};
use jsonwebtoken::Algorithm;

use crate::auth::DenyReason;
use crate::auth::dpop::nonce::Nonces;
use crate::auth::dpop::proof::{DPOP, ProofRules};
use crate::auth::dpop::{RequestTarget, unix_seconds};

/// Seconds a nonce is current (Okta's last three days; short here so the dance is visible).
const NONCE_PERIOD: u64 = 300;

/// Checks token-request proofs and issues nonces.
#[derive(Debug)]
pub struct TokenEndpointDpop {
    rules: ProofRules,
}

/// What the token endpoint does with a request's proof.
#[derive(Debug)]
pub enum ProofOutcome {
    /// No `DPoP` header: a bearer token.
    None,
    /// Bind the token to this key thumbprint.
    Bound(String),
    /// 400 `use_dpop_nonce` with this `DPoP-Nonce`.
    NeedsNonce(String),
    /// 400 `invalid_dpop_proof` with this description.
    Invalid(String),
}

impl TokenEndpointDpop {
    pub fn new() -> Self {
        let mut secret = [0u8; 32];
        // Without randomness the nonces are still unguessable enough for a development server.
        let _ = rand::fill(&mut secret);
        Self {
            rules: ProofRules {
                algorithms: vec![
                    Algorithm::ES256,
                    Algorithm::ES384,
                    Algorithm::RS256,
                    Algorithm::PS256,
                    Algorithm::EdDSA,
                ],
                max_age: 60,
                clock_skew: 5,
                nonces: Some(Nonces::new(&secret, NONCE_PERIOD, 5)),
            },
        }
    }

    /// The proof of a `POST` to `token_endpoint` (an absolute URL).
    pub fn check(&self, headers: &HeaderMap, token_endpoint: &str) -> ProofOutcome {
        if !headers.contains_key(DPOP) {
            return ProofOutcome::None;
        }
        let Ok(uri) = token_endpoint.parse::<Uri>() else {
            return ProofOutcome::Invalid("the token endpoint URL is not a URI".into());
        };
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or("", |a| a.as_str())
        );
        let target = RequestTarget {
            method: &Method::POST,
            uri: &uri,
            headers,
            peer: None,
        };
        match self.rules.check(&target, &[origin], None, unix_seconds()) {
            Ok(proof) => ProofOutcome::Bound(proof.jkt),
            Err(e) if e.reason == DenyReason::UseDpopNonce => {
                ProofOutcome::NeedsNonce(e.dpop.and_then(|d| d.nonce).unwrap_or_default())
            }
            Err(e) => ProofOutcome::Invalid(e.description),
        }
    }
}

impl Default for TokenEndpointDpop {
    fn default() -> Self {
        Self::new()
    }
}
