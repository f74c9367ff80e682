//! Rate and concurrency limits as validated: every quota complete and positive, each mistake
//! reported with the setting's name (`Gateway__RateLimit__Clients__2__Id is required`).

use std::time::Duration;

use super::ConfigError;
use super::settings::{GatewaySettings, QuotaSettings};

/// `requests` per `period`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub requests: u32,
    pub period: Duration,
    pub burst: u32,
}

/// Every limit the gateway applies, by where it applies.
#[derive(Debug, Clone, Default)]
pub struct LimitsConfig {
    /// `Gateway__RateLimit__Requests/Period/Burst`: every client without an override.
    pub client: Option<Quota>,
    /// `Gateway__RateLimit__Clients__N`: (client id, its quota).
    pub clients: Vec<(String, Quota)>,
    /// `Gateway__RateLimit__PerIp__*`.
    pub per_ip: Option<Quota>,
    /// `Gateway__ConcurrencyLimit`.
    pub concurrency: Option<u32>,
    /// Per `Gateway__Rules__N`, in rule order (empty without configured rules).
    pub rules: Vec<RuleLimits>,
}

/// `Gateway__Rules__N__RateLimit__*` and `Gateway__Rules__N__ConcurrencyLimit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleLimits {
    pub rate: Option<Quota>,
    pub concurrency: Option<u32>,
}

impl LimitsConfig {
    /// Whether any limit applies after authentication (per client or per rule).
    pub fn has_client_limits(&self) -> bool {
        self.client.is_some()
            || !self.clients.is_empty()
            || self.concurrency.is_some()
            || self
                .rules
                .iter()
                .any(|r| r.rate.is_some() || r.concurrency.is_some())
    }
}

pub(super) fn validate(s: &GatewaySettings) -> Result<LimitsConfig, ConfigError> {
    const RATE: &str = "Gateway__RateLimit__";
    let r = &s.rate_limit;
    let client = quota(
        RATE,
        &QuotaSettings {
            requests: r.requests,
            // A Period alone is the default of the overrides' periods.
            period: r.requests.and(r.period),
            burst: r.burst,
        },
        None,
    )?;
    let mut clients: Vec<(String, Quota)> = Vec::with_capacity(r.clients.len());
    for (i, c) in r.clients.iter().enumerate() {
        let prefix = format!("{RATE}Clients__{i}__");
        let id =
            c.id.clone()
                .filter(|id| !id.is_empty())
                .ok_or_else(|| ConfigError::Missing {
                    setting: format!("{prefix}Id"),
                    hint: "the client id (the token's client id, else its sub) this quota is for",
                })?;
        if clients.iter().any(|(other, _)| *other == id) {
            return Err(ConfigError::invalid(
                format!("{prefix}Id"),
                format!("client '{id}' has more than one override"),
            ));
        }
        let written = QuotaSettings {
            requests: c.requests,
            period: c.period,
            burst: c.burst,
        };
        let quota = quota(&prefix, &written, r.period)?.ok_or_else(|| ConfigError::Missing {
            setting: format!("{prefix}Requests"),
            hint: "the client's number of requests per Period",
        })?;
        clients.push((id, quota));
    }
    let per_ip = quota(&format!("{RATE}PerIp__"), &r.per_ip, None)?;
    let concurrency = positive_count(s.concurrency_limit, "Gateway__ConcurrencyLimit")?;
    let rules = s
        .rules
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, rule)| {
            let prefix = format!("Gateway__Rules__{i}__");
            Ok(RuleLimits {
                rate: quota(&format!("{prefix}RateLimit__"), &rule.rate_limit, None)?,
                concurrency: positive_count(
                    rule.concurrency_limit,
                    &format!("{prefix}ConcurrencyLimit"),
                )?,
            })
        })
        .collect::<Result<_, ConfigError>>()?;
    Ok(LimitsConfig {
        client,
        clients,
        per_ip,
        concurrency,
        rules,
    })
}

/// One quota under `prefix` (`Gateway__RateLimit__`); `None` when `Requests` is unset.
fn quota(
    prefix: &str,
    q: &QuotaSettings,
    default_period: Option<Duration>,
) -> Result<Option<Quota>, ConfigError> {
    let Some(requests) = q.requests else {
        if q.period.is_some() || q.burst.is_some() {
            return Err(ConfigError::Missing {
                setting: format!("{prefix}Requests"),
                hint: "the number of requests per Period; Period and Burst alone set no limit",
            });
        }
        return Ok(None);
    };
    let requests = positive_count(Some(requests), &format!("{prefix}Requests"))?.unwrap_or(1);
    let setting = format!("{prefix}Period");
    let period = q
        .period
        .or(default_period)
        .ok_or_else(|| ConfigError::Missing {
            setting: setting.clone(),
            hint: "the window Requests are counted in, e.g. 60s or 00:01:00",
        })?;
    if period.is_zero() || period.subsec_nanos() != 0 {
        // RateLimit-Policy's `w` is whole seconds, so the quota is stated in them too.
        return Err(ConfigError::invalid(
            setting,
            "must be a whole number of seconds, at least 1",
        ));
    }
    if period.as_micros() < u128::from(requests) {
        return Err(ConfigError::invalid(
            format!("{prefix}Requests"),
            "more than one request per microsecond cannot be limited",
        ));
    }
    let burst = positive_count(q.burst, &format!("{prefix}Burst"))?.unwrap_or(requests);
    Ok(Some(Quota {
        requests,
        period,
        burst,
    }))
}

fn positive_count(n: Option<u32>, setting: &str) -> Result<Option<u32>, ConfigError> {
    match n {
        Some(0) => Err(ConfigError::invalid(setting, "must be at least 1")),
        n => Ok(n),
    }
}
