//! `candlepipe.candles.watch` / `unwatch`: keep a series live from its exchange's stream.

use serde::{Deserialize, Serialize};

use crate::{Candle, ErrorCode, Exchange, Interval, SeriesKey, Symbol, WireError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRequest {
    pub exchange: String,
    pub symbol: String,
    pub interval: String,
}

impl WatchRequest {
    pub fn validate(&self) -> Result<SeriesKey, WireError> {
        let exchange = Exchange::parse(&self.exchange)?;
        let symbol = Symbol::parse(&self.symbol)?;
        let interval = Interval::parse(&self.interval)?;
        if !exchange.streams(interval) {
            return Err(WireError::new(
                ErrorCode::UnsupportedInterval,
                format!(
                    "{exchange} has no candle stream for {interval}; candles.get serves it from REST"
                ),
            ));
        }
        Ok(SeriesKey::new(exchange, symbol, interval))
    }
}

/// `{"ok":true,"subject":"candlepipe.candles.live.binance.BTC-USDT.1m","expires_in_ms":90000}`:
/// renew the watch before it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchReply {
    pub ok: bool,
    pub subject: String,
    pub expires_in_ms: u64,
}

/// A candle as published on a live subject: the candle, and on a closed one whether it is
/// the exchange's record. `confirmed:false` (built from trades, or closed by the stream's
/// word alone) is published again with `confirmed:true` once REST confirms it, and with
/// `revised:true` too when the record differs from what was published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveCandle {
    #[serde(flatten)]
    pub candle: Candle,
    /// On closed candles: whether this is the exchange's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// Published again because the record differs from what was published before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revised: bool,
}

impl LiveCandle {
    /// `candle` as published: `confirmed` is said of closed candles only.
    pub fn new(candle: &Candle, confirmed: bool, revised: bool) -> Self {
        LiveCandle {
            candle: candle.clone(),
            confirmed: candle.closed.then_some(confirmed),
            revised,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_streamed_series_can_be_watched() {
        let w = |ex: &str, iv: &str| WatchRequest {
            exchange: ex.into(),
            symbol: "BTC/USD".into(),
            interval: iv.into(),
        };
        assert!(w("binance", "3m").validate().is_ok());
        assert!(w("kraken", "1m").validate().is_ok());
        assert_eq!(
            w("kraken", "2h").validate().unwrap_err().code,
            ErrorCode::UnsupportedInterval
        );
        assert!(w("coinbase", "1m").validate().is_ok());
        assert_eq!(
            w("coinbase", "4h").validate().unwrap_err().code,
            ErrorCode::UnsupportedInterval
        );
        assert_eq!(
            w("ftx", "1m").validate().unwrap_err().code,
            ErrorCode::UnknownExchange
        );
    }

    #[test]
    fn live_candles_say_confirmed_on_closed_candles_and_revised_only_when_true() {
        use rust_decimal::Decimal;
        let d = Decimal::new(10010, 2);
        let mut c = Candle {
            t: 60_000,
            o: d,
            h: d,
            l: d,
            c: d,
            v: Decimal::new(5, 1),
            closed: false,
            synthetic: false,
            ..Default::default()
        };
        let forming = serde_json::to_value(LiveCandle::new(&c, false, false)).unwrap();
        assert_eq!(
            forming,
            serde_json::json!({"t":60000,"o":"100.10","h":"100.10","l":"100.10","c":"100.10","v":"0.5","closed":false})
        );
        c.closed = true;
        let unconfirmed = serde_json::to_value(LiveCandle::new(&c, false, false)).unwrap();
        assert_eq!(unconfirmed["confirmed"], false);
        assert!(unconfirmed.get("revised").is_none());
        let revised = LiveCandle::new(&c, true, true);
        let json = serde_json::to_string(&revised).unwrap();
        assert!(
            json.ends_with(r#""closed":true,"confirmed":true,"revised":true}"#),
            "{json}"
        );
        let back: LiveCandle = serde_json::from_str(&json).unwrap();
        assert_eq!(back, revised);
        assert_eq!(back.candle, c);
        let packed = crate::Encoding::Msgpack.encode(&revised);
        let back: LiveCandle = crate::Encoding::Msgpack.decode(&packed).unwrap();
        assert_eq!(back, revised);
        // A plain candle reads as a live one (older publishers).
        let plain: LiveCandle = serde_json::from_value(forming).unwrap();
        assert_eq!((plain.confirmed, plain.revised), (None, false));
    }
}
