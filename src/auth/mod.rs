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
//! 400 = the request is malformed (token in query, two headers); 401 = no valid token;
//! 403 = valid token the route does not accept (client, scope, role); 503 = keys not loaded
//! yet. See [`error`].

pub mod access;
pub(crate) mod cnf;
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

use http::{HeaderMap, Method};

pub use self::error::{AuthError, DenyReason};
use self::jwks::Fetcher;
use self::keys::KeyStore;
pub use self::layer::{AuthLayer, Authorize, AuthorizedBody, verified_token};
use self::policy::{Policy, RequiredRole, RouteRule};
use self::validate::{Validator, VerifiedToken};
use crate::config::Config;
use crate::http::path::NormalizedPath;
use crate::metrics::Metrics;

/// Why an [`Authenticator`] cannot be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Rules(#[from] policy::RuleError),
    #[error("cannot build the issuer client: {0}")]
    IssuerClient(String),
}

/// The outcome for one request: the matched rule and, if a token was needed, who sent it.
#[derive(Debug)]
pub struct Decision<'a> {
    pub route: &'a RouteRule,
    pub result: Result<Option<Arc<VerifiedToken>>, AuthError>,
}

/// Policy + validator.
#[derive(Debug)]
pub struct Authenticator {
    validator: Arc<Validator>,
    policy: Policy,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    pub fn new(validator: Arc<Validator>, policy: Policy, metrics: Arc<Metrics>) -> Self {
        Self {
            validator,
            policy,
            metrics,
        }
    }

    /// Everything token checks need, built from configuration: the issuer client, the key
    /// store, the validator and the route policy. Keys load on the first
    /// `validator().keys().refresh()` (the server does that before serving).
    pub fn from_config(config: &Config, metrics: Arc<Metrics>) -> Result<Self, BuildError> {
        let policy = Policy::from_config(config)?;
        let fetcher = Fetcher::new(&config.auth, config.gateway.https_proxy.as_ref())
            .map_err(BuildError::IssuerClient)?;
        let keys = Arc::new(KeyStore::new(&config.auth, fetcher, metrics.clone()));
        let validator = Validator::new(&config.auth, keys, metrics.clone());
        Ok(Self::new(validator, policy, metrics))
    }

    pub fn validator(&self) -> &Arc<Validator> {
        &self.validator
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Decides a request; counts the decision.
    pub async fn authorize(
        &self,
        method: &Method,
        path: &NormalizedPath,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Decision<'_> {
        let route = self.policy.route(method, path);
        let result = self.decide(route, query, headers).await;
        match &result {
            Ok(_) => self.metrics.decision(
                "allow",
                if route.required == RequiredRole::Anonymous {
                    "anonymous"
                } else {
                    "valid_token"
                },
            ),
            Err(e) => self.metrics.decision("deny", e.reason.label()),
        }
        Decision { route, result }
    }

    async fn decide(
        &self,
        route: &RouteRule,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<VerifiedToken>>, AuthError> {
        if route.required == RequiredRole::Anonymous {
            return Ok(None);
        }
        extract::check_query(query)?;
        let token = extract::bearer_token(headers)?.ok_or_else(|| {
            AuthError::new(DenyReason::MissingToken, "the request has no bearer token")
        })?;
        let verified = self.validator.validate(token).await?;
        access::authorize(&route.access, &route.required, &verified.access)?;
        Ok(Some(verified))
    }
}
