//! LLM spend across the cluster, in Redis:
//! - the daily budget: before a call, its worst case (prompt and repair, `max_tokens` out
//!   twice, counting a token per byte: more than any tokenizer makes) is reserved for the
//!   UTC day by a Lua script that refuses when what is spent, what is reserved and this
//!   together would pass the budget. After the call the reservation is replaced by the real
//!   cost. A reservation lives only as long as its call can (a worker killed meanwhile
//!   leaves one that lapses, and whoever reserves next takes it out). Concurrent workers can
//!   never spend past the budget together.
//! - RPM and TPM per provider: the same GCRA limiter as the exchange budget
//!   ([`crate::budget::gcra`]), with a pause after the provider's own 429.
//! - totals per provider and model (`<prefix>llm:usage`) for `candlepipe stats`.
//!
//! Money is counted in integer nano-dollars so that sums are exact.

use std::sync::LazyLock;
use std::time::Duration;

use candlepipe_core::now_ms;
use candlepipe_llm::{Price, Usage};
use candlepipe_store::Redis;

use crate::budget::gcra::{self, Rate};

/// Takes out lapsed reservations, then: KEYS spent, held (id → nanos), until (id → lapse
/// ms). `reserve`: ARGV want, budget, key ttl ms, id, hold ms → the day's total, or -1.
/// `settle`: ARGV id, real cost, key ttl ms. `release`: ARGV id. `total`: the day's spend
/// and live reservations.
static SPEND: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
local function total()
  local sum = tonumber(redis.call('GET', KEYS[1]) or '0')
  for _, v in ipairs(redis.call('HVALS', KEYS[2])) do sum = sum + tonumber(v) end
  return sum
end
local function keep(ttl)
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
local op = ARGV[1]
if op == 'reserve' then
  local want = tonumber(ARGV[2])
  local sum = total()
  if sum + want > tonumber(ARGV[3]) then return -1 end
  redis.call('HSET', KEYS[2], ARGV[5], want)
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[5])
  redis.call('SETNX', KEYS[1], 0)
  keep(ARGV[4])
  return sum + want
elseif op == 'settle' then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('INCRBY', KEYS[1], ARGV[3])
  keep(ARGV[4])
  return total()
elseif op == 'release' then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
  return total()
end
return total()
"#,
    )
});

/// The most tokens the repair request adds (its text, with the reason quoted, and its
/// message overhead).
const REPAIR_REQUEST_TOKENS: u64 = 512;

/// Spend keys outlive their day so `stats` can show yesterday too.
const SPEND_TTL: Duration = Duration::from_secs(3 * 24 * 3600);

pub fn nanos(usd: f64) -> i64 {
    (usd * 1e9).ceil() as i64
}

#[derive(Debug, Clone)]
pub struct SpendLimits {
    pub daily_budget_usd: f64,
    pub rpm: u32,
    pub tpm: u32,
    /// Longest a call waits for the RPM/TPM limit before giving up (`rate_limited`).
    pub max_wait: Duration,
}

#[derive(Clone)]
pub struct Spend {
    conn: Redis,
    prefix: String,
    limits: SpendLimits,
}

/// What one commentary cost, for [`Spend::settle`].
#[derive(Debug, Clone, Copy)]
pub struct Settled<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub usage: &'a Usage,
    pub cost_usd: f64,
    pub ok: bool,
    /// Its outcome was unknown, so `usage` is the reservation's worst case.
    pub at_worst: bool,
}

/// A reserved amount, to be replaced by the real cost with [`Spend::settle`].
#[derive(Debug)]
pub struct Reservation {
    day: i64,
    id: String,
}

#[derive(Debug, PartialEq)]
pub enum Refused {
    Budget,
    Rate,
    Redis(String),
}

/// Per provider and model, what `stats` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Requests,
    Failures,
    PromptTokens,
    CompletionTokens,
    CostNanos,
    CacheHits,
    /// Calls whose outcome was unknown (timeout, broken connection, 5xx), billed at their
    /// reservation.
    BilledAtWorst,
}

impl Counter {
    pub fn as_str(self) -> &'static str {
        match self {
            Counter::Requests => "requests",
            Counter::Failures => "failures",
            Counter::PromptTokens => "prompt_tokens",
            Counter::CompletionTokens => "completion_tokens",
            Counter::CostNanos => "cost_nanos",
            Counter::CacheHits => "cache_hits",
            Counter::BilledAtWorst => "billed_at_worst",
        }
    }
}

pub fn usage_key(prefix: &str) -> String {
    format!("{prefix}llm:usage")
}

/// The day's keys, for the UTC day of `at_ms`: what is spent, the live reservations and
/// when each lapses (`<prefix>llm:spend:{<YYYY-MM-DD>}`, `…:held`, `…:until`: one slot).
pub fn spend_keys(prefix: &str, at_ms: i64) -> [String; 3] {
    let date = time::OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| "invalid-date".into());
    let spent = format!("{prefix}llm:spend:{{{date}}}");
    [
        spent.clone(),
        format!("{spent}:held"),
        format!("{spent}:until"),
    ]
}

async fn spend_op(
    conn: &Redis,
    prefix: &str,
    at_ms: i64,
    args: &[String],
) -> Result<i64, redis::RedisError> {
    let mut conn = conn.clone();
    let mut call = SPEND.prepare_invoke();
    for k in spend_keys(prefix, at_ms) {
        call.key(k);
    }
    for a in args {
        call.arg(a);
    }
    call.invoke_async(&mut conn).await
}

impl Spend {
    pub fn new(conn: Redis, prefix: &str, limits: SpendLimits) -> Spend {
        Spend {
            conn,
            prefix: prefix.to_string(),
            limits,
        }
    }

    /// The worst case of one commentary whose prompt is at most `prompt_tokens`: the
    /// prompt twice plus the first answer and the repair request (a repair quotes the
    /// answer), and `max_tokens` out twice.
    pub fn worst_case(prompt_tokens: u64, max_tokens: u32) -> Usage {
        let out = u64::from(max_tokens);
        Usage {
            prompt_tokens: 2 * prompt_tokens + out + REPAIR_REQUEST_TOKENS,
            completion_tokens: 2 * out,
        }
    }

    /// Reserves `worst` at `price` against today's budget, for at most `hold` (how long
    /// the call may take): after that it lapses.
    pub async fn reserve(
        &self,
        worst: &Usage,
        price: &Price,
        hold: Duration,
    ) -> Result<Reservation, Refused> {
        let day = now_ms();
        let id = format!("{}-{}", std::process::id(), rand::random::<u64>());
        let total = spend_op(
            &self.conn,
            &self.prefix,
            day,
            &[
                "reserve".into(),
                nanos(price.cost_usd(worst)).to_string(),
                nanos(self.limits.daily_budget_usd).to_string(),
                SPEND_TTL.as_millis().to_string(),
                id.clone(),
                hold.as_millis().max(1).to_string(),
            ],
        )
        .await
        .map_err(|e| Refused::Redis(e.to_string()))?;
        if total < 0 {
            return Err(Refused::Budget);
        }
        metrics::gauge!("candlepipe_llm_spent_today_usd").set(total as f64 / 1e9);
        Ok(Reservation { day, id })
    }

    /// Replaces the reservation by what was really spent, and adds the call to the totals.
    pub async fn settle(&self, r: Reservation, call: &Settled<'_>) {
        let Settled {
            provider,
            model,
            usage,
            cost_usd,
            ok,
            at_worst,
        } = *call;
        let spent = nanos(cost_usd);
        let totals = usage_key(&self.prefix);
        let field = |c: Counter| format!("{provider}|{model}|{}", c.as_str());
        // Two round trips, not one pipeline: the keys live in different Redis Cluster slots.
        let corrected = spend_op(
            &self.conn,
            &self.prefix,
            r.day,
            &[
                "settle".into(),
                r.id,
                spent.to_string(),
                SPEND_TTL.as_millis().to_string(),
            ],
        )
        .await;
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for (c, n) in [
            (Counter::Requests, 1),
            (Counter::Failures, i64::from(!ok)),
            (Counter::PromptTokens, usage.prompt_tokens as i64),
            (Counter::CompletionTokens, usage.completion_tokens as i64),
            (Counter::CostNanos, spent),
            (Counter::BilledAtWorst, i64::from(at_worst)),
        ] {
            if n > 0 {
                pipe.hincr(&totals, field(c), n).ignore();
            }
        }
        let counted = pipe.query_async::<()>(&mut conn).await;
        if let Err(e) = corrected.map(|_| ()).and(counted) {
            // A reservation left in place lapses by itself; meanwhile the budget errs low.
            tracing::warn!(error = %e, provider, model, "LLM spend not recorded in Redis");
        }
    }

    /// Gives a reservation back unused (the call was not made).
    pub async fn release(&self, r: Reservation) {
        let undone = spend_op(&self.conn, &self.prefix, r.day, &["release".into(), r.id]).await;
        if let Err(e) = undone {
            tracing::warn!(error = %e, "LLM reservation not released; it lapses by itself");
        }
    }

    pub async fn count_cache_hit(&self, provider: &str, model: &str) {
        let mut conn = self.conn.clone();
        let r: Result<i64, _> = redis::cmd("HINCRBY")
            .arg(usage_key(&self.prefix))
            .arg(format!(
                "{provider}|{model}|{}",
                Counter::CacheHits.as_str()
            ))
            .arg(1)
            .query_async(&mut conn)
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "cache hit not counted");
        }
    }

    fn keys(&self, provider: &str) -> (String, String, String) {
        let base = format!("{}rl:{{llm:{provider}}}", self.prefix);
        (
            format!("{base}:rpm"),
            format!("{base}:tpm"),
            format!("{base}:pause"),
        )
    }

    /// Waits for one request and `tokens` tokens under the provider's cluster-wide RPM and
    /// TPM (bursts of a sixth of a minute), or refuses after `max_wait`.
    pub async fn acquire_rate(&self, provider: &str, tokens: u64) -> Result<(), Refused> {
        let (rpm_key, tpm_key, pause) = self.keys(provider);
        let minute = Duration::from_secs(60);
        let limits = [
            (
                rpm_key,
                Rate::new(
                    u64::from(self.limits.rpm),
                    minute,
                    u64::from(self.limits.rpm / 6),
                ),
                1,
            ),
            (
                tpm_key,
                Rate::new(
                    u64::from(self.limits.tpm),
                    minute,
                    u64::from(self.limits.tpm / 6),
                ),
                tokens,
            ),
        ];
        let deadline = tokio::time::Instant::now() + self.limits.max_wait;
        for (bucket, rate, cost) in limits {
            loop {
                let wait = gcra::try_acquire(&self.conn, &bucket, &pause, rate, cost)
                    .await
                    .map_err(|e| Refused::Redis(e.to_string()))?;
                if wait == 0 {
                    break;
                }
                let until = tokio::time::Instant::now() + Duration::from_micros(wait);
                if until > deadline {
                    return Err(Refused::Rate);
                }
                tokio::time::sleep_until(until).await;
            }
        }
        Ok(())
    }

    /// After the provider's 429: every worker holds off it for `hold`.
    pub async fn pause(&self, provider: &str, hold: Duration) {
        let (_, _, pause) = self.keys(provider);
        let until = now_ms() + hold.as_millis() as i64;
        if let Err(e) = gcra::pause(&self.conn, &pause, hold, until).await {
            tracing::warn!(error = %e, provider, "LLM pause not stored");
        }
    }

    /// Today's spend in USD.
    pub async fn spent_today(&self) -> Result<f64, redis::RedisError> {
        spent_on(&self.conn, &self.prefix, now_ms()).await
    }
}

/// What the UTC day of `at_ms` has spent and holds reserved, in USD.
pub async fn spent_on(conn: &Redis, prefix: &str, at_ms: i64) -> Result<f64, redis::RedisError> {
    let n = spend_op(conn, prefix, at_ms, &["total".into()]).await?;
    Ok(n as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_money() {
        assert_eq!(
            spend_keys("cp:", 1_764_115_200_000),
            [
                "cp:llm:spend:{2025-11-26}",
                "cp:llm:spend:{2025-11-26}:held",
                "cp:llm:spend:{2025-11-26}:until"
            ]
        );
        assert_eq!(nanos(0.000_000_15), 150);
        let w = Spend::worst_case(100, 300);
        assert_eq!((w.prompt_tokens, w.completion_tokens), (1012, 600));
    }
}
