//! The worker roles over NATS, and only their wiring: `ingest` answers requests from the
//! caches and turns misses into fill jobs; `fill` executes those jobs against the exchanges;
//! `analyze` computes indicators and LLM commentary; `stream` keeps wanted series live from
//! the exchanges' WebSockets; `gateway` serves the exchanges' own HTTP endpoints from the
//! cache. The services they share sit in their own folders — `jobs`
//! (JetStream), `budget` (the exchanges' cluster budgets), `cluster` (state shared through
//! Redis), `requests` (answering core NATS) — and never import a role. Only this crate
//! acks JetStream messages.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod analyze;
pub mod budget;
pub mod cluster;
pub mod context;
pub mod error;
pub mod fill;
pub mod gateway;
pub mod ingest;
pub mod jobs;
pub mod requests;
pub mod stream;

use candlepipe_exchange::ExchangeClient;
use tokio_util::sync::CancellationToken;

pub use context::{Context, WorkerSettings};
pub use error::BoxError;
pub use jobs::StreamSettings;

/// What only one role reads.
#[derive(Debug, Clone)]
pub struct RoleSettings {
    /// `ingest`: where it hears fill writes land.
    pub ingest: ingest::IngestSettings,
    /// `analyze`: the LLM providers, prices and spend limits.
    pub llm: analyze::LlmSettings,
    /// `stream`: the exchanges' WebSockets and how live series are held.
    pub live: stream::LiveSettings,
    /// `gateway`: where it listens for HTTP, and how clients share it.
    pub gateway: gateway::GatewaySettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Ingest,
    Fill,
    Analyze,
    Stream,
    Gateway,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Ingest,
        Role::Fill,
        Role::Analyze,
        Role::Stream,
        Role::Gateway,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Fill => "fill",
            Role::Analyze => "analyze",
            Role::Stream => "stream",
            Role::Gateway => "gateway",
        }
    }
}

/// Runs the roles until `shutdown` is cancelled, then drains them. An error in one role
/// stops the others.
pub async fn run(
    ctx: Context,
    roles: &[Role],
    own: RoleSettings,
    exchange: ExchangeClient,
    shutdown: CancellationToken,
) -> Result<(), BoxError> {
    let mut tasks = tokio::task::JoinSet::new();
    // The roll call (`candlepipe check`), answered by every process but a gateway alone
    // (whose NATS user may not publish on inboxes).
    if roles.iter().any(|r| *r != Role::Gateway) {
        let me = cluster::roll_call::Present {
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let (nats, subject) = (ctx.nats.clone(), ctx.settings.subjects.roll_call());
        let stop = shutdown.clone();
        tokio::spawn(cluster::roll_call::answer(nats, subject, me, stop));
    }
    for role in roles {
        let (ctx, stop) = (ctx.clone(), shutdown.clone());
        match role {
            Role::Ingest => {
                let own = own.ingest.clone();
                tasks.spawn(async move { ingest::run(ctx, own, stop).await })
            }
            Role::Fill => {
                let exchange = exchange.clone();
                tasks.spawn(async move { fill::run(ctx, exchange, stop).await })
            }
            Role::Analyze => {
                let llm = own.llm.clone();
                tasks.spawn(async move { analyze::run(ctx, llm, stop).await })
            }
            Role::Stream => {
                let exchange = exchange.clone();
                let live = own.live.clone();
                tasks.spawn(async move { stream::run(ctx, live, exchange, stop).await })
            }
            Role::Gateway => {
                let settings = own.gateway.clone();
                tasks.spawn(async move { gateway::run(ctx, settings, stop).await })
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
