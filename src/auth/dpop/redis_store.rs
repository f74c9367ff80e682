//! The replay cache in Redis, shared by every replica: `SET <key> 1 NX PX <ttl>` is the
//! atomic check-and-remember (a nil reply = seen before). Any error or a slow reply refuses
//! the proof with 503 `Retry-After: 1`: a replay must never pass because Redis was down.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::replay::{Remembered, ReplayKey};
use crate::redis::{KEY_PREFIX, SharedRedis};

/// The gateway's shared Redis (`Gateway__Redis__*`), used as the replay cache.
#[derive(Debug, Clone)]
pub struct RedisReplay {
    redis: SharedRedis,
}

impl RedisReplay {
    pub fn new(redis: SharedRedis) -> Self {
        Self { redis }
    }

    pub async fn remember(&self, key: &ReplayKey, ttl: Duration) -> Remembered {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let key = format!("{KEY_PREFIX}dpop:{}", URL_SAFE_NO_PAD.encode(key));
        let reply = self
            .redis
            .call(|mut connection| async move {
                ::redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis)
                    .query_async::<Option<String>>(&mut connection)
                    .await
            })
            .await;
        match reply {
            Ok(Some(_)) => Remembered::New,
            Ok(None) => Remembered::Replay,
            // SharedRedis logs the outage once; every DPoP request is refused until it ends.
            Err(_) => Remembered::Unavailable { retry_after: 1 },
        }
    }
}
