//! A cluster-wide rate limit in Redis: GCRA (generic cell rate algorithm) run by one Lua
//! script on Redis's own clock, so hosts' clocks never matter, with a pause key that refuses
//! everything while it lives (set after a 429/418). The exchange budget and the LLM's RPM and
//! TPM limits are all this limiter.

use std::time::Duration;

use candlepipe_store::Redis;

/// A request of `cost` cells moves the bucket's theoretical arrival time by `cost` emission
/// intervals: a large cost is let through when the bucket is empty, and later requests wait
/// until it is paid off.
const ACQUIRE_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused * 1000 end
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return wait end
local next = tat + interval * cost
redis.call('SET', KEYS[1], next, 'PX', math.floor((next - now) / 1000) + 1000)
return 0
"#;

const PAUSE_SCRIPT: &str = r#"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
end
return 0
"#;

/// Emission interval and burst tolerance, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub interval_us: u64,
    pub tolerance_us: u64,
}

impl Rate {
    /// `n` cells per `period`, up to `burst` at once. With burst 1 cells are spaced evenly,
    /// so no window of `period` holds more than `n`.
    pub fn new(n: u64, period: Duration, burst: u64) -> Rate {
        let interval_us = (period.as_micros() as u64 / n.max(1)).max(1);
        Rate {
            interval_us,
            tolerance_us: interval_us * (burst.max(1) - 1),
        }
    }
}

/// Takes `cost` cells from `bucket` now, or says how many µs to wait first (also while
/// `pause` is set).
pub async fn try_acquire(
    conn: &Redis,
    bucket: &str,
    pause: &str,
    rate: Rate,
    cost: u64,
) -> Result<u64, redis::RedisError> {
    let mut conn = conn.clone();
    redis::Script::new(ACQUIRE_SCRIPT)
        .key(bucket)
        .key(pause)
        .arg(rate.interval_us)
        .arg(rate.tolerance_us)
        .arg(cost.max(1))
        .invoke_async(&mut conn)
        .await
}

/// Refuses every acquire on `pause` for `hold` (a longer pause already set is kept).
pub async fn pause(
    conn: &Redis,
    pause: &str,
    hold: Duration,
    until_ms: i64,
) -> Result<(), redis::RedisError> {
    let mut conn = conn.clone();
    redis::Script::new(PAUSE_SCRIPT)
        .key(pause)
        .arg(hold.as_millis().max(1) as u64)
        .arg(until_ms)
        .invoke_async::<i64>(&mut conn)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(
            Rate::new(20, Duration::from_secs(1), 1),
            Rate {
                interval_us: 50_000,
                tolerance_us: 0
            }
        );
        assert_eq!(
            Rate::new(60, Duration::from_secs(60), 10),
            Rate {
                interval_us: 1_000_000,
                tolerance_us: 9_000_000
            }
        );
        assert_eq!(
            Rate::new(0, Duration::from_secs(1), 0).interval_us,
            1_000_000
        );
    }
}
