//! What every role is handed: the connections, the caches, the shared services and the
//! settings all roles read. Settings only one role reads are that role's (`analyze::run`,
//! `stream::run`). Imports only the shared services, never a role.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use candlepipe_core::Subjects;
use candlepipe_store::Redis;
use candlepipe_store::{L1Cache, Records, SeriesStore};

use crate::budget::RedisBudget;
use crate::cluster::markets::{MarketSettings, Markets};
use crate::cluster::stats::Counters;
use crate::jobs::disposition::RetryPolicy;
use crate::jobs::{Queue, StreamSettings};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub subjects: Subjects,
    /// The inbox prefixes workers answer on (`_INBOX.` and `CANDLEPIPE_REPLY_PREFIXES`).
    pub replies: candlepipe_core::ReplyPolicy,
    pub redis_prefix: String,
    pub streams: StreamSettings,
    /// How long a producer waits when its request does not say (`timeout_ms`): ingest
    /// answers stale data or an error by then.
    pub fill_wait: Duration,
    /// The longest `timeout_ms` a request may ask for.
    pub max_timeout: Duration,
    /// What a live job needs after its turn (exchange call, write, `ready`): a producer is
    /// admitted only if its job's turn comes at least this long before its deadline.
    pub admission_margin: Duration,
    /// Live jobs one fill process works on at once, per exchange.
    pub fill_concurrency: usize,
    /// Bulk jobs one fill process works on at once, per exchange.
    pub bulk_concurrency: usize,
    pub retry: RetryPolicy,
    /// Symbols one analysis works on at once (and analyze jobs one process takes at once).
    pub analysis_concurrency: usize,
    /// How long an analysis may take when its request does not say (`timeout_ms`).
    pub analysis_timeout: Duration,
    pub markets: MarketSettings,
    /// Requests a minute for the latest candles of a series that make ingest want it
    /// streamed (0: only watches).
    pub hot_per_minute: u32,
    /// The stream role's silence: a series its stream has not refreshed this long is
    /// answered as a cache hit, not `stream`.
    pub stream_silence: Duration,
}

/// Everything a role needs; cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub redis: Redis,
    pub store: SeriesStore,
    /// Analysis results and LLM commentary.
    pub records: Records,
    pub l1: L1Cache,
    /// Counts flushed to the cluster-wide totals in Redis.
    pub stats: Arc<Counters>,
    /// The exchanges' cluster-wide budgets: ingest admits live jobs to them, fill workers
    /// release them.
    pub budget: Arc<RedisBudget>,
    /// Which symbols each exchange lists.
    pub markets: Markets,
    /// Publishing, settling and dead-lettering jobs.
    pub jobs: Queue,
    pub settings: Arc<WorkerSettings>,
}
