//! `/metrics` (Prometheus text format) and `/health` for a worker process.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use candlepipe_store::Redis;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Latency buckets (seconds): sub-millisecond cache hits up to exchange round trips.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")
}

#[derive(Clone)]
struct Probe {
    metrics: PrometheusHandle,
    nats: async_nats::Client,
    redis: Redis,
}

async fn metrics(State(p): State<Probe>) -> String {
    p.metrics.render()
}

/// 200 when both NATS and Redis answer, else 503; the body says which is down.
async fn health(State(p): State<Probe>) -> (StatusCode, Json<serde_json::Value>) {
    let nats_ok = p.nats.connection_state() == async_nats::connection::State::Connected;
    let mut conn = p.redis.clone();
    let ping = redis::cmd("PING");
    let redis_ok = matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            ping.query_async::<String>(&mut conn)
        )
        .await,
        Ok(Ok(_))
    );
    let status = if nats_ok && redis_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "down" };
    (
        status,
        Json(json!({"nats": word(nats_ok), "redis": word(redis_ok)})),
    )
}

/// Serves until `shutdown`; logs the bound address (port 0 picks a free one).
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    nats: async_nats::Client,
    redis: Redis,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(Probe {
            metrics: handle,
            nats,
            redis,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
