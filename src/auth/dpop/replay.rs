//! The DPoP replay cache (RFC 9449 §11.1): a proof is accepted once per key, `htu` and `jti`
//! for as long as its `iat` keeps it acceptable. Only a SHA-256 of those is stored.
//!
//! In memory by default, bounded: when full, a new proof is refused (503) rather than
//! evicting an entry still inside its window, since eviction would re-open that replay.
//! With `Gateway__Redis__Url`, entries are `SET NX PX` in Redis, shared by every replica; a
//! Redis failure refuses the proof (fail closed).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::redis_store::RedisReplay;

/// A replay-cache key: SHA-256 of the proof key's thumbprint, the `htu` and the `jti`.
pub type ReplayKey = [u8; 32];

/// What the cache said about a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remembered {
    /// First time seen; now remembered.
    New,
    /// Seen before inside its window.
    Replay,
    /// Cannot remember it now; retry after this many seconds.
    Unavailable { retry_after: u64 },
}

/// The configured store.
#[derive(Debug)]
pub enum ReplayCache {
    Memory(MemoryReplay),
    Redis(RedisReplay),
}

impl ReplayCache {
    /// Remembers `key` for `ttl`, or says why not.
    pub async fn remember(&self, key: &ReplayKey, ttl: Duration) -> Remembered {
        match self {
            Self::Memory(memory) => memory.remember(key, ttl, Instant::now()),
            Self::Redis(redis) => redis.remember(key, ttl).await,
        }
    }
}

/// A bounded map of live entries plus a min-heap of their expiry times, so expired entries
/// are dropped in order (O(log n) each) and live ones never are.
#[derive(Debug)]
pub struct MemoryReplay {
    capacity: usize,
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    expires: HashMap<ReplayKey, Instant>,
    queue: BinaryHeap<Reverse<(Instant, ReplayKey)>>,
}

impl MemoryReplay {
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX).max(1),
            inner: Mutex::new(Entries::default()),
        }
    }

    /// Entries currently held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |e| e.expires.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn remember(&self, key: &ReplayKey, ttl: Duration, now: Instant) -> Remembered {
        let Ok(mut entries) = self.inner.lock() else {
            return Remembered::Unavailable { retry_after: 1 };
        };
        while let Some(Reverse((at, expired))) = entries.queue.peek().copied()
            && at <= now
        {
            entries.queue.pop();
            entries.expires.remove(&expired);
        }
        if entries.expires.contains_key(key) {
            return Remembered::Replay;
        }
        if entries.expires.len() >= self.capacity {
            let wait = entries
                .queue
                .peek()
                .map_or(Duration::from_secs(1), |Reverse((at, _))| *at - now);
            return Remembered::Unavailable {
                retry_after: wait.as_secs() + 1,
            };
        }
        let at = now + ttl;
        entries.expires.insert(*key, at);
        entries.queue.push(Reverse((at, *key)));
        Remembered::New
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_once_refuses_when_full_and_never_evicts_a_live_entry() {
        let cache = MemoryReplay::new(2);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(66);
        assert_eq!(cache.remember(&[1; 32], ttl, t0), Remembered::New);
        assert_eq!(cache.remember(&[1; 32], ttl, t0), Remembered::Replay);
        assert_eq!(
            cache.remember(&[2; 32], Duration::from_secs(10), t0),
            Remembered::New
        );
        assert_eq!(
            cache.remember(&[3; 32], ttl, t0),
            Remembered::Unavailable { retry_after: 11 },
            "full: the earliest entry frees in 10 s"
        );
        assert_eq!(
            cache.remember(&[1; 32], ttl, t0),
            Remembered::Replay,
            "not evicted"
        );
        assert_eq!(
            cache.remember(&[2; 32], ttl, t0),
            Remembered::Replay,
            "not evicted"
        );
        // Once the short entry expires there is room again, and the live one stays.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(cache.remember(&[3; 32], ttl, later), Remembered::New);
        assert_eq!(cache.remember(&[1; 32], ttl, later), Remembered::Replay);
        assert_eq!(cache.len(), 2);
        let after_all = t0 + Duration::from_secs(200);
        assert_eq!(cache.remember(&[1; 32], ttl, after_all), Remembered::New);
        assert_eq!(cache.len(), 1);
    }
}
