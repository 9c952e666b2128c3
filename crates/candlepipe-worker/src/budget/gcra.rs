//! A cluster-wide rate limit in Redis: GCRA (generic cell rate algorithm) run by one Lua
//! script on Redis's own clock, so hosts' clocks never matter, with a pause key that refuses
//! everything while it lives (set after a 429/418). The exchange budget and the LLM's RPM and
//! TPM limits are all this limiter.
//!
//! The exchange budget adds a set of waiting live jobs (member: the job's `Nats-Msg-Id`,
//! score: the latest deadline of its producers, in Redis-clock ms). The ingest adds a job
//! to it when it admits a producer ([`admit`]); a live request is refused once its job has
//! left the set (every producer's deadline passed); a bulk request is refused while any
//! live job waits. Expired members are purged by every script that reads the set.

use std::sync::LazyLock;
use std::time::Duration;

use candlepipe_core::Millis;
use candlepipe_store::Redis;

/// A request of `cost` cells moves the bucket's theoretical arrival time by `cost` emission
/// intervals: a large cost is let through when the bucket is empty, and later requests wait
/// until it is paid off. Returns 0 (granted), the µs to wait, or -1 (live job no longer
/// waited for).
///
/// A bulk permit never delays live work: when the last permit was bulk (the bucket's time
/// equals the bulk marker), a live request may go one emission interval early. Pure live
/// traffic keeps the exact spacing; a second right after a bulk permit may see one request
/// more than the rate allows otherwise.
///
/// KEYS: bucket, pause[, waiting, bulk marker]. ARGV: interval µs, tolerance µs, cost, mode
/// (`plain`, `live`, `bulk`), member (live).
static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local mode = ARGV[4]
if mode ~= 'plain' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', math.floor(now / 1000))
  if mode == 'live' and not redis.call('ZSCORE', KEYS[3], ARGV[5]) then return -1 end
end
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused * 1000 end
if mode == 'bulk' and redis.call('ZCARD', KEYS[3]) > 0 then
  return math.max(interval, 20000)
end
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local stored = redis.call('GET', KEYS[1]) or '0'
local tat = tonumber(stored)
if mode == 'live' and stored == redis.call('GET', KEYS[4]) then
  tolerance = tolerance + interval
end
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return wait end
local next = tat + interval * cost
local ttl = math.floor((next - now) / 1000) + 1000
redis.call('SET', KEYS[1], next, 'PX', ttl)
if mode == 'bulk' and cost > 0 then redis.call('SET', KEYS[4], next, 'PX', ttl) end
return 0
"#,
    )
});

/// Admits a live job if its first request could go out before its producer's deadline.
/// A job already waiting is admitted again, its deadline raised to the later one.
/// Otherwise the job's turn is estimated from the bucket, a pause, and one emission
/// interval for every live job already waiting; returns `{admitted (0|1), wait ms, turn
/// ms}`. When the caller asks for it and the turn is free at once (no pause, no live job
/// waiting, the bucket not full), a newly admitted job's first turn is taken here, as
/// [`ACQUIRE`] would take it, and `turn ms` is Redis's time of taking it (else 0).
///
/// KEYS: bucket, pause, waiting. ARGV: interval µs, tolerance µs, member, remaining ms
/// (until the producer's deadline), margin ms (what the job needs after its turn), take
/// (`1`: take the turn when free at once).
static ADMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_ms)
local remaining = tonumber(ARGV[4])
local deadline = now_ms + remaining
local function wait_for(member)
  redis.call('ZADD', KEYS[3], deadline, member)
  if redis.call('PTTL', KEYS[3]) < remaining + 60000 then
    redis.call('PEXPIRE', KEYS[3], remaining + 60000)
  end
end
local have = redis.call('ZSCORE', KEYS[3], ARGV[3])
if have then
  if deadline > tonumber(have) then wait_for(ARGV[3]) end
  return {1, 0, 0}
end
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = tat - tonumber(ARGV[2])
if start < now then start = now end
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 and now + paused * 1000 > start then start = now + paused * 1000 end
start = start + redis.call('ZCARD', KEYS[3]) * interval
local wait = math.floor((start - now) / 1000)
if wait > 0 and wait + tonumber(ARGV[5]) > remaining then return {0, wait, 0} end
wait_for(ARGV[3])
if ARGV[6] == '1' and start <= now then
  if tat < now then tat = now end
  local next = tat + interval
  redis.call('SET', KEYS[1], next, 'PX', math.floor((next - now) / 1000) + 1000)
  return {1, 0, now_ms}
end
return {1, wait, 0}
"#,
    )
});

/// Gives back one cell taken and not used: the bucket's theoretical arrival time moves one
/// emission interval back, as if the cell had never been taken, never before now (cells
/// are interchangeable, so this holds whoever took cells since). KEYS: bucket. ARGV:
/// interval µs.
static GIVE_BACK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = math.max(tonumber(stored) - tonumber(ARGV[1]), now)
redis.call('SET', KEYS[1], tat, 'KEEPTTL')
return 1
"#,
    )
});

static PAUSE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
end
return 0
"#,
    )
});

/// The waiting live jobs whose producers still wait, and the pause's remaining ms (≤ 0:
/// none), on Redis's clock.
static LOOK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {redis.call('ZCOUNT', KEYS[1], now, '+inf'), redis.call('PTTL', KEYS[2])}
"#,
    )
});

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

/// The keys of one exchange's budget (one Redis Cluster slot).
#[derive(Debug, Clone)]
pub struct LaneKeys {
    pub bucket: String,
    pub pause: String,
    /// Live jobs waiting for a turn, scored by their producers' latest deadline.
    pub waiting: String,
    /// The bucket's time right after the last bulk permit.
    pub bulk: String,
}

/// Whose turn a request on a [`LaneKeys`] budget asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn<'a> {
    /// The live job with this member in the waiting set.
    Live(&'a str),
    /// Only while no live job waits.
    Bulk,
    /// In order, like any request of a plain limiter.
    Upkeep,
}

/// The answer of [`acquire_turn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Now,
    Wait(Duration),
    /// The live job left the waiting set: nobody waits for it.
    NoWaiter,
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
    let wait: i64 = ACQUIRE
        .key(bucket)
        .key(pause)
        .arg(rate.interval_us)
        .arg(rate.tolerance_us)
        .arg(cost.max(1))
        .arg("plain")
        .invoke_async(&mut conn)
        .await?;
    Ok(wait.max(0) as u64)
}

/// Like [`try_acquire`], for a live or bulk request on an exchange's budget; a `cost` of 0
/// asks whether the turn has come without taking it.
pub async fn acquire_turn(
    conn: &Redis,
    keys: &LaneKeys,
    rate: Rate,
    cost: u64,
    turn: Turn<'_>,
) -> Result<Grant, redis::RedisError> {
    let mut conn = conn.clone();
    let (mode, member) = match turn {
        Turn::Live(m) => ("live", m),
        Turn::Bulk => ("bulk", ""),
        Turn::Upkeep => ("plain", ""),
    };
    let wait: i64 = ACQUIRE
        .key(&keys.bucket)
        .key(&keys.pause)
        .key(&keys.waiting)
        .key(&keys.bulk)
        .arg(rate.interval_us)
        .arg(rate.tolerance_us)
        .arg(cost)
        .arg(mode)
        .arg(member)
        .invoke_async(&mut conn)
        .await?;
    Ok(match wait {
        0 => Grant::Now,
        w if w < 0 => Grant::NoWaiter,
        w => Grant::Wait(Duration::from_micros(w as u64)),
    })
}

/// What [`admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub admitted: bool,
    /// About how long until the job's turn.
    pub wait: Duration,
    /// The job's first turn, taken with the admission (when asked for and free at once):
    /// Redis's time of taking it.
    pub turn_at: Option<Millis>,
}

/// Puts live job `member` in the waiting set if its turn (plus `margin`) comes within
/// `remaining`, or it is there already; with `take_turn`, a newly admitted job whose turn
/// is free at once has it taken too (see [`ADMIT`]).
pub async fn admit(
    conn: &Redis,
    keys: &LaneKeys,
    rate: Rate,
    member: &str,
    (remaining, margin): (Duration, Duration),
    take_turn: bool,
) -> Result<Admission, redis::RedisError> {
    let mut conn = conn.clone();
    let (admitted, wait_ms, turn_ms): (i64, i64, i64) = ADMIT
        .key(&keys.bucket)
        .key(&keys.pause)
        .key(&keys.waiting)
        .arg(rate.interval_us)
        .arg(rate.tolerance_us)
        .arg(member)
        .arg(remaining.as_millis() as u64)
        .arg(margin.as_millis() as u64)
        .arg(if take_turn { "1" } else { "0" })
        .invoke_async(&mut conn)
        .await?;
    Ok(Admission {
        admitted: admitted == 1,
        wait: Duration::from_millis(wait_ms.max(0) as u64),
        turn_at: (turn_ms > 0).then_some(turn_ms),
    })
}

/// Gives back one cell of `keys`' bucket (see [`GIVE_BACK`]).
pub async fn give_back(conn: &Redis, keys: &LaneKeys, rate: Rate) -> Result<(), redis::RedisError> {
    let mut conn = conn.clone();
    GIVE_BACK
        .key(&keys.bucket)
        .arg(rate.interval_us)
        .invoke_async::<i64>(&mut conn)
        .await
        .map(|_| ())
}

/// Takes a finished live job out of the waiting set.
pub async fn release(conn: &Redis, keys: &LaneKeys, member: &str) -> Result<(), redis::RedisError> {
    let mut conn = conn.clone();
    redis::cmd("ZREM")
        .arg(&keys.waiting)
        .arg(member)
        .query_async::<i64>(&mut conn)
        .await
        .map(|_| ())
}

/// Takes live job `member` out of the waiting set for a while; returns its score (its
/// deadline) to put it back with, `None` if it was not there.
pub async fn set_aside(
    conn: &Redis,
    keys: &LaneKeys,
    member: &str,
) -> Result<Option<f64>, redis::RedisError> {
    let mut conn = conn.clone();
    let (score, _): (Option<f64>, i64) = redis::pipe()
        .atomic()
        .cmd("ZSCORE")
        .arg(&keys.waiting)
        .arg(member)
        .cmd("ZREM")
        .arg(&keys.waiting)
        .arg(member)
        .query_async(&mut conn)
        .await?;
    Ok(score)
}

/// Puts a job set aside back into the waiting set with its `score`.
pub async fn put_back(
    conn: &Redis,
    keys: &LaneKeys,
    member: &str,
    score: f64,
) -> Result<(), redis::RedisError> {
    let mut conn = conn.clone();
    redis::cmd("ZADD")
        .arg(&keys.waiting)
        .arg(score)
        .arg(member)
        .query_async::<i64>(&mut conn)
        .await
        .map(|_| ())
}

/// How many live jobs wait for a turn on `keys`, and for how many more ms it is paused
/// (0: not paused). Reads only.
pub async fn look(conn: &Redis, keys: &LaneKeys) -> Result<(u64, u64), redis::RedisError> {
    let mut conn = conn.clone();
    let (waiting, pause_ms): (i64, i64) = LOOK
        .key(&keys.waiting)
        .key(&keys.pause)
        .invoke_async(&mut conn)
        .await?;
    Ok((waiting.max(0) as u64, pause_ms.max(0) as u64))
}

/// Refuses every acquire on `pause` for `hold` (a longer pause already set is kept).
pub async fn pause(
    conn: &Redis,
    pause: &str,
    hold: Duration,
    until_ms: i64,
) -> Result<(), redis::RedisError> {
    let mut conn = conn.clone();
    PAUSE
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
