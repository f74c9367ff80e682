//! DPoP (RFC 9449) at the gateway: Halo cannot check sender-constrained tokens, so the
//! gateway checks the proof and the key binding and forwards the request as the plain bearer
//! request Halo understands.
//!
//! - [`proof`]: the proof checks of §4.3 and `ath` (§7), in order of cost;
//! - [`htu`]: the request's public URI and the normalized comparison;
//! - [`nonce`]: stateless server nonces (§9);
//! - [`replay`], [`redis_store`]: the replay cache (§11.1), per process or in Redis.
//!
//! The key binding (`cnf.jkt`, §6) is compared after the token validated, and the proof is
//! remembered last, after every other check (so junk cannot fill the cache).

pub mod htu;
pub mod nonce;
pub mod proof;
pub mod redis_store;
pub mod replay;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method, Uri, header};
use jsonwebtoken::Algorithm;

use self::htu::PublicOrigins;
use self::nonce::Nonces;
use self::proof::{CheckedProof, DPOP, ProofRules};
use self::redis_store::RedisReplay;
use self::replay::{MemoryReplay, Remembered, ReplayCache};
use super::error::{AuthError, Challenge, DenyReason};
use super::validate::{Confirmation, VerifiedToken};
use crate::config::{Config, DPoPMode, decode_nonce_secret};
use crate::redis::SharedRedis;

/// What the proof is checked against: the request as the gateway received it.
#[derive(Debug, Clone, Copy)]
pub struct RequestTarget<'a> {
    pub method: &'a Method,
    /// The request target as received (before any rewrite), for `htu`.
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    /// The TCP peer, to decide whether its forwarding headers are trusted.
    pub peer: Option<IpAddr>,
}

/// The DPoP settings in force, with the nonce key and the replay cache.
#[derive(Debug)]
pub struct Dpop {
    mode: DPoPMode,
    /// Accepted proof algorithms, space-separated, for the `algs` challenge parameter.
    algs: Arc<str>,
    rules: ProofRules,
    origins: PublicOrigins,
    replay: ReplayCache,
}

impl Dpop {
    /// DPoP off: the `DPoP` scheme is an unsupported scheme.
    pub fn disabled() -> Self {
        Self {
            mode: DPoPMode::Disabled,
            algs: Arc::from(""),
            rules: ProofRules {
                algorithms: Vec::new(),
                max_age: 0,
                clock_skew: 0,
                nonces: None,
            },
            origins: PublicOrigins::default(),
            replay: ReplayCache::Memory(MemoryReplay::new(1)),
        }
    }

    /// From validated configuration; warns about per-replica replay protection and a
    /// per-process nonce key, which weaken DPoP with several replicas.
    /// `redis` is the gateway's shared Redis (`Gateway__Redis__Url`), if any: the replay cache
    /// then lives there.
    pub fn from_config(config: &Config, redis: Option<SharedRedis>) -> Result<Self, String> {
        let settings = &config.auth.dpop;
        if settings.mode == DPoPMode::Disabled {
            return Ok(Self::disabled());
        }
        let algorithms: Vec<Algorithm> = settings
            .algorithms
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let seconds = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let nonces = if settings.require_nonce {
            let secret = match &settings.nonce_secret {
                Some(secret) => decode_nonce_secret(secret)?,
                None => {
                    tracing::warn!(
                        "Authentication__Schemes__Bearer__DPoP__NonceSecret is not set: nonces are \
                         signed with a per-process key, so a nonce from one replica is refused by \
                         another; set the same secret on every replica"
                    );
                    let mut secret = [0u8; 32];
                    aws_lc_rs::rand::fill(&mut secret).map_err(|_| "no random bytes")?;
                    secret.to_vec()
                }
            };
            Some(Nonces::new(
                &secret,
                settings.proof_max_age.as_secs(),
                settings.proof_clock_skew.as_secs(),
            ))
        } else {
            None
        };
        let replay = match redis {
            Some(redis) => ReplayCache::Redis(RedisReplay::new(redis)),
            None => {
                tracing::warn!(
                    "the DPoP replay cache is in memory: with more than one replica, a proof \
                     replayed to another replica is not detected; set Gateway__Redis__Url"
                );
                ReplayCache::Memory(MemoryReplay::new(settings.replay_cache_size))
            }
        };
        Ok(Self {
            mode: settings.mode,
            algs: Arc::from(settings.algorithms.join(" ")),
            rules: ProofRules {
                algorithms,
                max_age: seconds(settings.proof_max_age),
                clock_skew: seconds(settings.proof_clock_skew),
                nonces,
            },
            origins: PublicOrigins::new(
                &config.gateway.public_origins,
                &config.gateway.trusted_proxies,
            ),
            replay,
        })
    }

    pub fn mode(&self) -> DPoPMode {
        self.mode
    }

    /// The challenge for a refusal: `DPoP algs=...` for a DPoP request or in `Required` mode;
    /// with no credentials in `Allowed` mode both schemes; `Bearer` otherwise (RFC 9449 §7.1,
    /// §7.2).
    pub fn challenge(&self, used_dpop: bool, no_credentials: bool) -> Challenge {
        match self.mode {
            DPoPMode::Disabled => Challenge::Bearer,
            DPoPMode::Required => Challenge::DPoP(self.algs.clone()),
            DPoPMode::Allowed if used_dpop => Challenge::DPoP(self.algs.clone()),
            DPoPMode::Allowed if no_credentials => Challenge::BearerAndDPoP(self.algs.clone()),
            DPoPMode::Allowed => Challenge::Bearer,
        }
    }

    /// Every proof check for `token` (RFC 9449 §4.3), now.
    pub fn check_proof(
        &self,
        target: &RequestTarget<'_>,
        token: &str,
    ) -> Result<CheckedProof, AuthError> {
        let origins = self
            .origins
            .for_request(target.uri, target.headers, target.peer);
        self.rules
            .check(target, &origins, Some(token), unix_seconds())
    }

    /// The token is bound to the proof's key (`cnf.jkt`, RFC 9449 §6).
    pub fn check_binding(
        &self,
        token: &VerifiedToken,
        proof: &CheckedProof,
    ) -> Result<(), AuthError> {
        let mismatch = |description: &str| {
            let mut error = AuthError::new(DenyReason::DpopKeyMismatch, description);
            let details = error.dpop_mut();
            details.failed_check = Some("cnf");
            details.jkt = Some(proof.jkt.clone());
            error
        };
        match &token.confirmation {
            Confirmation::Jkt(jkt) if *jkt == proof.jkt => Ok(()),
            Confirmation::Jkt(_) => Err(mismatch(
                "Invalid DPoP key binding: the token is bound to another key than the proof's",
            )),
            Confirmation::None | Confirmation::Unusable(_) => Err(mismatch(
                "the token is not DPoP-bound (no valid cnf.jkt claim)",
            )),
        }
    }

    /// Remembers the proof; refuses a replay, and refuses with 503 when the cache cannot
    /// remember it (full, or Redis failing): never accept a proof that was not recorded.
    pub async fn remember(&self, proof: &CheckedProof) -> Result<(), AuthError> {
        let refuse = |reason, description: &str, retry_after| {
            let mut error = AuthError::new(reason, description);
            let details = error.dpop_mut();
            details.failed_check = Some("replay");
            details.jkt = Some(proof.jkt.clone());
            details.retry_after = retry_after;
            error
        };
        match self.replay.remember(&proof.replay_key, proof.window).await {
            Remembered::New => Ok(()),
            Remembered::Replay => Err(refuse(
                DenyReason::DpopReplay,
                "the DPoP proof was already used (replay)",
                None,
            )),
            Remembered::Unavailable { retry_after } => Err(refuse(
                DenyReason::ReplayCacheUnavailable,
                "the DPoP replay cache cannot record the proof now; retry shortly",
                Some(retry_after),
            )),
        }
    }

    /// The forwarded request: `Authorization: Bearer <token>` for a DPoP one, and no `DPoP`
    /// header either way (Halo does not understand either).
    pub fn rewrite_for_upstream(&self, headers: &mut HeaderMap, used_dpop: bool) {
        if self.mode == DPoPMode::Disabled {
            return;
        }
        headers.remove(DPOP);
        if !used_dpop {
            return;
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .and_then(|(_, token)| HeaderValue::from_str(&format!("Bearer {}", token.trim())).ok());
        if let Some(mut bearer) = bearer {
            bearer.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, bearer);
        }
    }
}

/// Now, in Unix seconds.
pub fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
