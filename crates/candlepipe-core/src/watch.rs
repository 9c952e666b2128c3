//! `candlepipe.candles.watch` / `unwatch`: keep a series live from its exchange's stream.

use serde::{Deserialize, Serialize};

use crate::{ErrorCode, Exchange, Interval, SeriesKey, Symbol, WireError};

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
}
