//! The exchanges candlepipe serves.

use serde::{Deserialize, Serialize};

use crate::{ErrorCode, WireError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exchange {
    Binance,
    Coinbase,
    Kraken,
}

impl Exchange {
    pub const ALL: [Exchange; 3] = [Exchange::Binance, Exchange::Coinbase, Exchange::Kraken];

    pub fn as_str(self) -> &'static str {
        match self {
            Exchange::Binance => "binance",
            Exchange::Coinbase => "coinbase",
            Exchange::Kraken => "kraken",
        }
    }

    pub fn parse(s: &str) -> Result<Exchange, WireError> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                WireError::new(
                    ErrorCode::UnknownExchange,
                    format!(
                        "unknown exchange '{}'; expected one of binance, coinbase, kraken",
                        truncate(s, 40)
                    ),
                )
            })
    }
}

impl std::fmt::Display for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Cuts untrusted text that is echoed back in an error message to a readable length.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

impl Exchange {
    /// Whether the exchange serves this interval itself.
    pub fn serves(self, interval: crate::Interval) -> bool {
        use crate::Interval::*;
        match self {
            Exchange::Binance => true,
            Exchange::Coinbase => matches!(interval, M1 | M5 | M15 | H1 | H6 | D1),
            Exchange::Kraken => matches!(interval, M1 | M5 | M15 | M30 | H1 | H4 | D1 | W1),
        }
    }

    /// Whether candlepipe streams `interval` live from the exchange's WebSocket (Binance
    /// klines, Kraken v2 `ohlc`, Coinbase candles built from its `matches`): every interval
    /// the exchange serves.
    pub fn streams(self, interval: crate::Interval) -> bool {
        self.serves(interval)
    }

    /// The interval candlepipe fetches to answer `interval`: the interval itself when the
    /// exchange serves it, else the largest one it serves that divides it (its candles are
    /// aggregated, see [`crate::aggregate`]); `None` when none does.
    pub fn source_interval(self, interval: crate::Interval) -> Option<crate::Interval> {
        if self.serves(interval) {
            return Some(interval);
        }
        crate::Interval::ALL
            .into_iter()
            .filter(|&i| self.serves(i) && interval.millis() % i.millis() == 0)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Interval::{self, *};

    #[test]
    fn unserved_intervals_come_from_the_largest_served_divisor() {
        let from = |ex: Exchange, iv: Interval| ex.source_interval(iv);
        for iv in Interval::ALL {
            assert_eq!(from(Exchange::Binance, iv), Some(iv));
        }
        let coinbase = [
            (M3, M1),
            (M30, M15),
            (H2, H1),
            (H4, H1),
            (H8, H1),
            (H12, H6),
            (D3, D1),
            (W1, D1),
        ];
        for (iv, base) in coinbase {
            assert!(!Exchange::Coinbase.serves(iv));
            assert_eq!(from(Exchange::Coinbase, iv), Some(base), "coinbase {iv}");
        }
        let kraken = [(M3, M1), (H2, H1), (H6, H1), (H8, H4), (H12, H4), (D3, D1)];
        for (iv, base) in kraken {
            assert!(!Exchange::Kraken.serves(iv));
            assert_eq!(from(Exchange::Kraken, iv), Some(base), "kraken {iv}");
        }
        assert_eq!(from(Exchange::Kraken, W1), Some(W1));
    }
}
