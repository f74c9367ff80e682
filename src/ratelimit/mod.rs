//! Rate and concurrency limits (issue 17): per client IP before any token work, per client
//! (the verified token's client id, else its `sub`) and per rule after it.
//!
//! Rates are GCRA buckets ([`gcra`]), counted in Redis when `Gateway__Redis__Url` is set
//! ([`shared`], one script per request, shared by every replica) and in this process otherwise
//! or whenever Redis cannot answer in time ([`local`], the same quotas: never unlimited, never
//! a 5xx). Concurrency is counted per process ([`concurrency`]). Answers: [`headers`].

pub mod concurrency;
pub mod gcra;
pub mod headers;
pub mod local;
pub mod shared;

use std::collections::HashMap;
use std::sync::Arc;

use self::concurrency::{InFlight, Slot};
use self::gcra::{Gcra, Outcome};
use self::local::LocalStore;
use crate::auth::validate::VerifiedToken;
use crate::config::{GatewayConfig, Quota};
use crate::metrics::Metrics;
use crate::redis::{KEY_PREFIX, SharedRedis};

/// Which limit: the `limit` label of `halo_gateway_rate_limited_total` and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Ip,
    Client,
    Rule,
    Concurrency,
}

impl LimitKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Client => "client",
            Self::Rule => "rule",
            Self::Concurrency => "concurrency",
        }
    }

    /// The scope, for a refusal's description.
    fn describe(self) -> &'static str {
        match self {
            Self::Ip => "from this IP address",
            Self::Client | Self::Concurrency => "from this client",
            Self::Rule => "from this client on this route",
        }
    }
}

/// One configured rate and its per-process state.
#[derive(Debug)]
pub struct RateLimit {
    pub kind: LimitKind,
    /// The item name in the RateLimit fields, as an sf-string.
    policy: String,
    pub quota: Quota,
    gcra: Gcra,
    local: LocalStore,
    /// `halo-gw:rl:<limit>:`; the key (client id or IP) follows as a hash tag.
    redis_prefix: String,
}

impl RateLimit {
    fn new(kind: LimitKind, name: &str, quota: Quota) -> Self {
        let gcra = Gcra::new(&quota);
        Self {
            kind,
            policy: headers::sf_string(name),
            quota,
            gcra,
            local: LocalStore::new(&gcra, local::MAX_KEYS),
            redis_prefix: format!("{KEY_PREFIX}rl:{}:", name),
        }
    }
}

/// A concurrency limit and its in-flight counts.
#[derive(Debug)]
struct Concurrency {
    max: u32,
    kind: LimitKind,
    inflight: Arc<InFlight>,
}

/// The limits one rule adds.
#[derive(Debug, Default)]
struct RuleLimit {
    rate: Option<RateLimit>,
    concurrency: Option<Concurrency>,
}

/// Every configured limit, the optional shared Redis, and the metrics they count into.
#[derive(Debug)]
pub struct Limits {
    per_ip: Option<RateLimit>,
    client: Option<RateLimit>,
    overrides: HashMap<String, RateLimit>,
    concurrency: Option<Concurrency>,
    rules: Vec<RuleLimit>,
    redis: Option<SharedRedis>,
    metrics: Arc<Metrics>,
}

/// The outcome of a request's rate limits.
#[derive(Debug)]
pub struct Verdict<'a> {
    pub items: Vec<(&'a RateLimit, Outcome)>,
}

/// Why a request was refused after authentication.
#[derive(Debug)]
pub enum Refusal<'a> {
    Rate(Vec<(&'a RateLimit, Outcome)>),
    /// `kind`: whose limit it is (the client's or the rule's).
    Concurrency {
        max: u32,
        kind: LimitKind,
    },
}

impl Limits {
    /// The limits of `config`; `redis` shares the rates across replicas when set.
    pub fn from_config(
        config: &GatewayConfig,
        redis: Option<SharedRedis>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let limits = &config.limits;
        let rule_names = config
            .rules
            .iter()
            .flatten()
            .map(|rule| rule.name.clone().unwrap_or_else(|| rule.path.clone()));
        let rules = limits
            .rules
            .iter()
            .zip(rule_names)
            .map(|(rule, name)| RuleLimit {
                rate: rule
                    .rate
                    .map(|q| RateLimit::new(LimitKind::Rule, &format!("rule:{name}"), q)),
                concurrency: rule.concurrency.map(|max| Concurrency {
                    max,
                    kind: LimitKind::Rule,
                    inflight: Arc::default(),
                }),
            })
            .collect();
        Self {
            per_ip: limits
                .per_ip
                .map(|q| RateLimit::new(LimitKind::Ip, "ip", q)),
            client: limits
                .client
                .map(|q| RateLimit::new(LimitKind::Client, "client", q)),
            overrides: limits
                .clients
                .iter()
                .map(|(id, q)| (id.clone(), RateLimit::new(LimitKind::Client, "client", *q)))
                .collect(),
            concurrency: limits.concurrency.map(|max| Concurrency {
                max,
                kind: LimitKind::Client,
                inflight: Arc::default(),
            }),
            rules,
            redis,
            metrics,
        }
    }

    /// No limits at all (a stack built without configuration, e.g. in tests).
    pub fn none(metrics: Arc<Metrics>) -> Self {
        Self {
            per_ip: None,
            client: None,
            overrides: HashMap::new(),
            concurrency: None,
            rules: Vec::new(),
            redis: None,
            metrics,
        }
    }

    /// The per-IP rate, if set.
    pub fn per_ip(&self) -> Option<&RateLimit> {
        self.per_ip.as_ref()
    }

    /// Whether any limit applies after authentication.
    pub fn has_client_limits(&self) -> bool {
        self.client.is_some()
            || !self.overrides.is_empty()
            || self.concurrency.is_some()
            || self
                .rules
                .iter()
                .any(|r| r.rate.is_some() || r.concurrency.is_some())
    }

    /// The shared Redis, if configured.
    pub fn redis(&self) -> Option<&SharedRedis> {
        self.redis.as_ref()
    }

    /// Decides the per-IP rate for `ip` (counting the request).
    pub async fn check_ip(&self, ip: &Arc<str>) -> Option<Verdict<'_>> {
        let limit = self.per_ip.as_ref()?;
        Some(self.check(&[(limit, ip)]).await)
    }

    /// Takes the concurrency slots and then the rate quota of `client` on `rule`: the slots
    /// to hold while the response is sent and the rate items for its header fields, or the
    /// refusal (which takes nothing from any limit).
    pub async fn admit(
        &self,
        client: &Arc<str>,
        rule: Option<usize>,
    ) -> Result<(Vec<Slot>, Verdict<'_>), Refusal<'_>> {
        let rule = rule.and_then(|i| self.rules.get(i));
        let mut slots = Vec::new();
        for c in [
            self.concurrency.as_ref(),
            rule.and_then(|r| r.concurrency.as_ref()),
        ]
        .into_iter()
        .flatten()
        {
            match c.inflight.acquire(client, c.max) {
                Some(slot) => slots.push(slot),
                None => {
                    self.count_refusal(LimitKind::Concurrency);
                    return Err(Refusal::Concurrency {
                        max: c.max,
                        kind: c.kind,
                    });
                }
            }
        }
        let client_rate = self.overrides.get(&**client).or(self.client.as_ref());
        let buckets: Vec<(&RateLimit, &Arc<str>)> =
            [client_rate, rule.and_then(|r| r.rate.as_ref())]
                .into_iter()
                .flatten()
                .map(|limit| (limit, client))
                .collect();
        let verdict = self.check(&buckets).await;
        if verdict.is_allowed() {
            Ok((slots, verdict))
        } else {
            Err(Refusal::Rate(verdict.refused()))
        }
    }

    /// Decides `buckets` together: in Redis when it is configured and answers, else here.
    async fn check<'a>(&'a self, buckets: &[(&'a RateLimit, &Arc<str>)]) -> Verdict<'a> {
        if buckets.is_empty() {
            return Verdict { items: Vec::new() };
        }
        if let Some(redis) = &self.redis {
            let keys: Vec<(String, Gcra)> = buckets
                .iter()
                .map(|(limit, key)| (format!("{}{{{key}}}", limit.redis_prefix), limit.gcra))
                .collect();
            match shared::decide(redis, &keys).await {
                Ok(ahead) if ahead.len() == buckets.len() => {
                    return self.verdict(
                        buckets
                            .iter()
                            .zip(ahead)
                            .map(|((limit, _), ahead)| (*limit, limit.gcra.outcome(ahead)))
                            .collect(),
                    );
                }
                Ok(_) | Err(_) => {
                    self.metrics.ratelimit_backend_errors.inc();
                }
            }
        }
        let local: Vec<(&LocalStore, &Gcra, &Arc<str>)> = buckets
            .iter()
            .map(|(limit, key)| (&limit.local, &limit.gcra, *key))
            .collect();
        let outcomes = local::decide(&local);
        self.verdict(
            buckets
                .iter()
                .zip(outcomes)
                .map(|((limit, _), outcome)| (*limit, outcome))
                .collect(),
        )
    }

    fn verdict<'a>(&self, items: Vec<(&'a RateLimit, Outcome)>) -> Verdict<'a> {
        let verdict = Verdict { items };
        if let Some(kind) = verdict.refused_by() {
            self.count_refusal(kind);
        }
        verdict
    }

    fn count_refusal(&self, kind: LimitKind) {
        self.metrics.rate_limited(kind.label());
    }
}

impl<'a> Verdict<'a> {
    pub fn is_allowed(&self) -> bool {
        self.items.iter().all(|(_, o)| o.is_allowed())
    }

    /// The first limit that refused, if any.
    pub fn refused_by(&self) -> Option<LimitKind> {
        self.items
            .iter()
            .find(|(_, o)| !o.is_allowed())
            .map(|(l, _)| l.kind)
    }

    /// Only the refusing items.
    pub fn refused(self) -> Vec<(&'a RateLimit, Outcome)> {
        self.items
            .into_iter()
            .filter(|(_, o)| !o.is_allowed())
            .collect()
    }
}

impl Refusal<'_> {
    pub fn kind(&self) -> LimitKind {
        match self {
            Self::Rate(items) => items.first().map_or(LimitKind::Client, |(l, _)| l.kind),
            Self::Concurrency { .. } => LimitKind::Concurrency,
        }
    }

    /// The 429 answer.
    pub fn to_response<B: From<bytes::Bytes>>(&self) -> http::Response<B> {
        match self {
            Self::Rate(items) => headers::rate_limited(items),
            Self::Concurrency { max, kind } => headers::concurrency_limited(*max, kind.describe()),
        }
    }
}

/// The key of a client's limits: the verified token's client id, else its `sub`.
pub fn client_key(token: &VerifiedToken) -> &str {
    token.client_id().unwrap_or(&token.subject)
}
