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

/// Registers every metric the alert rules (`ops/prometheus/rules.yml`) read, at zero, so
/// that the rules evaluate from the first scrape and not only after the first request,
/// dead letter or LLM call. LLM series are made for the configured providers only.
pub fn zero_the_rules_metrics(cfg: &crate::config::Config) {
    use candlepipe_core::reply_to::Refused;
    use candlepipe_core::{ErrorCode, Exchange, Source};
    for source in [Source::L1, Source::Redis, Source::Exchange, Source::Stream] {
        metrics::counter!("candlepipe_requests_total", "source" => source.as_str(), "stale" => "false", "code" => "ok").absolute(0);
        let _registered =
            metrics::histogram!("candlepipe_request_duration_seconds", "source" => source.as_str());
    }
    metrics::counter!("candlepipe_requests_total", "source" => "none", "stale" => "false", "code" => ErrorCode::Timeout.as_str()).absolute(0);
    for ex in Exchange::ALL {
        for outcome in ["ok", "rate_limited", "banned"] {
            metrics::counter!("candlepipe_exchange_requests_total", "exchange" => ex.as_str(), "outcome" => outcome).absolute(0);
        }
        metrics::gauge!("candlepipe_breaker_state", "exchange" => ex.as_str()).set(0.0);
    }
    metrics::gauge!("candlepipe_dlq_messages").set(0.0);
    for reason in [Refused::NotInbox, Refused::Malformed] {
        metrics::counter!("candlepipe_refused_replies_total", "reason" => reason.reason())
            .absolute(0);
    }
    metrics::gauge!("candlepipe_llm_spent_today_usd").set(0.0);
    metrics::gauge!("candlepipe_llm_daily_budget_usd").set(cfg.llm.limits.daily_budget_usd);
    for p in [&cfg.llm.primary, &cfg.llm.canary].into_iter().flatten() {
        let (provider, model) = (p.name.clone(), p.model.clone());
        metrics::counter!("candlepipe_llm_requests_total", "provider" => provider.clone(), "model" => model.clone(), "outcome" => "ok").absolute(0);
        metrics::counter!("candlepipe_llm_cost_nanodollars_total", "provider" => provider.clone(), "model" => model.clone()).absolute(0);
        for kind in ["prompt", "completion"] {
            metrics::counter!("candlepipe_llm_tokens_total", "provider" => provider.clone(), "model" => model.clone(), "kind" => kind).absolute(0);
        }
    }
}

/// The stream metrics the dashboard and alerts read, at zero, for the exchanges that
/// stream (a role without streams shows flat lines, not "no data").
pub fn zero_the_stream_metrics() {
    use candlepipe_core::Exchange;
    for ex in Exchange::ALL {
        let ex = ex.as_str();
        metrics::gauge!("candlepipe_stream_connections", "exchange" => ex).set(0.0);
        metrics::gauge!("candlepipe_stream_subscriptions", "exchange" => ex).set(0.0);
        metrics::counter!("candlepipe_stream_messages_total", "exchange" => ex).absolute(0);
        metrics::counter!("candlepipe_stream_backfills_total", "exchange" => ex).absolute(0);
        metrics::counter!("candlepipe_stream_confirmations_total", "exchange" => ex).absolute(0);
        metrics::counter!("candlepipe_stream_fenced_writes_total", "exchange" => ex).absolute(0);
        metrics::counter!("candlepipe_stream_reconnects_total", "exchange" => ex, "reason" => "connection_error").absolute(0);
        let _registered = metrics::histogram!("candlepipe_stream_lag_seconds", "exchange" => ex);
    }
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
