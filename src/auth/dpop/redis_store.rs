//! The replay cache in Redis, shared by every replica: `SET <key> 1 NX PX <ttl>` is the
//! atomic check-and-remember (a nil reply = seen before). Any error or a slow reply refuses
//! the proof with 503 `Retry-After: 1`: a replay must never pass because Redis was down.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::replay::{Remembered, ReplayKey};

/// Longest wait for Redis before the proof is refused.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// Key prefix, apart from other users of the same Redis (rate limits).
const KEY_PREFIX: &str = "halo-gateway:dpop:";

/// A lazily connecting, reconnecting Redis client.
#[derive(Clone)]
pub struct RedisReplay {
    connection: ConnectionManager,
}

impl std::fmt::Debug for RedisReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplay").finish_non_exhaustive()
    }
}

impl RedisReplay {
    /// Connects on first use, so the gateway starts (and stays ready) without Redis.
    pub fn new(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| e.to_string())?;
        Ok(Self { connection })
    }

    pub async fn remember(&self, key: &ReplayKey, ttl: Duration) -> Remembered {
        let mut connection = self.connection.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let command = redis::cmd("SET")
            .arg(format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(key)))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .to_owned();
        let reply = tokio::time::timeout(
            REDIS_TIMEOUT * 2,
            command.query_async::<Option<String>>(&mut connection),
        )
        .await;
        match reply {
            Ok(Ok(Some(_))) => Remembered::New,
            Ok(Ok(None)) => Remembered::Replay,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "DPoP replay cache: Redis failed; refusing DPoP requests until it answers");
                Remembered::Unavailable { retry_after: 1 }
            }
            Err(_) => {
                tracing::warn!(
                    "DPoP replay cache: Redis did not answer in time; refusing DPoP requests until it does"
                );
                Remembered::Unavailable { retry_after: 1 }
            }
        }
    }
}
