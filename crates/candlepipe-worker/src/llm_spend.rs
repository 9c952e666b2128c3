//! LLM spend across the cluster, in Redis:
//! - the daily budget: before a call, its worst case (prompt and repair, `max_tokens` out
//!   twice) is reserved against `<prefix>llm:spend:<UTC date>` by a Lua script that refuses
//!   when the reservation would pass the budget; after the call the reservation is corrected
//!   to the real cost. Concurrent workers can never spend past the budget together.
//! - RPM and TPM per provider: the same GCRA limiter as the exchange budget
//!   ([`crate::gcra`]), with a pause after the provider's own 429.
//! - totals per provider and model (`<prefix>llm:usage`) for `candlepipe stats`.
//!
//! Money is counted in integer nano-dollars so that sums are exact.

use std::time::Duration;

use candlepipe_core::now_ms;
use candlepipe_llm::{Price, Usage};
use candlepipe_store::Redis;

use crate::gcra::{self, Rate};

const RESERVE_SCRIPT: &str = r#"
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
if spent + want > tonumber(ARGV[2]) then return -1 end
redis.call('INCRBY', KEYS[1], want)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return spent + want
"#;

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

/// A reserved amount, to be corrected with [`Spend::settle`].
#[derive(Debug)]
pub struct Reservation {
    key: String,
    nanos: i64,
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
        }
    }
}

pub fn usage_key(prefix: &str) -> String {
    format!("{prefix}llm:usage")
}

/// `<prefix>llm:spend:<YYYY-MM-DD>` for the UTC day of `at_ms`.
pub fn spend_key(prefix: &str, at_ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| "invalid-date".into());
    format!("{prefix}llm:spend:{date}")
}

impl Spend {
    pub fn new(conn: Redis, prefix: &str, limits: SpendLimits) -> Spend {
        Spend {
            conn,
            prefix: prefix.to_string(),
            limits,
        }
    }

    /// The worst case of one commentary: the prompt twice plus the first answer (a repair
    /// quotes it), and `max_tokens` out twice.
    pub fn worst_case(prompt_tokens: u64, max_tokens: u32) -> Usage {
        let out = u64::from(max_tokens);
        Usage {
            prompt_tokens: 2 * prompt_tokens + out + 64,
            completion_tokens: 2 * out,
        }
    }

    /// Reserves `worst` at `price` against today's budget.
    pub async fn reserve(&self, worst: &Usage, price: &Price) -> Result<Reservation, Refused> {
        let key = spend_key(&self.prefix, now_ms());
        let want = nanos(price.cost_usd(worst));
        let mut conn = self.conn.clone();
        let total: i64 = redis::Script::new(RESERVE_SCRIPT)
            .key(&key)
            .arg(want)
            .arg(nanos(self.limits.daily_budget_usd))
            .arg(SPEND_TTL.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| Refused::Redis(e.to_string()))?;
        if total < 0 {
            return Err(Refused::Budget);
        }
        metrics::gauge!("candlepipe_llm_spent_today_usd").set(total as f64 / 1e9);
        Ok(Reservation { key, nanos: want })
    }

    /// Replaces the reservation by what was really spent, and adds the call to the totals.
    pub async fn settle(
        &self,
        r: Reservation,
        provider: &str,
        model: &str,
        usage: &Usage,
        cost_usd: f64,
        ok: bool,
    ) {
        let spent = nanos(cost_usd);
        let totals = usage_key(&self.prefix);
        let field = |c: Counter| format!("{provider}|{model}|{}", c.as_str());
        // Two round trips, not one pipeline: the keys live in different Redis Cluster slots.
        let mut conn = self.conn.clone();
        let corrected: Result<i64, _> = redis::cmd("INCRBY")
            .arg(&r.key)
            .arg(spent - r.nanos)
            .query_async(&mut conn)
            .await;
        let mut pipe = redis::pipe();
        for (c, n) in [
            (Counter::Requests, 1),
            (Counter::Failures, i64::from(!ok)),
            (Counter::PromptTokens, usage.prompt_tokens as i64),
            (Counter::CompletionTokens, usage.completion_tokens as i64),
            (Counter::CostNanos, spent),
        ] {
            if n > 0 {
                pipe.hincr(&totals, field(c), n).ignore();
            }
        }
        let counted = pipe.query_async::<()>(&mut conn).await;
        if let Err(e) = corrected.map(|_| ()).and(counted) {
            // A reservation left uncorrected errs on the side of spending less.
            tracing::warn!(error = %e, provider, model, "LLM spend not recorded in Redis");
        }
    }

    /// Gives a reservation back unused (the call was not made).
    pub async fn release(&self, r: Reservation) {
        let mut conn = self.conn.clone();
        let undone: Result<i64, _> = redis::cmd("INCRBY")
            .arg(&r.key)
            .arg(-r.nanos)
            .query_async(&mut conn)
            .await;
        if let Err(e) = undone {
            tracing::warn!(error = %e, "LLM reservation not released; the budget errs low");
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

pub async fn spent_on(conn: &Redis, prefix: &str, at_ms: i64) -> Result<f64, redis::RedisError> {
    let mut conn = conn.clone();
    let n: Option<i64> = redis::cmd("GET")
        .arg(spend_key(prefix, at_ms))
        .query_async(&mut conn)
        .await?;
    Ok(n.unwrap_or(0) as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_money() {
        assert_eq!(
            spend_key("cp:", 1_764_115_200_000),
            "cp:llm:spend:2025-11-26"
        );
        assert_eq!(nanos(0.000_000_15), 150);
        let w = Spend::worst_case(100, 300);
        assert_eq!((w.prompt_tokens, w.completion_tokens), (564, 600));
    }
}
