//! The worker roles over NATS: `ingest` answers requests from the caches and turns misses
//! into fill jobs; `fill` executes those jobs against the exchanges; `analyze` computes
//! indicators and LLM commentary. Only this crate acks JetStream messages.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod analysis;
pub mod budget;
pub mod clock;
pub mod cluster_stats;
pub mod commentary;
pub mod dead_letters;
pub mod disposition;
pub mod fill;
pub mod gcra;
pub mod ingest;
pub mod jobs;
pub mod last_delivery;
pub mod llm_route;
pub mod llm_spend;
pub mod loops;
pub mod markets;
pub mod replies;
pub mod stream;
pub mod streams;
pub mod traces;
mod waiters;
mod widest;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use candlepipe_core::Subjects;
use candlepipe_exchange::ExchangeClient;
use candlepipe_store::Redis;
use candlepipe_store::{L1Cache, Records, SeriesStore};
use tokio_util::sync::CancellationToken;

pub use streams::StreamSettings;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    pub retry: disposition::RetryPolicy,
    /// Symbols one analysis works on at once (and analyze jobs one process takes at once).
    pub analysis_concurrency: usize,
    /// How long an analysis may take when its request does not say (`timeout_ms`).
    pub analysis_timeout: Duration,
    pub markets: markets::MarketSettings,
    pub llm: commentary::LlmSettings,
    pub live: stream::LiveSettings,
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
    pub stats: Arc<cluster_stats::Counters>,
    /// The exchanges' cluster-wide budgets: ingest admits live jobs to them, fill workers
    /// release them.
    pub budget: Arc<budget::RedisBudget>,
    /// Which symbols each exchange lists.
    pub markets: markets::Markets,
    pub settings: Arc<WorkerSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Ingest,
    Fill,
    Analyze,
    Stream,
}

/// Runs the roles until `shutdown` is cancelled, then drains them. An error in one role
/// stops the others.
pub async fn run(
    ctx: Context,
    roles: &[Role],
    exchange: ExchangeClient,
    shutdown: CancellationToken,
) -> Result<(), BoxError> {
    let mut tasks = tokio::task::JoinSet::new();
    for role in roles {
        let (ctx, stop) = (ctx.clone(), shutdown.clone());
        match role {
            Role::Ingest => tasks.spawn(async move { ingest::run(ctx, stop).await }),
            Role::Fill => {
                let exchange = exchange.clone();
                tasks.spawn(async move { fill::run(ctx, exchange, stop).await })
            }
            Role::Analyze => tasks.spawn(async move { analysis::run(ctx, stop).await }),
            Role::Stream => {
                let exchange = exchange.clone();
                tasks.spawn(async move { stream::run(ctx, exchange, stop).await })
            }
        };
    }
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let result = done
            .map_err(|e| -> BoxError { Box::new(e) })
            .and_then(|r| r);
        if let Err(e) = result {
            tracing::error!(error = %e, "worker role stopped with an error");
            shutdown.cancel();
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}
