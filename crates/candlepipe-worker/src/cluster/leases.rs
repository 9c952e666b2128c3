//! Which series are streamed, and which `stream` process holds each (Redis; both keys in
//! one hash slot, `{live}`):
//! - `cp:stream:{live}:wanted`  sorted set: series → until when it is wanted (a watch, or
//!   ingest seeing it requested often); renewed by whoever wants it
//! - `cp:stream:{live}:leases`  hash: series → `holder|expires|fence` (Redis-clock ms; the
//!   fence is new each time a holder takes the series, from `cp:stream:{live}:fence`)
//! - `cp:stream:{live}:fence`   counter of lease fences
//! - `cp:stream:{live}:msgpack` sorted set: series → until when a watch wants its changes
//!   in MessagePack too
//!
//! Every [`PERIOD`] each stream process renews its leases and takes free or lapsed ones, up
//! to its maximum, in one script; a process that dies stops renewing and another takes its
//! series within [`TTL`] + [`PERIOD`].

use std::time::Duration;

use candlepipe_core::{Exchange, Interval, SeriesKey, Symbol};
use candlepipe_store::Redis;

/// How often leases are renewed and free ones taken.
pub const PERIOD: Duration = Duration::from_secs(2);
/// How long a lease lasts without renewal.
pub const TTL: Duration = Duration::from_secs(6);
/// A process stops using a lease this long before it would lapse by its own clock.
const UNTIL_MARGIN: Duration = Duration::from_millis(500);

/// A lease is `holder|expires|fence`; a series taken (free or lapsed) gets a new fence from
/// KEYS[3], a renewal keeps its own. Returns `member, fence, …` of the series held.
const HOLD: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local wanted = redis.call('ZRANGE', KEYS[1], 0, -1)
local is_wanted = {}
for _, w in ipairs(wanted) do is_wanted[w] = true end
local function parse(v)
  local a = string.find(v, '|', 1, true)
  local b = string.find(v, '|', a + 1, true)
  local exp = tonumber(string.sub(v, a + 1, (b or 0) - 1)) or 0
  local fence = b and tonumber(string.sub(v, b + 1)) or nil
  return string.sub(v, 1, a - 1), exp, fence
end
local all = redis.call('HGETALL', KEYS[2])
local mine = 0
for i = 1, #all, 2 do
  local holder, exp = parse(all[i + 1])
  if exp < now or (holder == ARGV[1] and not is_wanted[all[i]]) then
    redis.call('HDEL', KEYS[2], all[i])
  elseif holder == ARGV[1] then
    mine = mine + 1
  end
end
local held = {}
local until_ms = now + tonumber(ARGV[2])
for _, w in ipairs(wanted) do
  local v = redis.call('HGET', KEYS[2], w)
  local fence = nil
  if v then
    local holder, _, f = parse(v)
    if holder == ARGV[1] then fence = f or redis.call('INCR', KEYS[3]) end
  elseif mine < tonumber(ARGV[3]) then
    fence = redis.call('INCR', KEYS[3])
    mine = mine + 1
  end
  if fence then
    redis.call('HSET', KEYS[2], w, ARGV[1] .. '|' .. until_ms .. '|' .. fence)
    table.insert(held, w)
    table.insert(held, tostring(fence))
  end
end
return held
"#;

const RELEASE: &str = r#"
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local v = all[i + 1]
  if string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return 0
"#;

/// The members of KEYS[1] still wanted.
const STILL_WANTED: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"#;

const WANT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[2])
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not cur) or tonumber(cur) < until_ms then
  redis.call('ZADD', KEYS[1], until_ms, ARGV[1])
end
return 0
"#;

#[derive(Clone)]
pub struct Leases {
    conn: Redis,
    wanted: String,
    leases: String,
    msgpack: String,
    fences: String,
}

/// A lease this process holds: its fence (every write and live mark of the series carries
/// it, [`candlepipe_store::SeriesStore::write_streamed`]) and until when it surely holds
/// by this process's clock (taken before the renewal was asked, so never later than
/// Redis's expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub fence: u64,
    pub until: std::time::Instant,
}

/// The leases this process holds now, shared by the lease loop (which renews them) and the
/// sink (which publishes and writes only under a lease still held).
#[derive(Clone, Default)]
pub struct Held(std::sync::Arc<std::sync::RwLock<std::collections::HashMap<SeriesKey, Lease>>>);

impl Held {
    /// The series' lease, while it holds.
    pub fn get(&self, series: &SeriesKey) -> Option<Lease> {
        let lease = self.0.read().ok()?.get(series).copied()?;
        (std::time::Instant::now() < lease.until).then_some(lease)
    }

    /// What one renewal holds now.
    pub fn set(&self, held: impl IntoIterator<Item = (SeriesKey, Lease)>) {
        if let Ok(mut map) = self.0.write() {
            *map = held.into_iter().collect();
        }
    }

    /// The series' lease is lost (a write was fenced): nothing more under it.
    pub fn lose(&self, series: &SeriesKey) {
        if let Ok(mut map) = self.0.write() {
            map.remove(series);
        }
    }
}

/// `binance|BTC/USDT|1m`: a series as a member of the sets.
pub fn member(s: &SeriesKey) -> String {
    format!("{}|{}|{}", s.exchange, s.symbol, s.interval)
}

pub fn series_of(member: &str) -> Option<SeriesKey> {
    let mut parts = member.split('|');
    let (ex, sym, iv) = (parts.next()?, parts.next()?, parts.next()?);
    Some(SeriesKey::new(
        Exchange::parse(ex).ok()?,
        Symbol::parse(sym).ok()?,
        Interval::parse(iv).ok()?,
    ))
}

impl Leases {
    pub fn new(conn: Redis, redis_prefix: &str) -> Self {
        Leases {
            conn,
            wanted: format!("{redis_prefix}stream:{{live}}:wanted"),
            leases: format!("{redis_prefix}stream:{{live}}:leases"),
            msgpack: format!("{redis_prefix}stream:{{live}}:msgpack"),
            fences: format!("{redis_prefix}stream:{{live}}:fence"),
        }
    }

    /// Marks `series` wanted for `for_how_long` from now (never shortening a longer want),
    /// in MessagePack too when `msgpack`.
    pub async fn want(
        &self,
        series: &SeriesKey,
        for_how_long: Duration,
        msgpack: bool,
    ) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        let keys: &[&String] = if msgpack {
            &[&self.wanted, &self.msgpack]
        } else {
            &[&self.wanted]
        };
        for key in keys {
            redis::Script::new(WANT)
                .key(*key)
                .arg(member(series))
                .arg(for_how_long.as_millis() as u64)
                .invoke_async::<i64>(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// No longer wanted, in any encoding.
    pub async fn unwant(&self, series: &SeriesKey) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .cmd("ZREM")
            .arg(&self.wanted)
            .arg(member(series))
            .ignore()
            .cmd("ZREM")
            .arg(&self.msgpack)
            .arg(member(series))
            .ignore()
            .query_async::<()>(&mut conn)
            .await
    }

    /// The series whose changes a watch wants in MessagePack.
    pub async fn msgpack_wanted(&self) -> Result<Vec<SeriesKey>, redis::RedisError> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = redis::Script::new(STILL_WANTED)
            .key(&self.msgpack)
            .invoke_async(&mut conn)
            .await?;
        Ok(members.iter().filter_map(|m| series_of(m)).collect())
    }

    /// Renews `holder`'s leases on wanted series, drops the unwanted ones, and takes free
    /// ones up to `max` in all; returns the series it holds now, with their leases.
    pub async fn hold(
        &self,
        holder: &str,
        max: usize,
    ) -> Result<Vec<(SeriesKey, Lease)>, redis::RedisError> {
        let asked = std::time::Instant::now();
        let mut conn = self.conn.clone();
        let held: Vec<String> = redis::Script::new(HOLD)
            .key(&self.wanted)
            .key(&self.leases)
            .key(&self.fences)
            .arg(holder)
            .arg(TTL.as_millis() as u64)
            .arg(max)
            .invoke_async(&mut conn)
            .await?;
        Ok(held
            .chunks_exact(2)
            .filter_map(|pair| {
                let fence = pair[1].parse().ok()?;
                let until = asked + TTL - UNTIL_MARGIN;
                Some((series_of(&pair[0])?, Lease { fence, until }))
            })
            .collect())
    }

    /// Gives up every lease `holder` has (at shutdown), so others take them at once.
    pub async fn release(&self, holder: &str) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        redis::Script::new(RELEASE)
            .key(&self.leases)
            .arg(holder)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
    }
}
