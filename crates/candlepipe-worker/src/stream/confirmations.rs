//! REST confirms what only the stream said closed (Kraken's closes, the candles Coinbase's
//! trades built), in batches: one call confirms every close of a series since its last
//! confirmation (Kraken's OHLC answers up to 720 candles, Coinbase's up to 300), once the
//! exchange's publishing delay has passed after the newest of them, and no series more
//! often than once an interval. Confirmations spend at most [`SHARE`] of the exchange's
//! requests a second on this process's series: with more series each waits longer and
//! confirms more candles per call. The jobs go on the bulk lane, behind live work, and
//! their fills' `ready` events bring the record back to the stream, which republishes what
//! differs from what it published.

use std::collections::HashMap;

use candlepipe_core::closing::final_bound;
use candlepipe_core::{Exchange, Millis, SeriesKey};

/// Share of an exchange's requests a second that confirmations of one process's series
/// may take.
pub const SHARE: f64 = 0.25;

/// What paces an exchange's confirmations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// The exchange's requests a second (the cluster's budget).
    pub rps: u32,
    /// How long after an interval's close its REST candle is final.
    pub publish_delay: Millis,
}

/// The open times of one series that await REST's record.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// The oldest not yet asked (later ones are asked with it, so quiet intervals between
    /// closes are confirmed too).
    from: Millis,
    /// The newest close the stream handed on.
    newest: Millis,
    /// When the last confirmation of the series was asked (at first: when its first close
    /// came, so that series taken together spread their first calls over a period).
    asked: Millis,
}

#[derive(Debug, Default)]
pub struct Confirmations {
    paces: HashMap<Exchange, Pace>,
    spans: HashMap<SeriesKey, Span>,
}

impl Confirmations {
    pub fn new(paces: HashMap<Exchange, Pace>) -> Self {
        Confirmations {
            paces,
            spans: HashMap::new(),
        }
    }

    /// The stream handed on, at `now`, a close at `t` that is not REST's record.
    pub fn note(&mut self, series: &SeriesKey, t: Millis, now: Millis) {
        let span = self.spans.entry(series.clone()).or_insert(Span {
            from: t,
            newest: t,
            asked: now,
        });
        span.from = span.from.min(t);
        span.newest = span.newest.max(t);
    }

    /// The series is no longer this process's.
    pub fn forget(&mut self, series: &SeriesKey) {
        self.spans.remove(series);
    }

    /// How often one series may be confirmed: at the exchange's share of requests spread
    /// over its `series`, and at most once an interval of `step`.
    fn period(pace: &Pace, series: usize, step: Millis) -> Millis {
        let per_second = (pace.rps.max(1) as f64 * SHARE).max(f64::MIN_POSITIVE);
        let spread = (series as f64 * 1000.0 / per_second).ceil() as Millis;
        spread.max(step)
    }

    /// The confirmations due at `now`: `(series, from, to)`, each range asked once.
    pub fn due(&mut self, now: Millis) -> Vec<(SeriesKey, Millis, Millis)> {
        let mut per_exchange: HashMap<Exchange, usize> = HashMap::new();
        for s in self.spans.keys() {
            *per_exchange.entry(s.exchange).or_default() += 1;
        }
        let mut out = Vec::new();
        for (series, span) in self.spans.iter_mut() {
            let Some(pace) = self.paces.get(&series.exchange) else {
                continue;
            };
            let iv = series.interval;
            let step = iv.millis();
            let period = Self::period(pace, per_exchange[&series.exchange], step);
            if now < span.asked + period {
                continue;
            }
            let to = span.newest.min(final_bound(iv, now, pace.publish_delay));
            if to < span.from {
                continue;
            }
            out.push((series.clone(), span.from, to));
            span.from = to + step;
            span.asked = now;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candlepipe_core::{Interval, Symbol};

    const M: Millis = 60_000;
    const T0: Millis = 1_764_000_000_000 - 1_764_000_000_000 % M;

    fn series(ex: Exchange, sym: &str) -> SeriesKey {
        SeriesKey::new(ex, Symbol::parse(sym).unwrap(), Interval::M1)
    }

    fn paces() -> HashMap<Exchange, Pace> {
        HashMap::from([
            (
                Exchange::Kraken,
                Pace {
                    rps: 1,
                    publish_delay: 30_000,
                },
            ),
            (
                Exchange::Coinbase,
                Pace {
                    rps: 10,
                    publish_delay: 60_000,
                },
            ),
        ])
    }

    #[test]
    fn closes_wait_for_the_publishing_delay_then_go_in_one_batch() {
        let mut c = Confirmations::new(paces());
        let s = series(Exchange::Coinbase, "BTC/USD");
        for k in 0..3 {
            c.note(&s, T0 + k * M, T0 + (k + 1) * M + 5_000);
        }
        // A minute after the first close came, the closes final by then (60 s after they
        // closed) go in one call.
        assert_eq!(c.due(T0 + 2 * M), vec![]);
        assert_eq!(c.due(T0 + 3 * M + 30_000), vec![(s.clone(), T0, T0 + M)]);
        // Asked once; the next waits an interval and its own delay.
        assert_eq!(c.due(T0 + 3 * M + 40_000), vec![]);
        c.note(&s, T0 + 3 * M, T0 + 4 * M + 5_000);
        assert_eq!(c.due(T0 + 5 * M), vec![(s.clone(), T0 + 2 * M, T0 + 3 * M)]);
        // Nothing new: nothing asked.
        assert_eq!(c.due(T0 + 9 * M), vec![]);
        // A quiet interval between closes is asked with them.
        c.note(&s, T0 + 6 * M, T0 + 7 * M + 5_000);
        assert_eq!(c.due(T0 + 9 * M), vec![(s, T0 + 4 * M, T0 + 6 * M)]);
    }

    #[test]
    fn many_series_share_the_budget_and_confirm_more_per_call() {
        let mut c = Confirmations::new(paces());
        let all: Vec<SeriesKey> = (0..30)
            .map(|i| series(Exchange::Kraken, &format!("A{i}/USD")))
            .collect();
        let mut calls = 0;
        let mut confirmed = 0;
        // Two hours of closes, looked at every 5 s.
        for minute in 0..120 {
            let now = T0 + (minute + 1) * M;
            for s in &all {
                c.note(s, T0 + minute * M, now);
            }
            for tick in 0..12 {
                for (_, from, to) in c.due(now + tick * 5_000) {
                    calls += 1;
                    confirmed += (to - from) / M + 1;
                }
            }
        }
        // 30 series at a quarter of 1 request a second: one call per series every 120 s.
        assert!(calls <= 30 * 60, "{calls} calls");
        assert!(calls >= 30 * 55, "{calls} calls");
        assert!(confirmed >= 30 * 115, "{confirmed} candles confirmed");
    }

    #[test]
    fn exchanges_without_a_pace_are_not_confirmed() {
        let mut c = Confirmations::new(paces());
        let s = series(Exchange::Binance, "BTC/USDT");
        c.note(&s, T0, T0 + M);
        assert_eq!(c.due(T0 + 10 * M), vec![]);
        c.forget(&s);
        assert!(c.spans.is_empty());
    }
}
