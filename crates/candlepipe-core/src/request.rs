//! `candlepipe.candles.get`: the request as sent, its validated form, and the reply.

use serde::{Deserialize, Serialize};

use crate::{Candle, ErrorCode, Exchange, Interval, Millis, SeriesKey, Symbol, WireError};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// The request as decoded from the wire. Strings are validated by [`CandlesRequest::validate`]
/// so that each mistake gets its own error code; a wrong JSON type is `bad_request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CandlesRequest {
    pub exchange: String,
    pub symbol: String,
    pub interval: String,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub end: Option<Millis>,
    #[serde(default)]
    pub max_age_ms: Option<i64>,
    #[serde(default)]
    pub allow_stale: Option<bool>,
    /// How long the producer waits for the answer, in ms (default and cap: configuration).
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    /// `"none"` (default) or `"previous"`.
    #[serde(default)]
    pub fill_gaps: Option<String>,
}

impl CandlesRequest {
    /// The newest `limit` candles (the forming one included) at the default freshness.
    pub fn latest(exchange: &str, symbol: &str, interval: &str, limit: i64) -> CandlesRequest {
        CandlesRequest {
            exchange: exchange.into(),
            symbol: symbol.into(),
            interval: interval.into(),
            limit: Some(limit),
            ..CandlesRequest::default()
        }
    }
}

/// What to do with open times the exchange has no candle for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum FillGaps {
    /// Leave them out; the reply lists them in `missing`.
    #[default]
    None,
    /// A zero-volume candle at the previous close, marked `synthetic`.
    Previous,
}

impl FillGaps {
    pub fn parse(s: &str) -> Result<FillGaps, WireError> {
        match s {
            "none" => Ok(FillGaps::None),
            "previous" => Ok(FillGaps::Previous),
            other => Err(WireError::new(
                ErrorCode::BadRequest,
                format!(
                    "fill_gaps must be \"none\" or \"previous\", got '{}'",
                    crate::exchange::truncate(other, 20)
                ),
            )),
        }
    }
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandleQuery {
    pub series: SeriesKey,
    pub limit: u32,
    /// Newest open time wanted; `Some` asks for a window of closed candles only.
    pub end: Option<Millis>,
    pub max_age_ms: Millis,
    /// The producer left `max_age_ms` to the default (which a streamed series raises to
    /// its stream's cadence, `STREAMED_MAX_AGE_MS` of the freshness rules).
    pub max_age_default: bool,
    pub allow_stale: bool,
    /// How long the producer waits; `None` leaves it to the configured default.
    pub timeout_ms: Option<Millis>,
    pub fill_gaps: FillGaps,
}

impl CandlesRequest {
    pub fn validate(&self) -> Result<CandleQuery, WireError> {
        let exchange = Exchange::parse(&self.exchange)?;
        let symbol = Symbol::parse(&self.symbol)?;
        let interval = Interval::parse(&self.interval)?;
        if exchange.source_interval(interval).is_none() {
            return Err(WireError::new(
                ErrorCode::UnsupportedInterval,
                format!("{exchange} does not serve {interval} candles"),
            ));
        }
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(WireError::new(
                ErrorCode::LimitOutOfRange,
                format!("limit must be 1..=1000, got {limit}"),
            ));
        }
        if let Some(end) = self.end {
            if end < 0 {
                return Err(WireError::new(
                    ErrorCode::BadRequest,
                    format!("end must be a non-negative open time in ms, got {end}"),
                ));
            }
        }
        let max_age_ms = match self.max_age_ms {
            Some(m) if m < 0 => {
                return Err(WireError::new(
                    ErrorCode::BadRequest,
                    format!("max_age_ms must not be negative, got {m}"),
                ))
            }
            Some(m) => m,
            None => default_max_age(interval),
        };
        let timeout_ms = match self.timeout_ms {
            Some(t) if t < 1 => {
                return Err(WireError::new(
                    ErrorCode::BadRequest,
                    format!("timeout_ms must be at least 1, got {t}"),
                ))
            }
            other => other,
        };
        let fill_gaps = match &self.fill_gaps {
            Some(f) => FillGaps::parse(f)?,
            None => FillGaps::None,
        };
        Ok(CandleQuery {
            series: SeriesKey::new(exchange, symbol, interval),
            limit: limit as u32,
            end: self.end,
            max_age_ms,
            max_age_default: self.max_age_ms.is_none(),
            allow_stale: self.allow_stale.unwrap_or(false),
            timeout_ms,
            fill_gaps,
        })
    }
}

/// interval/60, clamped to 1 s..60 s.
pub fn default_max_age(interval: Interval) -> Millis {
    (interval.millis() / 60).clamp(1_000, 60_000)
}

/// The open times a query needs, computed at time `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Oldest open time wanted.
    pub from: Millis,
    /// Newest open time wanted.
    pub to: Millis,
    /// Whether `to` is the still-forming candle (a "latest" query), which must be fresh.
    pub includes_open: bool,
}

impl CandleQuery {
    pub fn window(&self, now: Millis) -> Window {
        let step = self.series.interval.millis();
        let current = self.series.interval.open_of(now);
        let span = (self.limit as Millis - 1) * step;
        match self.end {
            None => Window {
                from: current - span,
                to: current,
                includes_open: true,
            },
            Some(end) => {
                let closed = crate::closing::closed_bound(self.series.interval, now);
                let to = self.series.interval.open_of(end).min(closed);
                Window {
                    from: to - span,
                    to,
                    includes_open: false,
                }
            }
        }
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    L1,
    Redis,
    Exchange,
    /// From the cache, kept fresh by the exchange's stream.
    Stream,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::L1 => "l1",
            Source::Redis => "redis",
            Source::Exchange => "exchange",
            Source::Stream => "stream",
        }
    }
}

/// A successful reply. `ok` is always true here; errors travel as [`ErrorReply`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandlesReply {
    pub ok: bool,
    pub exchange: Exchange,
    pub symbol: Symbol,
    pub interval: Interval,
    pub source: Source,
    pub stale: bool,
    /// False when the window holds open times that are neither a candle nor confirmed
    /// empty (beyond the exchange's history, not published yet).
    #[serde(default = "yes")]
    pub complete: bool,
    /// Open times in the window the exchange has no candle for.
    #[serde(default)]
    pub missing: Vec<Millis>,
    /// The interval the candles were built from, when the exchange does not serve this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregated_from: Option<Interval>,
    pub candles: Vec<Candle>,
}

fn yes() -> bool {
    true
}

/// The same reply, borrowing its candles, for encoding on the hot path.
#[derive(Debug, Serialize)]
pub struct CandlesReplyRef<'a> {
    pub ok: bool,
    pub exchange: Exchange,
    pub symbol: &'a Symbol,
    pub interval: Interval,
    pub source: Source,
    pub stale: bool,
    pub complete: bool,
    pub missing: &'a [Millis],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregated_from: Option<Interval>,
    pub candles: &'a [Candle],
}

/// `{"ok":false,"error":{...}}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub ok: bool,
    pub error: WireError,
}

impl ErrorReply {
    pub fn new(error: WireError) -> Self {
        ErrorReply { ok: false, error }
    }
}

/// Either kind of reply, for producers decoding what came back.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum AnyReply {
    Ok(CandlesReply),
    Err(ErrorReply),
}

impl AnyReply {
    pub fn into_result(self) -> Result<CandlesReply, WireError> {
        match self {
            AnyReply::Ok(r) => Ok(r),
            AnyReply::Err(e) => Err(e.error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Encoding;

    fn req(json: &str) -> Result<CandleQuery, ErrorCode> {
        let r: CandlesRequest = serde_json::from_str(json).map_err(|_| ErrorCode::BadRequest)?;
        r.validate().map_err(|e| e.code)
    }

    #[test]
    fn each_mistake_has_its_code() {
        let base = r#""exchange":"binance","symbol":"BTC/USDT","interval":"1m""#;
        assert!(req(&format!("{{{base}}}")).is_ok());
        let cases = [
            (
                r#"{"exchange":"ftx","symbol":"BTC/USDT","interval":"1m"}"#,
                ErrorCode::UnknownExchange,
            ),
            (
                r#"{"exchange":"binance","symbol":"BTC.USDT","interval":"1m"}"#,
                ErrorCode::InvalidSymbol,
            ),
            (
                r#"{"exchange":"binance","symbol":"BTC/USDT","interval":"2m"}"#,
                ErrorCode::UnsupportedInterval,
            ),
            (
                r#"{"exchange":"binance","symbol":"BTC/USDT","interval":"1m","fill_gaps":"next"}"#,
                ErrorCode::BadRequest,
            ),
            (
                r#"{"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":0}"#,
                ErrorCode::LimitOutOfRange,
            ),
            (
                r#"{"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":1001}"#,
                ErrorCode::LimitOutOfRange,
            ),
            (
                r#"{"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":"10"}"#,
                ErrorCode::BadRequest,
            ),
            (
                r#"{"exchange":7,"symbol":"BTC/USDT","interval":"1m"}"#,
                ErrorCode::BadRequest,
            ),
            (
                r#"{"symbol":"BTC/USDT","interval":"1m"}"#,
                ErrorCode::BadRequest,
            ),
            (
                r#"{"exchange":"binance","symbol":"BTC/USDT","interval":"1m","timeout_ms":0}"#,
                ErrorCode::BadRequest,
            ),
            (r#"not json"#, ErrorCode::BadRequest),
        ];
        for (json, code) in cases {
            assert_eq!(req(json).unwrap_err(), code, "{json}");
        }
    }

    #[test]
    fn defaults_follow_the_spec() {
        let q = req(r#"{"exchange":"binance","symbol":"BTC/USDT","interval":"1m"}"#).unwrap();
        assert_eq!(
            (q.limit, q.max_age_ms, q.allow_stale, q.timeout_ms),
            (100, 1_000, false, None)
        );
        let q = req(r#"{"exchange":"binance","symbol":"BTC/USDT","interval":"1d"}"#).unwrap();
        assert_eq!(q.max_age_ms, 60_000);
        let q = req(r#"{"exchange":"binance","symbol":"BTC/USDT","interval":"1h"}"#).unwrap();
        assert_eq!(q.max_age_ms, 60_000);
        let q = req(r#"{"exchange":"binance","symbol":"BTC/USDT","interval":"30m"}"#).unwrap();
        assert_eq!(q.max_age_ms, 30_000);
    }

    #[test]
    fn windows_end_at_the_open_candle_or_the_last_closed_one() {
        let q =
            req(r#"{"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":3}"#).unwrap();
        let w = q.window(600_000 + 5);
        assert_eq!((w.from, w.to, w.includes_open), (480_000, 600_000, true));
        let q = req(r#"{"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":2,"end":999999999}"#).unwrap();
        let w = q.window(600_000 + 5);
        assert_eq!((w.from, w.to, w.includes_open), (420_000, 480_000, false));
        let w = q.window(600_000 + 3_000);
        assert_eq!((w.from, w.to, w.includes_open), (480_000, 540_000, false));
    }

    #[test]
    fn replies_round_trip_in_both_encodings() {
        let reply = CandlesReply {
            ok: true,
            exchange: Exchange::Kraken,
            symbol: Symbol::parse("BTC/USD").unwrap(),
            interval: Interval::M1,
            source: Source::Redis,
            stale: false,
            complete: true,
            missing: vec![120_000],
            aggregated_from: Some(Interval::M1),
            candles: vec![Candle {
                t: 60_000,
                o: "91234.10".parse().unwrap(),
                h: "91300.00".parse().unwrap(),
                l: "91200.00".parse().unwrap(),
                c: "91250.55".parse().unwrap(),
                v: "12.34560000".parse().unwrap(),
                closed: true,
                synthetic: false,
                ..Default::default()
            }],
        };
        for enc in [Encoding::Json, Encoding::Msgpack] {
            let back: AnyReply = enc.decode(&enc.encode(&reply)).unwrap();
            assert_eq!(back.into_result().unwrap(), reply);
            let err = ErrorReply::new(WireError::new(ErrorCode::Timeout, "slow"));
            let back: AnyReply = enc.decode(&enc.encode(&err)).unwrap();
            assert_eq!(back.into_result().unwrap_err().code, ErrorCode::Timeout);
        }
        let json = String::from_utf8(Encoding::Json.encode(&reply)).unwrap();
        assert!(
            json.contains(r#""o":"91234.10""#) && json.contains(r#""v":"12.34560000""#),
            "{json}"
        );
        assert!(json.contains(r#""source":"redis""#));
    }
}
