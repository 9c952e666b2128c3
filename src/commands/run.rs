//! `candlepipe run ingest|fill|analyze|all`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use candlepipe_store::{L1Cache, Records};
use candlepipe_worker::cluster::markets::Markets;
use candlepipe_worker::cluster::stats::{self as cluster_stats, Counters};
use candlepipe_worker::jobs::Queue;
use candlepipe_worker::{Context, Role};
use clap::ValueEnum;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::connect;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Ingest,
    Fill,
    Analyze,
    Stream,
    Gateway,
    All,
}

#[derive(clap::Args)]
pub struct Args {
    /// Roles this process runs (several allowed).
    #[arg(required = true, value_enum)]
    roles: Vec<RoleArg>,
    /// Serve `/metrics` (Prometheus) and `/health` on this address.
    #[arg(long, env = "CANDLEPIPE_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Where the gateway role listens for HTTP (default `CANDLEPIPE_GATEWAY_ADDR`,
    /// 127.0.0.1:8080; port 0 picks a free one, logged as `gateway ready addr=…`).
    #[arg(long)]
    gateway_addr: Option<std::net::SocketAddr>,
    /// Without `CANDLEPIPE_HMAC_KEY`, sign Redis values with the public development key
    /// (a local trial only: anyone can forge them).
    #[arg(long)]
    dev: bool,
}

pub async fn run(cfg: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let mut roles: Vec<Role> = args
        .roles
        .iter()
        .flat_map(|r| match r {
            RoleArg::Ingest => vec![Role::Ingest],
            RoleArg::Fill => vec![Role::Fill],
            RoleArg::Analyze => vec![Role::Analyze],
            RoleArg::Stream => vec![Role::Stream],
            RoleArg::Gateway => vec![Role::Gateway],
            RoleArg::All => Role::ALL.to_vec(),
        })
        .collect();
    roles.sort();
    roles.dedup();
    cfg.require_hmac_key(args.dev)?;
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let nats = connect::nats(
        cfg,
        &format!("candlepipe-{}", names.join("-")),
        Duration::from_secs(30),
    )
    .await?;
    let redis = connect::redis(cfg, Duration::from_secs(30)).await?;
    let stats = Arc::new(Counters::default());
    let connect::Filling {
        store,
        exchange,
        budget,
    } = connect::filling(cfg, &nats, &redis, stats.clone()).await?;
    let records = Records::new(redis.clone(), cfg.keyring.clone(), &cfg.redis_prefix);
    let settings = Arc::new(cfg.worker_settings());
    let js = async_nats::jetstream::new(nats.clone());
    let ctx = Context {
        jobs: Queue {
            js: js.clone(),
            redis: redis.clone(),
            subjects: settings.subjects.clone(),
            redis_prefix: settings.redis_prefix.clone(),
            stats: stats.clone(),
        },
        js,
        nats,
        markets: Markets::new(records.clone(), redis.clone(), cfg.markets),
        records,
        redis,
        store,
        l1: L1Cache::new(cfg.l1_capacity),
        stats: stats.clone(),
        budget,
        settings,
    };
    let shutdown = CancellationToken::new();
    let flusher = {
        let (conn, key, stop) = (
            ctx.redis.clone(),
            cluster_stats::key(&cfg.redis_prefix),
            shutdown.clone(),
        );
        let period = cfg.stats_flush;
        tokio::spawn(async move { stats.flush_every(conn, key, period, stop).await })
    };
    if let Some(addr) = args.metrics_addr {
        let handle = crate::telemetry::install_recorder()?;
        crate::telemetry::zero_the_rules_metrics(cfg);
        crate::telemetry::zero_the_stream_metrics();
        let (nats, redis, stop) = (ctx.nats.clone(), ctx.redis.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::telemetry::serve(addr, handle, nats, redis, stop).await {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        });
    }
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        super::termination().await;
        tracing::info!("shutdown requested; draining");
        trigger.cancel();
    });
    tracing::info!(roles = ?names, "starting");
    let result = {
        let mut own = cfg.role_settings();
        own.gateway.addr = args.gateway_addr.unwrap_or(own.gateway.addr);
        if roles.contains(&Role::Ingest) {
            own.ingest.write_signals = Some(connect::write_signals(cfg)?);
        }
        candlepipe_worker::run(ctx, &roles, own, exchange, shutdown.clone()).await
    };
    // The last counts reach the cluster totals before the process exits.
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(3), flusher).await;
    result.map_err(|e| anyhow::anyhow!(e))?;
    Ok(ExitCode::SUCCESS)
}
