//! One OHLCV candle with exact decimals.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Millis;

/// Prices and volume keep the exact digits the exchange sent (`rust_decimal` keeps the
/// scale, so `"91234.10"` stays `"91234.10"`); on the wire they are strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    /// Open time, ms UTC.
    pub t: Millis,
    #[serde(with = "rust_decimal::serde::str")]
    pub o: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub h: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub l: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub c: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub v: Decimal,
    /// False only for the newest, still-forming candle.
    pub closed: bool,
}
