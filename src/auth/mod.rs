//! Authentication and authorization of one request.
//!
//! 1. The route is found from the method and the normalized path ([`policy`]).
//! 2. Anonymous routes pass. Otherwise the bearer token is taken from the `Authorization`
//!    header only ([`extract`]) and validated ([`validate`]): signature with a key from the
//!    issuer's JWKS ([`keys`]), `iss`, `aud`, `exp`/`nbf`/`iat` with skew, header rules.
//! 3. The route's needs are checked in a fixed order, the first failure answers ([`access`]):
//!    the client is allowed, every required scope was granted, the token has the route's role
//!    (role claim plus role mappings; none = DefaultRole).
//!
//! With `DPoP__Mode` `Allowed` or `Required`, a token sent as `Authorization: DPoP` also needs
//! a valid proof bound to it ([`dpop`]); a DPoP-bound token sent as `Bearer` is refused.
//!
//! 400 = the request is malformed (token in query, two headers); 401 = no valid token;
//! 403 = valid token the route does not accept (client, scope, role); 503 = keys not loaded
//! yet. See [`error`].

pub mod access;
pub(crate) mod cnf;
pub mod dpop;
pub(crate) mod error;
pub mod extract;
pub mod jwks;
pub mod keys;
pub mod keyset;
pub(crate) mod layer;
pub mod policy;
pub mod strict_json;
pub mod validate;

use std::sync::Arc;

use tracing::Instrument as _;

use self::dpop::{Dpop, RequestTarget};
pub use self::error::{AuthError, DenyReason};
use self::extract::Credentials;
use self::jwks::Fetcher;
use self::keys::KeyStore;
pub use self::layer::{AuthLayer, Authorize, AuthorizedBody, verified_token};
use self::policy::{Policy, RequiredRole, RouteRule};
use self::validate::{Validator, VerifiedToken};
use crate::config::{Config, DPoPMode};
use crate::http::path::NormalizedPath;
use crate::metrics::{Metrics, RouteSeries};
use crate::redis::SharedRedis;
use crate::telemetry::spans;

/// Why an [`Authenticator`] cannot be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Rules(#[from] policy::RuleError),
    #[error("cannot build the issuer client: {0}")]
    IssuerClient(String),
    #[error("cannot set up DPoP: {0}")]
    Dpop(String),
    #[error("Gateway__Redis__Url: {0}")]
    Redis(String),
}

/// The outcome for one request: the matched rule and, if a token was needed, who sent it.
#[derive(Debug)]
pub struct Decision<'a> {
    pub route: &'a RouteRule,
    pub result: Result<Option<Arc<VerifiedToken>>, AuthError>,
    /// The accepted DPoP proof's key thumbprint, when the token came as `DPoP`.
    pub proof_jkt: Option<String>,
}

/// Policy + validator (+ DPoP).
#[derive(Debug)]
pub struct Authenticator {
    validator: Arc<Validator>,
    policy: Policy,
    /// Each rule's metric series, by position in the policy; then the fallback's.
    route_series: Vec<Arc<RouteSeries>>,
    metrics: Arc<Metrics>,
    dpop: Dpop,
}

/// An accepted request's token, and the proof's key when it came as DPoP.
type Accepted = (Option<Arc<VerifiedToken>>, Option<String>);

impl Authenticator {
    pub fn new(validator: Arc<Validator>, policy: Policy, metrics: Arc<Metrics>) -> Self {
        let route_series = policy
            .rules()
            .iter()
            .chain([policy.fallback()])
            .map(|rule| metrics.route_series(&rule.name))
            .collect();
        Self {
            validator,
            policy,
            route_series,
            metrics,
            dpop: Dpop::disabled(),
        }
    }

    /// The same, accepting DPoP as `dpop` says.
    pub fn with_dpop(mut self, dpop: Dpop) -> Self {
        self.dpop = dpop;
        self
    }

    /// Everything token checks need, built from configuration: the issuer client, the key
    /// store, the validator and the route policy. Keys load on the first
    /// `validator().keys().refresh()` (the server does that before serving).
    /// With `Gateway__Redis__Url` set, the DPoP replay cache connects to that Redis (lazily).
    pub fn from_config(config: &Config, metrics: Arc<Metrics>) -> Result<Self, BuildError> {
        let redis = SharedRedis::from_settings(&config.gateway.redis).map_err(BuildError::Redis)?;
        Self::sharing_redis(config, metrics, redis)
    }

    /// As [`Self::from_config`], with the Redis handle the caller already holds (the server
    /// shares one connection between the replay cache and the rate limits).
    pub fn sharing_redis(
        config: &Config,
        metrics: Arc<Metrics>,
        redis: Option<SharedRedis>,
    ) -> Result<Self, BuildError> {
        let policy = Policy::from_config(config)?;
        let fetcher = Fetcher::new(&config.auth, config.gateway.https_proxy.as_ref())
            .map_err(BuildError::IssuerClient)?;
        let keys = Arc::new(KeyStore::new(&config.auth, fetcher, metrics.clone()));
        let validator = Validator::new(&config.auth, keys, metrics.clone());
        let dpop = Dpop::from_config(config, redis).map_err(BuildError::Dpop)?;
        Ok(Self::new(validator, policy, metrics).with_dpop(dpop))
    }

    pub fn validator(&self) -> &Arc<Validator> {
        &self.validator
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn dpop(&self) -> &Dpop {
        &self.dpop
    }

    /// The metric series of a rule of this authenticator's policy (from [`Decision::route`]).
    pub fn route_series(&self, rule: &RouteRule) -> &Arc<RouteSeries> {
        let fallback = self.route_series.len() - 1;
        let position = rule.index.filter(|&i| i < fallback).unwrap_or(fallback);
        &self.route_series[position]
    }

    /// Decides a request; counts the decision.
    pub async fn authorize(
        &self,
        target: &RequestTarget<'_>,
        path: &NormalizedPath,
    ) -> Decision<'_> {
        let route = self.policy.route(target.method, path);
        // A span only where a token is checked (`Span::none()` without trace export).
        let span = if route.required == RequiredRole::Anonymous {
            tracing::Span::none()
        } else {
            spans::token_validation_span()
        };
        let result = self.decide(route, target).instrument(span.clone()).await;
        spans::record_decision(&span, result.as_ref().err().map(|e| e.reason.label()));
        match &result {
            Ok(_) => self
                .metrics
                .allowed(route.required == RequiredRole::Anonymous),
            Err(e) => self.metrics.decision("deny", e.reason.label()),
        }
        let (result, proof_jkt) = match result {
            Ok((token, jkt)) => (Ok(token), jkt),
            Err(e) => (Err(e), None),
        };
        Decision {
            route,
            result,
            proof_jkt,
        }
    }

    async fn decide(
        &self,
        route: &RouteRule,
        target: &RequestTarget<'_>,
    ) -> Result<Accepted, AuthError> {
        if route.required == RequiredRole::Anonymous {
            return Ok((None, None));
        }
        let dpop_on = self.dpop.mode() != DPoPMode::Disabled;
        let credentials = extract::check_query(target.uri.query())
            .and_then(|()| extract::credentials(target.headers, dpop_on))
            .map_err(|e| e.with_challenge(self.dpop.challenge(false, true)))?;
        let Some(credentials) = credentials else {
            let description = if dpop_on {
                "the request has no access token"
            } else {
                "the request has no bearer token"
            };
            return Err(AuthError::new(DenyReason::MissingToken, description)
                .with_challenge(self.dpop.challenge(false, true)));
        };
        let used_dpop = matches!(credentials, Credentials::DPoP(_));
        self.decide_with(route, target, credentials)
            .await
            .map_err(|e| e.with_challenge(self.dpop.challenge(used_dpop, false)))
    }

    async fn decide_with(
        &self,
        route: &RouteRule,
        target: &RequestTarget<'_>,
        credentials: Credentials<'_>,
    ) -> Result<Accepted, AuthError> {
        match credentials {
            Credentials::Bearer(_) if self.dpop.mode() == DPoPMode::Required => {
                Err(AuthError::new(
                    DenyReason::DpopRequired,
                    "this gateway accepts only DPoP-bound tokens sent as Authorization: DPoP with a DPoP proof",
                ))
            }
            Credentials::Bearer(token) => {
                let verified = self.validator.validate(token).await.map_err(|mut e| {
                    if e.reason == DenyReason::SenderConstrained && self.dpop.mode() != DPoPMode::Disabled {
                        e.description = "the token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof, not as a bearer token".into();
                    }
                    e
                })?;
                access::authorize(&route.access, &route.required, &verified.access)?;
                Ok((Some(verified), None))
            }
            Credentials::DPoP(token) => {
                let proof = self.dpop.check_proof(target, token)?;
                let with_jkt = |mut e: AuthError| {
                    e.dpop_mut().jkt.get_or_insert_with(|| proof.jkt.clone());
                    e
                };
                let verified = self.validator.verify(token).await.map_err(with_jkt)?;
                self.dpop.check_binding(&verified, &proof)?;
                access::authorize(&route.access, &route.required, &verified.access)
                    .map_err(with_jkt)?;
                self.dpop.remember(&proof).await?;
                Ok((Some(verified), Some(proof.jkt)))
            }
        }
    }
}
