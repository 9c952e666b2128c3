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
/// Whether fetching `ex`'s candles of `iv` from open time `from` on pages through history
/// rather than asking once: Kraken's intervals older than the 720 its OHLC keeps are built
/// from its trades, page after page (1,000 trades each). Such fills run on the bulk lane.
pub fn pages_history(
    ex: Exchange,
    iv: Interval,
    from: candlepipe_core::Millis,
    now: candlepipe_core::Millis,
) -> bool {
    match ex {
        Exchange::Kraken => from < kraken::oldest_kept(ex.source_interval(iv).unwrap_or(iv), now),
        Exchange::Binance | Exchange::Coinbase => false,
    }
}

pub use client::{ExchangeClient, ExchangeSettings};
pub use error::FetchError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kraken_windows_older_than_its_ohlc_keeps_page_history() {
        const M: i64 = 60_000;
        let now: i64 = 1_700_000_000_000 + 30_000;
        let open = now - now.rem_euclid(M);
        let kraken = Exchange::Kraken;
        // OHLC keeps 720 committed minutes before the forming one.
        assert!(!pages_history(kraken, Interval::M1, open - 720 * M, now));
        assert!(pages_history(kraken, Interval::M1, open - 721 * M, now));
        // 3m is built from Kraken's minutes: what counts is the minutes OHLC keeps.
        assert!(!pages_history(kraken, Interval::M3, open - 600 * M, now));
        assert!(pages_history(kraken, Interval::M3, open - 900 * M, now));
        assert!(!pages_history(Exchange::Binance, Interval::M1, 0, now));
        assert!(!pages_history(Exchange::Coinbase, Interval::M1, 0, now));
    }
}
