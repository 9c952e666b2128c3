//! Cluster-wide counters kept in Redis (the hash `cp:stats`), for `candlepipe stats`. Each
//! process counts in atomics and adds its deltas to the hash every few seconds, so no request
//! waits on Redis for bookkeeping.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use candlepipe_core::{ErrorCode, Exchange, Source};
use candlepipe_store::Redis;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Requests(Source),
    RequestsStale,
    /// Requests answered with an error, by its code.
    RequestsError(ErrorCode),
    ExchangeCalls(Exchange),
    DeadLetters,
}

const SOURCES: [Source; 4] = [Source::L1, Source::Redis, Source::Exchange, Source::Stream];
/// How many fields there are: one atomic each.
const COUNT: usize = SOURCES.len() + 1 + ErrorCode::ALL.len() + Exchange::ALL.len() + 1;

impl Field {
    /// Every field, in a fixed order (its position is its atomic's).
    fn all() -> impl Iterator<Item = Field> {
        SOURCES
            .into_iter()
            .map(Field::Requests)
            .chain([Field::RequestsStale])
            .chain(ErrorCode::ALL.into_iter().map(Field::RequestsError))
            .chain(Exchange::ALL.into_iter().map(Field::ExchangeCalls))
            .chain([Field::DeadLetters])
    }

    fn index(self) -> Option<usize> {
        Field::all().position(|f| f == self)
    }

    /// Its name in the hash: `requests:l1`, `requests:error:timeout`, `exchange_calls:kraken`….
    pub fn name(self) -> String {
        match self {
            Field::Requests(s) => format!("requests:{}", s.as_str()),
            Field::RequestsStale => "requests:stale".into(),
            Field::RequestsError(code) => format!("{ERRORS}{code}"),
            Field::ExchangeCalls(ex) => format!("exchange_calls:{ex}"),
            Field::DeadLetters => "dead_letters".into(),
        }
    }
}

/// The prefix of the error counts' names (`requests:error:<code>`).
pub const ERRORS: &str = "requests:error:";

/// This process's counts since its last flush.
pub struct Counters {
    counts: [AtomicU64; COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Counters {
    pub fn add(&self, field: Field, n: u64) {
        if let Some(i) = field.index() {
            self.counts[i].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// What `field` counted since the last flush.
    pub fn count(&self, field: Field) -> u64 {
        field
            .index()
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
        for (field, n) in Field::all().zip(&taken).filter(|(_, n)| **n > 0) {
            pipe.hincr(key, field.name(), *n).ignore();
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
