//! Ingest's side of "which series stream": a series whose latest candles are asked for
//! `per_minute` times within a minute is marked wanted for [`HOT_FOR`] (and again while it
//! stays hot), so the `stream` role picks it up. Counted per process, in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use candlepipe_core::{Millis, SeriesKey};

/// How long a hot series stays wanted after it was last found hot.
pub const HOT_FOR: Duration = Duration::from_secs(120);
const WINDOW_MS: Millis = 60_000;
/// Series counted at once; past it the counts start again (a bound, not an LRU).
const MAX_SERIES: usize = 100_000;

pub struct Hot {
    per_minute: u32,
    /// Series → (window start, requests in it, when it was last marked wanted).
    counts: Mutex<HashMap<SeriesKey, (Millis, u32, Millis)>>,
}

impl Hot {
    pub fn new(per_minute: u32) -> Self {
        Hot {
            per_minute,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request for the latest candles of `series` at `now`; true when the series
    /// should be marked wanted now (at most once per half of [`HOT_FOR`]).
    pub fn note(&self, series: &SeriesKey, now: Millis) -> bool {
        if self.per_minute == 0 || !series.exchange.streams(series.interval) {
            return false;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() >= MAX_SERIES && !counts.contains_key(series) {
            counts.clear();
        }
        let entry = counts
            .entry(series.clone())
            .or_insert((now, 0, Millis::MIN));
        if now - entry.0 >= WINDOW_MS {
            *entry = (now, 0, entry.2);
        }
        entry.1 += 1;
        let again = now.saturating_sub(entry.2) >= HOT_FOR.as_millis() as Millis / 2;
        if entry.1 >= self.per_minute && again {
            entry.2 = now;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candlepipe_core::{Exchange, Interval, Symbol};

    #[test]
    fn a_series_asked_often_is_wanted_once_per_half_period() {
        let hot = Hot::new(3);
        let s = SeriesKey::new(
            Exchange::Binance,
            Symbol::parse("BTC/USDT").unwrap(),
            Interval::M1,
        );
        assert!(!hot.note(&s, 1_000));
        assert!(!hot.note(&s, 2_000));
        assert!(hot.note(&s, 3_000));
        assert!(!hot.note(&s, 4_000), "already marked");
        // A new window starts the count again.
        assert!(!hot.note(&s, 70_000));
        assert!(!hot.note(&s, 71_000));
        assert!(hot.note(&s, 72_000), "marked again past half the period");
        // Built from a smaller interval: no stream to want.
        let aggregated = SeriesKey::new(
            Exchange::Coinbase,
            Symbol::parse("BTC/USD").unwrap(),
            Interval::H4,
        );
        for t in 0..10 {
            assert!(!hot.note(&aggregated, t), "no stream to want");
        }
        assert!(!Hot::new(0).note(&s, 1));
    }
}
