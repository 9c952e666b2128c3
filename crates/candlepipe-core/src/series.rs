//! A series: one exchange's candles for one symbol at one interval.

use serde::{Deserialize, Serialize};

use crate::{Exchange, Interval, Symbol};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    pub exchange: Exchange,
    pub symbol: Symbol,
    pub interval: Interval,
}

impl SeriesKey {
    pub fn new(exchange: Exchange, symbol: Symbol, interval: Interval) -> Self {
        SeriesKey {
            exchange,
            symbol,
            interval,
        }
    }

    /// `binance.BTC-USDT.1m`: the series as NATS subject tokens (all validated, no wildcards).
    pub fn subject_tokens(&self) -> String {
        format!(
            "{}.{}.{}",
            self.exchange,
            self.symbol.token(),
            self.interval
        )
    }
}

impl std::fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.exchange, self.symbol, self.interval)
    }
}
