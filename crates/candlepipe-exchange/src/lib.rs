//! REST adapters for the exchanges' candle endpoints, behind one client that pages through
//! long windows and keeps each exchange within its request rate.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod binance;
pub mod breaker;
pub mod budget;
pub mod client;
pub mod coinbase;
pub mod error;
pub mod kraken;
pub mod markets;
mod parse;

pub use budget::Budget;
pub use client::{ExchangeClient, ExchangeSettings};
pub use error::FetchError;
