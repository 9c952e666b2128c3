//! Technical indicators as pure functions over `f64` series, oldest first. No I/O.
//!
//! Series functions follow TA-Lib's output convention: the result holds one value per input
//! from the first index with enough history on (TA-Lib's `outBegIdx`), so `out[k]` belongs
//! to `input[k + lookback]`, where `lookback` is documented per function. Too little input
//! gives an empty result, never a panic.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod levels;
pub mod moving;
pub mod oscillators;
pub mod summary;

pub use levels::{levels, Levels};
pub use moving::{ema, sma};
pub use oscillators::{atr, rsi, true_range};
pub use summary::{summarize, Bar, Signal, Summary, Trend, Volatility};
