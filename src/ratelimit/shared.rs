//! Rate-limit state in Redis, shared by every replica: one atomic Lua script per request
//! (one round trip, `EVALSHA`), the same GCRA as [`super::gcra`], with Redis's own clock
//! (`TIME`) so replicas with skewed clocks agree. Each key holds its TAT and expires when the
//! TAT has passed (it would read as fresh then), so keys go by themselves.

use std::sync::LazyLock;

use super::gcra::Gcra;
use crate::redis::{RedisUnavailable, SharedRedis};

/// KEYS: one per limit. ARGV: interval and tolerance (µs) per key, in order. Returns, per
/// key, how far ahead of now its TAT would be after this request; every TAT is written only
/// when all are within their tolerance.
const GCRA_SCRIPT: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local ahead, next_tat, allowed = {}, {}, true
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  next_tat[i] = tat + interval
  ahead[i] = next_tat[i] - now
  if ahead[i] > tolerance then allowed = false end
end
if allowed then
  for i, key in ipairs(KEYS) do
    redis.call('SET', key, string.format('%d', next_tat[i]), 'PX', math.ceil(ahead[i] / 1000) + 1)
  end
end
return ahead
";

static SCRIPT: LazyLock<::redis::Script> = LazyLock::new(|| ::redis::Script::new(GCRA_SCRIPT));

/// Decides one request against `buckets` (Redis key, parameters) in Redis: per bucket, how
/// far ahead its TAT would be (µs), as [`Gcra::outcome`] reads it.
pub async fn decide(
    redis: &SharedRedis,
    buckets: &[(String, Gcra)],
) -> Result<Vec<u64>, RedisUnavailable> {
    let mut invocation = SCRIPT.prepare_invoke();
    for (key, gcra) in buckets {
        invocation
            .key(key.as_str())
            .arg(gcra.interval)
            .arg(gcra.tolerance);
    }
    let ahead: Vec<i64> = redis
        .call(|mut connection| async move { invocation.invoke_async(&mut connection).await })
        .await?;
    Ok(ahead.into_iter().map(|a| a.max(0) as u64).collect())
}
