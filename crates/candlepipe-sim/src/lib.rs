//! `candlepipe sim`: a local stand-in for the exchanges' candle endpoints, in their real wire
//! formats, with a request log and injectable faults. For demos and tests only.
//!
//! - Binance  `GET /api/v3/klines`
//! - Coinbase `GET /products/{BASE-QUOTE}/candles`
//! - Kraken   `GET /0/public/OHLC`
//! - control  `GET /sim/stats`, `POST /sim/faults/{exchange}`, `POST /sim/reset`
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod binance;
mod coinbase;
pub mod faults;
mod kraken;
pub mod market;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use candlepipe_core::{now_ms, Exchange};

pub use faults::{ExchangeLog, Fault, FaultConfig, FaultMode, RateLimit, RequestEvent};

/// Shared state. The lock is std's: it is never held across an `.await`.
#[derive(Clone, Default)]
pub struct Sim {
    inner: Arc<Mutex<BTreeMap<Exchange, PerExchange>>>,
}

#[derive(Default)]
struct PerExchange {
    log: ExchangeLog,
    config: FaultConfig,
}

/// What a handler must do before (or instead of) answering with data.
enum Gate {
    Serve,
    Answer(Response),
    Hang,
}

impl Sim {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Exchange, PerExchange>> {
        // A panic while holding this lock leaves plain counters behind; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs the request, applies latency, the rate limit and any fault.
    async fn gate(&self, ex: Exchange, native_symbol: &str, query: &str) -> Option<Response> {
        let now = now_ms();
        let (latency, gate) = {
            let mut all = self.lock();
            let st = all.entry(ex).or_default();
            let in_second = st.log.record(query, now.div_euclid(1000));
            let mut gate = Gate::Serve;
            if let Some(rl) = &st.config.rate_limit {
                if in_second > rl.rps {
                    gate = Gate::Answer(rate_limited(rl.status, rl.retry_after_s));
                }
            }
            if matches!(gate, Gate::Serve) {
                if let Some(f) = st.config.fault.as_mut() {
                    let matches = f.symbol.as_deref().is_none_or(|s| s == native_symbol);
                    let left = f.times.is_none_or(|n| n > 0);
                    if matches && left {
                        if let Some(n) = f.times.as_mut() {
                            *n -= 1;
                        }
                        gate = match f.mode {
                            FaultMode::Timeout => Gate::Hang,
                            FaultMode::Malformed => {
                                Gate::Answer((StatusCode::OK, "{\"garbage\":[1,2").into_response())
                            }
                            FaultMode::Status if f.status == 429 || f.status == 418 => {
                                Gate::Answer(rate_limited(f.status, f.retry_after_s.unwrap_or(1)))
                            }
                            FaultMode::Status => Gate::Answer(
                                (
                                    StatusCode::from_u16(f.status)
                                        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                                    "{\"message\":\"simulated failure\"}",
                                )
                                    .into_response(),
                            ),
                        };
                    }
                }
            }
            let status = match &gate {
                Gate::Serve => 200,
                Gate::Answer(r) => r.status().as_u16(),
                Gate::Hang => 504,
            };
            st.log.outcome(now, status);
            (st.config.latency_ms, gate)
        };
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        match gate {
            Gate::Serve => None,
            Gate::Answer(r) => Some(r),
            Gate::Hang => {
                tokio::time::sleep(Duration::from_secs(600)).await;
                Some(StatusCode::GATEWAY_TIMEOUT.into_response())
            }
        }
    }

    pub fn set_faults(&self, ex: Exchange, config: FaultConfig) {
        self.lock().entry(ex).or_default().config = config;
    }

    pub fn stats(&self) -> BTreeMap<Exchange, ExchangeLog> {
        let all = self.lock();
        Exchange::ALL
            .iter()
            .map(|e| (*e, all.get(e).map(|s| s.log.clone()).unwrap_or_default()))
            .collect()
    }

    pub fn reset(&self) {
        self.lock().clear();
    }
}

fn rate_limited(status: u16, retry_after_s: u64) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    (
        status,
        [(header::RETRY_AFTER, retry_after_s.to_string())],
        "{\"code\":-1003,\"msg\":\"Too many requests; simulated limit.\"}",
    )
        .into_response()
}

fn json_body(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub fn router(sim: Sim) -> Router {
    Router::new()
        .route("/api/v3/klines", get(binance::klines))
        .route("/products/{product}/candles", get(coinbase::candles))
        .route("/0/public/OHLC", get(kraken::ohlc))
        .route("/sim/stats", get(stats))
        .route("/sim/faults/{exchange}", post(set_faults))
        .route("/sim/reset", post(reset))
        .with_state(sim)
}

async fn stats(State(sim): State<Sim>) -> Json<BTreeMap<Exchange, ExchangeLog>> {
    Json(sim.stats())
}

async fn set_faults(
    State(sim): State<Sim>,
    Path(exchange): Path<String>,
    Json(config): Json<FaultConfig>,
) -> Response {
    match Exchange::parse(&exchange) {
        Ok(ex) => {
            tracing::info!(exchange = %ex, ?config, "sim faults set");
            sim.set_faults(ex, config);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::NOT_FOUND, e.message).into_response(),
    }
}

async fn reset(State(sim): State<Sim>) -> StatusCode {
    sim.reset();
    StatusCode::NO_CONTENT
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sim: Sim,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown)
        .await
}
