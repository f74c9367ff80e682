//! GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp): the one
//! decision rule, used by the per-process store and mirrored by the Redis script
//! (`shared.rs`). Times are whole microseconds.
//!
//! State per key is the theoretical arrival time (TAT). A request at `now` moves it to
//! `max(TAT, now) + interval`; it is allowed when that is at most `burst × interval` ahead of
//! `now`. So a fresh key takes `burst` requests at once, then one per `interval`.

use crate::config::Quota;

/// A quota as GCRA parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Microseconds per request (`Period / Requests`).
    pub interval: u64,
    /// How far ahead of now the TAT may be (`Burst × interval`).
    pub tolerance: u64,
}

/// What one request would do to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed: `remaining` more at once; full again in `reset` µs.
    Allowed { remaining: u64, reset: u64 },
    /// Refused: the next request is allowed in `wait` µs.
    Refused { wait: u64 },
}

impl Gcra {
    pub fn new(quota: &Quota) -> Self {
        let period = u64::try_from(quota.period.as_micros()).unwrap_or(u64::MAX);
        // Validation keeps `requests` at most the period in µs, so the interval is >= 1.
        let interval = (period / u64::from(quota.requests)).max(1);
        Self {
            interval,
            tolerance: interval.saturating_mul(u64::from(quota.burst)),
        }
    }

    /// The TAT after a request at `now`, whether or not it is allowed.
    pub fn next_tat(&self, tat: Option<u64>, now: u64) -> u64 {
        tat.unwrap_or(now).max(now).saturating_add(self.interval)
    }

    /// The outcome of a request whose next TAT is `ahead` µs after now (`next_tat - now`).
    pub fn outcome(&self, ahead: u64) -> Outcome {
        if ahead > self.tolerance {
            Outcome::Refused {
                wait: ahead - self.tolerance,
            }
        } else {
            Outcome::Allowed {
                remaining: (self.tolerance - ahead) / self.interval,
                reset: ahead,
            }
        }
    }
}

impl Outcome {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn gcra(requests: u32, secs: u64, burst: u32) -> Gcra {
        Gcra::new(&Quota {
            requests,
            period: Duration::from_secs(secs),
            burst,
        })
    }

    /// Applies requests at `now` to one key, as the stores do.
    fn run(g: &Gcra, tat: &mut Option<u64>, now: u64) -> Outcome {
        let next = g.next_tat(*tat, now);
        let outcome = g.outcome(next - now);
        if outcome.is_allowed() {
            *tat = Some(next);
        }
        outcome
    }

    #[test]
    fn a_fresh_key_takes_the_burst_then_waits_one_interval() {
        let g = gcra(10, 60, 3); // one per 6 s, three at once
        let mut tat = None;
        let now = 1_000_000;
        let remaining: Vec<Outcome> = (0..3).map(|_| run(&g, &mut tat, now)).collect();
        assert_eq!(
            remaining,
            [
                Outcome::Allowed {
                    remaining: 2,
                    reset: 6_000_000
                },
                Outcome::Allowed {
                    remaining: 1,
                    reset: 12_000_000
                },
                Outcome::Allowed {
                    remaining: 0,
                    reset: 18_000_000
                },
            ]
        );
        assert_eq!(run(&g, &mut tat, now), Outcome::Refused { wait: 6_000_000 });
        // Refused requests do not move the state: still 6 s to wait.
        assert_eq!(run(&g, &mut tat, now), Outcome::Refused { wait: 6_000_000 });
        assert_eq!(
            run(&g, &mut tat, now + 6_000_000),
            Outcome::Allowed {
                remaining: 0,
                reset: 18_000_000
            }
        );
    }

    #[test]
    fn an_idle_key_is_full_again_after_the_burst_time() {
        let g = gcra(2, 1, 2);
        let mut tat = None;
        assert!(run(&g, &mut tat, 0).is_allowed());
        assert!(run(&g, &mut tat, 0).is_allowed());
        assert!(!run(&g, &mut tat, 0).is_allowed());
        // After burst × interval (1 s) the key is as good as new.
        assert_eq!(
            run(&g, &mut tat, 1_000_000),
            Outcome::Allowed {
                remaining: 1,
                reset: 500_000
            }
        );
    }

    #[test]
    fn the_steady_rate_is_requests_per_period() {
        let g = gcra(100, 10, 1);
        let mut tat = None;
        let allowed = (0..10_000u64)
            .filter(|i| run(&g, &mut tat, i * 1_000).is_allowed())
            .count();
        // 10 s of one request per ms: 100 per 10 s allowed.
        assert_eq!(allowed, 100);
    }
}
