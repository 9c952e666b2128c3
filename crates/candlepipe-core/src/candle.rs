//! One OHLCV candle with exact decimals.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Millis;

/// Prices and volume keep the exact digits the exchange sent (`rust_decimal` keeps the
/// scale, so `"91234.10"` stays `"91234.10"`); on the wire and in Redis they are strings
/// (`decimal_text`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    /// Open time, ms UTC.
    pub t: Millis,
    #[serde(with = "crate::decimal_text")]
    pub o: Decimal,
    #[serde(with = "crate::decimal_text")]
    pub h: Decimal,
    #[serde(with = "crate::decimal_text")]
    pub l: Decimal,
    #[serde(with = "crate::decimal_text")]
    pub c: Decimal,
    #[serde(with = "crate::decimal_text")]
    pub v: Decimal,
    /// False only for the newest, still-forming candle.
    pub closed: bool,
}
