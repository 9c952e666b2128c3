//! `candlepipe.analysis.run` / `candlepipe.jobs.analyze`: the request, its validated form and
//! the reply (SPEC §3).

use std::collections::BTreeMap;

use candlepipe_indicators::{Signal, Trend, Volatility};
use serde::{Deserialize, Serialize};

use crate::{ErrorCode, Exchange, Interval, Symbol, WireError};

pub const DEFAULT_LOOKBACK: i64 = 200;
pub const MAX_SYMBOLS: usize = 100;
/// Header of an async job naming the subject its result is published on.
pub const REPLY_HEADER: &str = "Candlepipe-Reply";
/// Header of the async result: the job id, under which the result is stored in Redis.
pub const JOB_ID_HEADER: &str = "Candlepipe-Job-Id";

/// What an analysis answers: the reply, or an error for the whole request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Done(AnalysisReply),
    Failed(crate::request::ErrorReply),
}

/// `candlepipe.analysis.result`: an async job's answer by its id (kept 24 h), waited for up
/// to `timeout_ms` while the job runs. A producer whose retried job was taken as a
/// duplicate (JetStream's `Nats-Msg-Id` window) gets the first one's answer here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultRequest {
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisRequest {
    pub exchange: String,
    pub symbols: Vec<String>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub lookback: Option<i64>,
    #[serde(default)]
    pub llm: Option<bool>,
    /// How long the producer waits for the analysis, in ms (default and cap: configuration).
    /// The candles it needs are asked for with what remains of it.
    #[serde(default)]
    pub timeout_ms: Option<i64>,
}

/// A request that passed validation. Symbols that are not valid are kept as errors, so the
/// rest are still analysed.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisQuery {
    pub exchange: Exchange,
    pub interval: Interval,
    pub lookback: u32,
    pub llm: bool,
    /// How long the producer waits; `None` leaves it to the configured default.
    pub timeout_ms: Option<i64>,
    /// In request order, without repeats.
    pub symbols: Vec<Symbol>,
    pub invalid: BTreeMap<String, WireError>,
}

impl AnalysisRequest {
    pub fn validate(&self) -> Result<AnalysisQuery, WireError> {
        let exchange = Exchange::parse(&self.exchange)?;
        let interval = Interval::parse(self.interval.as_deref().unwrap_or("1h"))?;
        if exchange.source_interval(interval).is_none() {
            return Err(WireError::new(
                ErrorCode::UnsupportedInterval,
                format!("{exchange} does not serve {interval} candles"),
            ));
        }
        let lookback = self.lookback.unwrap_or(DEFAULT_LOOKBACK);
        if !(1..=crate::request::MAX_LIMIT).contains(&lookback) {
            return Err(WireError::new(
                ErrorCode::LimitOutOfRange,
                format!("lookback must be 1..=1000, got {lookback}"),
            ));
        }
        if self.symbols.is_empty() || self.symbols.len() > MAX_SYMBOLS {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                format!(
                    "symbols must list 1..={MAX_SYMBOLS} symbols, got {}",
                    self.symbols.len()
                ),
            ));
        }
        if let Some(t) = self.timeout_ms.filter(|t| *t < 1) {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                format!("timeout_ms must be at least 1, got {t}"),
            ));
        }
        let mut symbols = Vec::new();
        let mut invalid = BTreeMap::new();
        for raw in &self.symbols {
            match Symbol::parse(raw) {
                Ok(s) if !symbols.contains(&s) => symbols.push(s),
                Ok(_) => {}
                Err(e) => {
                    invalid.insert(raw.clone(), e);
                }
            }
        }
        Ok(AnalysisQuery {
            exchange,
            interval,
            lookback: lookback as u32,
            llm: self.llm.unwrap_or(false),
            timeout_ms: self.timeout_ms,
            symbols,
            invalid,
        })
    }
}

/// Prices are decimal strings at the scale of the last close; ratios are numbers. A field
/// is null when the series is too short for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolAnalysis {
    /// Open time of the newest candle analysed, and how many candles were.
    pub last_t: i64,
    pub candles: u32,
    pub last_close: String,
    pub trend: Trend,
    pub volatility: Option<Volatility>,
    pub rsi14: Option<f64>,
    pub ema20: Option<String>,
    pub ema50: Option<String>,
    pub atr14: Option<String>,
    pub atr_pct: Option<f64>,
    pub support: Vec<String>,
    pub resistance: Vec<String>,
    pub signal: Signal,
    pub commentary: Option<String>,
    pub llm: Option<LlmNote>,
}

/// Why the commentary is missing; the wire names are the snake_case variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmSkip {
    /// No LLM endpoint configured, or no price for its model.
    NotConfigured,
    /// Today's cluster-wide budget is spent.
    BudgetExceeded,
    /// The cluster's RPM/TPM limit, or the provider's 429.
    RateLimited,
    /// The provider failed (5xx, timeout, transport).
    Unavailable,
    /// The provider answered twice without the JSON asked for.
    InvalidOutput,
}

/// What the LLM did for one symbol. Tokens and cost are what this request spent: zero for
/// a cached answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmNote {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    pub cached: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<LlmSkip>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageTotals {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisReply {
    pub ok: bool,
    pub exchange: Exchange,
    pub interval: Interval,
    pub results: BTreeMap<String, SymbolAnalysis>,
    pub errors: BTreeMap<String, WireError>,
    pub usage: UsageTotals,
}

impl AnalysisReply {
    /// Sums the LLM notes' tokens and cost.
    pub fn total_usage(results: &BTreeMap<String, SymbolAnalysis>) -> UsageTotals {
        results
            .values()
            .filter_map(|r| r.llm.as_ref())
            .fold(UsageTotals::default(), |u, n| UsageTotals {
                prompt_tokens: u.prompt_tokens + n.prompt_tokens,
                completion_tokens: u.completion_tokens + n.completion_tokens,
                cost_usd: u.cost_usd + n.cost_usd,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(symbols: &[&str]) -> AnalysisRequest {
        AnalysisRequest {
            exchange: "binance".into(),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn bad_symbols_are_per_symbol_errors() {
        let q = req(&["BTC/USDT", "BTC.USDT", "ETH/USDT", "BTC/USDT"])
            .validate()
            .unwrap();
        assert_eq!(q.symbols.len(), 2);
        assert_eq!(q.invalid["BTC.USDT"].code, ErrorCode::InvalidSymbol);
        assert_eq!((q.interval, q.lookback, q.llm), (Interval::H1, 200, false));
    }

    #[test]
    fn whole_request_errors() {
        let code = |r: AnalysisRequest| r.validate().unwrap_err().code;
        assert_eq!(code(req(&[])), ErrorCode::BadRequest);
        let mut r = req(&["BTC/USDT"]);
        r.lookback = Some(1001);
        assert_eq!(code(r), ErrorCode::LimitOutOfRange);
        let mut r = req(&["BTC/USD"]);
        r.exchange = "coinbase".into();
        r.interval = Some("2m".into());
        assert_eq!(code(r), ErrorCode::UnsupportedInterval);
        let mut r = req(&["BTC/USD"]);
        r.exchange = "ftx".into();
        assert_eq!(code(r), ErrorCode::UnknownExchange);
        let mut r = req(&["BTC/USDT"]);
        r.timeout_ms = Some(0);
        assert_eq!(code(r), ErrorCode::BadRequest);
    }
}
