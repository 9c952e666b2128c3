//! What the sim is told to do wrong, per exchange, and the request log tests read back.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// `POST /sim/faults` body for one exchange; it replaces that exchange's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Added to every answer.
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub fault: Option<Fault>,
    /// LLM only: count a token per byte of prompt and answer, as a tokenizer at its worst
    /// (long runs of digits), instead of about four bytes a token.
    #[serde(default)]
    pub worst_tokenizer: bool,
    /// Exchanges: candles are published this long after their interval closes. Binance and
    /// Coinbase leave a closed candle out until then; Kraken rolls over to a new row this
    /// late, so its last row (uncommitted) is an interval that has already closed.
    #[serde(default)]
    pub late_ms: u64,
    /// Exchanges: one interval in this many has no trades. Coinbase leaves such intervals
    /// out, as it does; Binance and Kraken serve a zero-volume row at the previous close
    /// (their streams send nothing for it).
    #[serde(default)]
    pub quiet_one_in: Option<u32>,
    /// Exchanges' WebSocket streams: how often each subscription gets an update (ms,
    /// default 1000).
    #[serde(default)]
    pub stream_tick_ms: Option<u64>,
    /// Exchanges' WebSocket streams: what goes wrong on the connections open when this is
    /// set (connections opened after it are healthy).
    #[serde(default)]
    pub stream_fault: Option<StreamFault>,
    /// Exchanges' WebSocket streams: the symbols (as the stream names them: Kraken
    /// `XRP/USD`, Coinbase `XRP-USD`) a subscribe is refused for, though REST lists them
    /// (Kraken refuses each on its own; Coinbase's `error` refuses the whole subscribe).
    #[serde(default)]
    pub stream_refuse: Vec<String>,
    /// Exchanges' WebSocket streams: values that differ from REST's record (Coinbase: every
    /// trade with twice its size), so that REST's confirmations correct them.
    #[serde(default)]
    pub stream_differs: bool,
    /// Coinbase: its REST candles hold only the trades at least this old (ms), as Coinbase's
    /// candles lag its trades; its REST trades have them all.
    #[serde(default)]
    pub candles_lag_ms: u64,
    /// Binance's archive: file stems (`BTCUSDT-1m-2026-11-20`) it does not have.
    #[serde(default)]
    pub missing: Vec<String>,
    /// Binance's archive: file stems whose `.CHECKSUM` does not match the file.
    #[serde(default)]
    pub bad_checksum: Vec<String>,
}

/// A WebSocket fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamFault {
    /// Close the connection.
    Drop,
    /// Send nothing more, keeping the socket open (pings are still answered).
    Silent,
    /// Leave out closing updates (Binance's `x:true`). Kraken has none: its last update of
    /// an interval is just its last trade's, which the sim always sends.
    SkipClose,
    /// Binance's `serverShutdown`, then the connection closes 3 s later.
    ServerShutdown,
    /// Coinbase: leave out the `match` messages of the next 12 s (heartbeats still say the
    /// last `trade_id`), so the trade ids jump.
    LoseTrades,
}

/// Past `rps` requests in one wall-clock second, answer `status` (429, or 418 for Binance's
/// ban) with `Retry-After: retry_after_s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub rps: u64,
    #[serde(default = "one")]
    pub retry_after_s: u64,
    #[serde(default = "too_many")]
    pub status: u16,
}

fn one() -> u64 {
    1
}
fn too_many() -> u16 {
    429
}
fn unavailable() -> u16 {
    503
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// Answer `status` with a short error body.
    Status,
    /// Never answer (the client's timeout fires).
    Timeout,
    /// Answer 200 with a body that is not JSON (for the LLM: a completion whose content is
    /// not the JSON that was asked for).
    Malformed,
    /// LLM only: answer 200 with `usage` (billed) but no `choices`.
    NoChoices,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub mode: FaultMode,
    #[serde(default = "unavailable")]
    pub status: u16,
    /// Only requests for this native symbol (`BTCUSDT`, `BTC-USD`, `XBTUSD`), for the
    /// market or currency list (`exchangeInfo`, `products`, `AssetPairs`, `currencies`,
    /// `Assets`), or for the LLM this model;
    /// all if unset.
    #[serde(default)]
    pub symbol: Option<String>,
    /// Fail this many matching requests, then recover; forever if unset.
    #[serde(default)]
    pub times: Option<u32>,
    /// With mode `status` 429/418: the `Retry-After` seconds sent.
    #[serde(default)]
    pub retry_after_s: Option<u64>,
}

/// What one target (an exchange, or `llm`) has seen.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestLog {
    /// Candle (or LLM) requests.
    pub requests: u64,
    /// Market- and currency-list requests (`exchangeInfo`, `products`, `AssetPairs`,
    /// `currencies`, `Assets`); they count towards
    /// `per_second`, `events` and the rate limit like any other.
    pub market_lists: u64,
    /// LLM only: the `usage` the sim reported, summed over every answer.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Candle requests' query strings, oldest first (the last 10,000).
    pub queries: VecDeque<String>,
    /// Requests per wall-clock second (Unix seconds → count), the last 600 seconds.
    pub per_second: BTreeMap<i64, u64>,
    /// Answers that were 429 or 418.
    pub rate_limited: u64,
    /// Each request's arrival (ms) and the status the sim chose before serving data
    /// (200 when it served normally), the last 10,000.
    pub events: VecDeque<RequestEvent>,
    /// WebSocket connections opened.
    pub stream_connections: u64,
    /// WebSocket subscribe requests (one per symbol and interval).
    pub stream_subscriptions: u64,
    /// WebSocket candle messages sent.
    pub stream_messages: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEvent {
    pub t: i64,
    pub status: u16,
}

const MAX_QUERIES: usize = 10_000;
const MAX_SECONDS: usize = 600;

impl RequestLog {
    /// Records one request (`None`: a market list); returns how many came in its second
    /// so far.
    pub fn record(&mut self, query: Option<&str>, second: i64) -> u64 {
        match query {
            Some(query) => {
                self.requests += 1;
                if self.queries.len() == MAX_QUERIES {
                    self.queries.pop_front();
                }
                self.queries.push_back(query.to_string());
            }
            None => self.market_lists += 1,
        }
        let n = self.per_second.entry(second).or_insert(0);
        *n += 1;
        let n = *n;
        while self.per_second.len() > MAX_SECONDS {
            self.per_second.pop_first();
        }
        n
    }

    pub fn outcome(&mut self, t: i64, status: u16) {
        if status == 429 || status == 418 {
            self.rate_limited += 1;
        }
        if self.events.len() == MAX_QUERIES {
            self.events.pop_front();
        }
        self.events.push_back(RequestEvent { t, status });
    }
}
