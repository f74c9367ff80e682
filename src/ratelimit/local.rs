//! Per-process rate-limit state: one TAT per key in a bounded moka cache. An entry idle for
//! longer than its quota takes to refill is dropped (it would read as a fresh key anyway), and
//! the cache never holds more than its capacity, so many distinct clients or IPs cannot grow
//! memory without bound.

use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::gcra::{Gcra, Outcome};

/// Most keys one limit tracks in a process (about 200 bytes each). Past it the least recently
/// used key is forgotten, which only gives that key a fresh bucket.
pub const MAX_KEYS: u64 = 100_000;

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Microseconds on this process's monotonic clock.
pub fn now_micros() -> u64 {
    u64::try_from(EPOCH.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The keys of one limit.
#[derive(Debug, Clone)]
pub struct LocalStore {
    /// Key -> TAT in µs on [`now_micros`]'s clock (0: fresh).
    tats: Cache<Arc<str>, Arc<Mutex<u64>>>,
}

impl LocalStore {
    pub fn new(gcra: &Gcra, capacity: u64) -> Self {
        // LRU admits every new key: moka's default TinyLFU may decline one, which would leave
        // that key without state, i.e. unlimited.
        let tats = Cache::builder()
            .max_capacity(capacity)
            .eviction_policy(EvictionPolicy::lru())
            .time_to_idle(Duration::from_micros(
                gcra.tolerance.saturating_add(gcra.interval),
            ))
            .build();
        Self { tats }
    }

    fn entry(&self, key: &Arc<str>) -> Arc<Mutex<u64>> {
        self.tats.get_with_by_ref(key, Arc::default)
    }

    /// Keys tracked now (after pending evictions are applied).
    pub fn len(&self) -> u64 {
        self.tats.run_pending_tasks();
        self.tats.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decides one request against several limits at once: each key's outcome, and the state of
/// every key moved only if all allow it (a refused request consumes nothing).
pub fn decide(buckets: &[(&LocalStore, &Gcra, &Arc<str>)]) -> Vec<Outcome> {
    let entries: Vec<Arc<Mutex<u64>>> = buckets
        .iter()
        .map(|(store, _, key)| store.entry(key))
        .collect();
    // Locked in the callers' fixed order (per IP; per client, then per rule), never two of
    // one store, so two requests cannot wait on each other.
    let mut tats: Vec<MutexGuard<'_, u64>> = entries
        .iter()
        .map(|m| m.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
        .collect();
    let now = now_micros();
    let next: Vec<u64> = tats
        .iter()
        .zip(buckets)
        .map(|(tat, (_, gcra, _))| gcra.next_tat(Some(**tat), now))
        .collect();
    let outcomes: Vec<Outcome> = next
        .iter()
        .zip(buckets)
        .map(|(next, (_, gcra, _))| gcra.outcome(next - now))
        .collect();
    if outcomes.iter().all(Outcome::is_allowed) {
        for (tat, next) in tats.iter_mut().zip(next) {
            **tat = next;
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Quota;

    fn gcra(requests: u32, burst: u32) -> Gcra {
        Gcra::new(&Quota {
            requests,
            period: Duration::from_secs(60),
            burst,
        })
    }

    #[test]
    fn a_refusal_by_one_limit_consumes_nothing_from_the_other() {
        let (wide, narrow) = (gcra(100, 100), gcra(1, 1));
        let (a, b) = (LocalStore::new(&wide, 10), LocalStore::new(&narrow, 10));
        let key: Arc<str> = "client".into();
        let both = [(&a, &wide, &key), (&b, &narrow, &key)];
        assert!(decide(&both).iter().all(Outcome::is_allowed));
        for _ in 0..5 {
            let outcomes = decide(&both);
            assert!(outcomes[0].is_allowed() && !outcomes[1].is_allowed());
        }
        // Only the one allowed request was taken from the wide limit: this is its second.
        let second = decide(&[(&a, &wide, &key)])[0];
        assert!(
            matches!(second, Outcome::Allowed { remaining: 98, .. }),
            "{second:?}"
        );
    }

    #[test]
    fn keys_are_counted_apart() {
        let g = gcra(1, 1);
        let store = LocalStore::new(&g, 10);
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        assert!(decide(&[(&store, &g, &a)])[0].is_allowed());
        assert!(!decide(&[(&store, &g, &a)])[0].is_allowed());
        assert!(decide(&[(&store, &g, &b)])[0].is_allowed());
    }

    #[test]
    fn many_distinct_keys_stay_within_the_capacity() {
        let g = gcra(10, 10);
        let store = LocalStore::new(&g, 1_000);
        for i in 0..20_000 {
            let key: Arc<str> = format!("client-{i}").into();
            decide(&[(&store, &g, &key)]);
        }
        assert!(store.len() <= 1_000, "{} keys", store.len());
    }

    #[test]
    fn idle_keys_are_dropped() {
        // 1 per 100 ms, burst 1: an entry idle for 200 ms is full again, so it goes.
        let g = Gcra::new(&Quota {
            requests: 10,
            period: Duration::from_secs(1),
            burst: 1,
        });
        let store = LocalStore::new(&g, 1_000);
        for i in 0..500 {
            let key: Arc<str> = format!("client-{i}").into();
            decide(&[(&store, &g, &key)]);
        }
        assert_eq!(store.len(), 500);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !store.is_empty() {
            assert!(Instant::now() < deadline, "{} idle keys kept", store.len());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
