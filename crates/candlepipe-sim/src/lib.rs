//! `candlepipe sim`: a local stand-in for the exchanges' candle endpoints, in their real wire
//! formats, with a request log and injectable faults. For demos and tests only.
//!
//! - Binance  `GET /api/v3/klines`, `GET /api/v3/exchangeInfo`
//! - Coinbase `GET /products/{BASE-QUOTE}/candles`, `GET /products`, `GET /currencies`
//! - Kraken   `GET /0/public/OHLC`, `GET /0/public/Trades`, `GET /0/public/AssetPairs`,
//!   `GET /0/public/Assets`
//! - streams  Binance's combined kline stream (`/stream`), Kraken's WebSocket v2 `ohlc`
//!   (`/v2`), Coinbase's Exchange feed `matches`/`heartbeat` (`/`), consistent with the
//!   REST candles
//!
//! The market lists hold the majors in five quotes and `TEST0`…`TEST1999` in USDT and USD.
//! - an OpenAI-compatible LLM: `GET /v1/models`, `POST /v1/chat/completions` (with `usage`)
//! - control  `GET /sim/stats`, `POST /sim/faults/{exchange|llm}`, `POST /sim/reset`,
//!   `GET /sim/trades/{exchange}?symbol=BASE/QUOTE&t=…` (the trades so far of the 1m
//!   interval opening at `t`: what every answer is checked against)
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod archive;
mod binance;
mod coinbase;
pub mod faults;
mod kraken;
mod llm;
pub mod market;
mod streams;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use candlepipe_core::{now_ms, Exchange};

/// The target name of the simulated LLM in `/sim/stats` and `/sim/faults/llm`.
pub const LLM: &str = "llm";
/// Binance's public archive of klines: its own log and faults.
pub const ARCHIVE: &str = "binance_archive";

pub use faults::{Fault, FaultConfig, FaultMode, RateLimit, RequestEvent, RequestLog, StreamFault};

/// Shared state per target (`binance`, `coinbase`, `kraken`, `llm`). The lock is std's: it
/// is never held across an `.await`.
#[derive(Clone, Default)]
pub struct Sim {
    inner: Arc<Mutex<BTreeMap<&'static str, PerTarget>>>,
}

#[derive(Default)]
struct PerTarget {
    log: RequestLog,
    config: FaultConfig,
    /// When the config was set (ms): stream faults apply to connections older than this.
    set_at: i64,
}

/// What a handler does after the gate.
enum Admit {
    Serve,
    Malformed,
    NoChoices,
    Refuse(Response),
}

/// What a handler must do before (or instead of) answering with data.
enum Gate {
    Serve,
    /// The LLM answers, but not with the JSON it was asked for.
    Malformed,
    /// The LLM answers 200 with usage and no choices.
    NoChoices,
    Answer(Response),
    Hang,
}

impl Sim {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, PerTarget>> {
        // A panic while holding this lock leaves plain counters behind; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// For an exchange's candle endpoint: `Some(answer)` instead of data, or `None` to
    /// serve data.
    async fn gate(&self, target: &'static str, key: &str, query: &str) -> Option<Response> {
        match self.admit(target, key, Some(query)).await {
            Admit::Refuse(r) => Some(r),
            Admit::Serve | Admit::Malformed | Admit::NoChoices => None,
        }
    }

    /// Like [`Sim::gate`], for an exchange's market list (logged apart from candle requests).
    async fn gate_list(&self, target: &'static str, key: &str) -> Option<Response> {
        match self.admit(target, key, None).await {
            Admit::Refuse(r) => Some(r),
            Admit::Serve | Admit::Malformed | Admit::NoChoices => None,
        }
    }

    /// Logs the request (`query`: a candle or LLM request's query; `None` for a market
    /// list), applies latency, the rate limit and any fault. `key` is what a fault's
    /// `symbol` matches: the native symbol, the market list's name, or the LLM's model.
    async fn admit(&self, target: &'static str, key: &str, query: Option<&str>) -> Admit {
        let now = now_ms();
        let (latency, gate) = {
            let mut all = self.lock();
            let st = all.entry(target).or_default();
            let in_second = st.log.record(query, now.div_euclid(1000));
            let mut gate = Gate::Serve;
            if let Some(rl) = &st.config.rate_limit {
                if in_second > rl.rps {
                    gate = Gate::Answer(rate_limited(rl.status, rl.retry_after_s));
                }
            }
            if matches!(gate, Gate::Serve) {
                if let Some(f) = st.config.fault.as_mut() {
                    let matches = f.symbol.as_deref().is_none_or(|s| s == key);
                    let left = f.times.is_none_or(|n| n > 0);
                    if matches && left {
                        if let Some(n) = f.times.as_mut() {
                            *n -= 1;
                        }
                        gate = match f.mode {
                            FaultMode::Timeout => Gate::Hang,
                            FaultMode::Malformed if target == LLM => Gate::Malformed,
                            FaultMode::NoChoices if target == LLM => Gate::NoChoices,
                            FaultMode::NoChoices => Gate::Serve,
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
                Gate::Serve | Gate::Malformed | Gate::NoChoices => 200,
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
            Gate::Serve => Admit::Serve,
            Gate::Malformed => Admit::Malformed,
            Gate::NoChoices => Admit::NoChoices,
            Gate::Answer(r) => Admit::Refuse(r),
            Gate::Hang => {
                tokio::time::sleep(Duration::from_secs(600)).await;
                Admit::Refuse(StatusCode::GATEWAY_TIMEOUT.into_response())
            }
        }
    }

    pub fn set_faults(&self, target: &'static str, config: FaultConfig) {
        let mut all = self.lock();
        let t = all.entry(target).or_default();
        t.config = config;
        t.set_at = now_ms();
    }

    /// For a stream connection opened at `opened`: the update period and the fault that
    /// applies to it, if any.
    fn stream_settings(&self, target: &'static str, opened: i64) -> (u64, Option<StreamFault>) {
        let all = self.lock();
        let Some(t) = all.get(target) else {
            return (1000, None);
        };
        let fault = t.config.stream_fault.filter(|_| t.set_at >= opened);
        (t.config.stream_tick_ms.unwrap_or(1000).max(1), fault)
    }

    /// Whether the stream refuses to subscribe `native` (`stream_refuse`).
    fn stream_refuses(&self, target: &'static str, native: &str) -> bool {
        self.lock()
            .get(target)
            .is_some_and(|t| t.config.stream_refuse.iter().any(|r| r == native))
    }

    /// Counts stream activity: connections, subscriptions, candle messages.
    fn count_stream(
        &self,
        target: &'static str,
        connections: u64,
        subscriptions: u64,
        messages: u64,
    ) {
        let mut all = self.lock();
        let log = &mut all.entry(target).or_default().log;
        log.stream_connections += connections;
        log.stream_subscriptions += subscriptions;
        log.stream_messages += messages;
    }

    pub fn stats(&self) -> BTreeMap<&'static str, RequestLog> {
        let all = self.lock();
        Exchange::ALL
            .iter()
            .map(|e| e.as_str())
            .chain([LLM, ARCHIVE])
            .map(|t| (t, all.get(t).map(|s| s.log.clone()).unwrap_or_default()))
            .collect()
    }

    /// How an exchange publishes candles.
    fn habits(&self, target: &'static str) -> market::Habits {
        self.lock()
            .get(target)
            .map(|t| market::Habits {
                late_ms: t.config.late_ms as i64,
                quiet_one_in: t.config.quiet_one_in.filter(|n| *n > 0),
                stream_differs: t.config.stream_differs,
                candles_lag_ms: t.config.candles_lag_ms as i64,
            })
            .unwrap_or_default()
    }

    /// The archive's missing files and bad checksums.
    fn archive_faults(&self) -> FaultConfig {
        self.lock()
            .get(ARCHIVE)
            .map(|t| FaultConfig {
                missing: t.config.missing.clone(),
                bad_checksum: t.config.bad_checksum.clone(),
                ..Default::default()
            })
            .unwrap_or_default()
    }

    /// Whether the LLM counts a token per byte.
    fn worst_tokenizer(&self) -> bool {
        self.lock()
            .get(LLM)
            .is_some_and(|t| t.config.worst_tokenizer)
    }

    /// Adds an LLM answer's `usage` to the log.
    fn count_usage(&self, prompt: u64, completion: u64) {
        let mut all = self.lock();
        let log = &mut all.entry(LLM).or_default().log;
        log.prompt_tokens += prompt;
        log.completion_tokens += completion;
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
        .route("/api/v3/exchangeInfo", get(binance::exchange_info))
        .route("/products", get(coinbase::products))
        .route("/currencies", get(coinbase::currencies))
        .route("/products/{product}/candles", get(coinbase::candles))
        .route("/products/{product}/trades", get(coinbase::trades))
        .route("/0/public/OHLC", get(kraken::ohlc))
        .route("/0/public/AssetPairs", get(kraken::asset_pairs))
        .route("/0/public/Assets", get(kraken::assets))
        .route("/0/public/Trades", get(kraken::trades))
        .route("/stream", get(streams::binance))
        .route("/v2", get(streams::kraken))
        .route("/", get(streams::coinbase))
        .route("/v1/models", get(llm::models))
        .route("/v1/chat/completions", post(llm::chat_completions))
        .route("/sim/stats", get(stats))
        .route("/sim/faults/{exchange}", post(set_faults))
        .route("/sim/reset", post(reset))
        .route("/sim/trades/{exchange}", get(minute_trades))
        .route(
            "/data/spot/{kind}/klines/{symbol}/{interval}/{file}",
            get(archive::file),
        )
        .with_state(sim)
}

async fn stats(State(sim): State<Sim>) -> Json<BTreeMap<&'static str, RequestLog>> {
    Json(sim.stats())
}

async fn set_faults(
    State(sim): State<Sim>,
    Path(target): Path<String>,
    Json(config): Json<FaultConfig>,
) -> Response {
    let target = match Exchange::parse(&target) {
        Ok(ex) => ex.as_str(),
        Err(_) if target == LLM => LLM,
        Err(_) if target == ARCHIVE => ARCHIVE,
        Err(e) => return (StatusCode::NOT_FOUND, e.message).into_response(),
    };
    tracing::info!(target, ?config, "sim faults set");
    sim.set_faults(target, config);
    StatusCode::NO_CONTENT.into_response()
}

async fn reset(State(sim): State<Sim>) -> StatusCode {
    sim.reset();
    StatusCode::NO_CONTENT
}

#[derive(serde::Deserialize)]
struct MinuteQuery {
    symbol: String,
    t: candlepipe_core::Millis,
}

/// The record of one 1m interval so far: whether it is quiet (no trades under the
/// exchange's habits), and its trades up to now, oldest first. Benchmarks check each answer
/// against it ("holds every trade up to `max_age_ms` before it").
async fn minute_trades(
    State(sim): State<Sim>,
    Path(target): Path<String>,
    axum::extract::Query(q): axum::extract::Query<MinuteQuery>,
) -> Response {
    let exchange = match Exchange::parse(&target) {
        Ok(ex) => ex,
        Err(e) => return (StatusCode::NOT_FOUND, e.message).into_response(),
    };
    let Some((base, quote)) = q
        .symbol
        .split_once('/')
        .filter(|(b, q)| market::is_listed(b, q))
    else {
        return (StatusCode::NOT_FOUND, "not listed").into_response();
    };
    let series = market::Series::new(exchange.as_str(), base, quote, 60_000);
    let t = q.t.div_euclid(60_000) * 60_000;
    let quiet = series.quiet(t, sim.habits(exchange.as_str()));
    let trades: Vec<serde_json::Value> = match quiet {
        true => Vec::new(),
        false => series
            .trades(t - 1, (t + 59_999).min(now_ms()))
            .iter()
            .map(|tr| {
                serde_json::json!({"t": tr.t, "price": tr.price.to_string(), "size": tr.size.to_string()})
            })
            .collect(),
    };
    Json(serde_json::json!({"quiet": quiet, "trades": trades})).into_response()
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
