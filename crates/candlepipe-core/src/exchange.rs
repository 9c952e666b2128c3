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
    /// Whether the exchange serves this interval natively. candlepipe does not aggregate,
    /// so anything else is `unsupported_interval` for that exchange.
    pub fn supports(self, interval: crate::Interval) -> bool {
        use crate::Interval::*;
        match self {
            Exchange::Binance => true,
            Exchange::Coinbase => matches!(interval, M1 | M5 | M15 | H1 | H6 | D1),
            Exchange::Kraken => matches!(interval, M1 | M5 | M15 | M30 | H1 | H4 | D1 | W1),
        }
    }
}
