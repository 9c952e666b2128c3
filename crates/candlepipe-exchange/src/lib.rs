//! REST adapters for the exchanges' candle endpoints, behind one client that pages through
//! long windows and keeps each exchange within its request rate.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod binance;
pub mod binance_archive;
pub mod breaker;
pub mod budget;
pub mod client;
pub mod coinbase;
pub mod coinbase_list;
pub mod error;
pub mod exchange_info;
pub mod kraken;
pub mod kraken_list;
pub mod kraken_trades;
pub mod markets;
mod parse;
pub mod stream;

pub use budget::Budget;

use candlepipe_core::{Exchange, Interval};

/// The most candles of `iv` one request to `ex` brings: Binance 1,000, Coinbase 300, Kraken
/// its 720 most recent; for an interval built from a smaller one, that many of the smaller.
pub fn page_candles(ex: Exchange, iv: Interval) -> i64 {
    let page = match ex {
        Exchange::Binance => binance::PAGE,
        Exchange::Coinbase => coinbase::PAGE,
        Exchange::Kraken => kraken::PAGE,
    };
    let per = ex
        .source_interval(iv)
        .map_or(1, |base| iv.millis() / base.millis());
    (page / per).max(1)
}
pub use client::{ExchangeClient, ExchangeSettings};
pub use error::FetchError;
