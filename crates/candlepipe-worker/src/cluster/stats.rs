//! Cluster-wide counters kept in Redis (the hash `cp:stats`), for `candlepipe stats`. Each
//! process counts in atomics and adds its deltas to the hash every few seconds, so no request
//! waits on Redis for bookkeeping.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use candlepipe_core::{Exchange, Source};
use candlepipe_store::Redis;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Requests(Source),
    RequestsStale,
    RequestsError,
    ExchangeCalls(Exchange),
    DeadLetters,
}

/// Every field, in a fixed order (its index is the atomic's).
const FIELDS: [(Field, &str); 10] = [
    (Field::Requests(Source::L1), "requests:l1"),
    (Field::Requests(Source::Redis), "requests:redis"),
    (Field::Requests(Source::Exchange), "requests:exchange"),
    (Field::Requests(Source::Stream), "requests:stream"),
    (Field::RequestsStale, "requests:stale"),
    (Field::RequestsError, "requests:error"),
    (
        Field::ExchangeCalls(Exchange::Binance),
        "exchange_calls:binance",
    ),
    (
        Field::ExchangeCalls(Exchange::Coinbase),
        "exchange_calls:coinbase",
    ),
    (
        Field::ExchangeCalls(Exchange::Kraken),
        "exchange_calls:kraken",
    ),
    (Field::DeadLetters, "dead_letters"),
];

/// This process's counts since its last flush.
#[derive(Default)]
pub struct Counters {
    counts: [AtomicU64; 10],
}

impl Counters {
    pub fn add(&self, field: Field, n: u64) {
        if let Some(i) = FIELDS.iter().position(|(f, _)| *f == field) {
            self.counts[i].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// What `field` counted since the last flush.
    pub fn count(&self, field: Field) -> u64 {
        FIELDS
            .iter()
            .position(|(f, _)| *f == field)
            .map_or(0, |i| self.counts[i].load(Ordering::Relaxed))
    }

    /// Adds the counts to the hash; on failure they are kept for the next try.
    async fn flush(&self, conn: &mut Redis, key: &str) {
        let taken: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.swap(0, Ordering::Relaxed))
            .collect();
        if taken.iter().all(|n| *n == 0) {
            return;
        }
        let mut pipe = redis::pipe();
        for (i, n) in taken.iter().enumerate().filter(|(_, n)| **n > 0) {
            pipe.hincr(key, FIELDS[i].1, *n).ignore();
        }
        if let Err(e) = pipe.query_async::<()>(conn).await {
            tracing::debug!(error = %e, "stats not flushed; keeping them for the next try");
            for (c, n) in self.counts.iter().zip(taken) {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Flushes every `period` until `shutdown`, then once more.
    pub async fn flush_every(
        &self,
        mut conn: Redis,
        key: String,
        period: Duration,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => self.flush(&mut conn, &key).await,
                _ = shutdown.cancelled() => break,
            }
        }
        self.flush(&mut conn, &key).await;
    }
}

pub fn key(redis_prefix: &str) -> String {
    format!("{redis_prefix}stats")
}

/// The cluster's totals.
pub async fn read(
    conn: &mut Redis,
    redis_prefix: &str,
) -> Result<BTreeMap<String, u64>, redis::RedisError> {
    redis::cmd("HGETALL")
        .arg(key(redis_prefix))
        .query_async(conn)
        .await
}
