//! When a cached series can answer a query. Pure rules shared by L1, Redis and fill workers.
//!
//! A candle counts as closed once `CLOSE_MARGIN_MS` has passed after its close time, so a
//! clock slightly ahead of the exchange never stores a forming candle as final. Closed
//! candles are covered for good ([`Coverage`]); the tail after the last closed candle is only
//! as good as the fetch that brought it (`fetched_at`).

use serde::{Deserialize, Serialize};

use crate::request::Window;
use crate::{CandleQuery, Coverage, Interval, Millis};

pub const CLOSE_MARGIN_MS: Millis = 3_000;

/// Newest open time that is surely closed at time `at`.
pub fn closed_bound(interval: Interval, at: Millis) -> Millis {
    interval.open_of(at - CLOSE_MARGIN_MS) - interval.millis()
}

/// What the store knows about a series, without its candles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesState {
    /// Monotonic per series; bumped by every write.
    pub version: u64,
    /// When the newest part was last fetched from the exchange (0: never).
    pub fetched_at: Millis,
    pub coverage: Coverage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer from the cache.
    Fresh(Window),
    /// Some of the window is missing or too old; a fill is needed.
    Miss(Window),
}

impl SeriesState {
    /// Whether this state answers `q` at `now`. For a "latest" query the last fetch must be
    /// within `max_age_ms`, in the current interval, and the closed part must be covered.
    pub fn verdict(&self, q: &CandleQuery, now: Millis) -> Verdict {
        let iv = q.series.interval;
        let w = q.window(now);
        let ok = if w.includes_open {
            self.fetched_at >= now - q.max_age_ms
                && iv.open_of(self.fetched_at) == iv.open_of(now)
                && self
                    .coverage
                    .contains(w.from, closed_bound(iv, self.fetched_at))
        } else {
            self.coverage.contains(w.from, w.to)
        };
        if ok {
            Verdict::Fresh(w)
        } else {
            Verdict::Miss(w)
        }
    }

    /// Whether this state already answers a fill job, so the job needs no exchange request:
    /// for the forming candle, a fetch at or after the job's `fresh_after` that covers the
    /// closed part; for closed windows, coverage alone.
    pub fn fulfils(&self, job: &crate::FillJob) -> bool {
        if job.includes_open {
            self.fetched_at >= job.fresh_after
                && self
                    .coverage
                    .contains(job.from, closed_bound(job.series.interval, self.fetched_at))
        } else {
            self.coverage.contains(job.from, job.to)
        }
    }

    /// The verdict for a producer that has waited for a fill which was asked for when the
    /// data had to be fetched at or after `fresh_after`: the window is taken at the fetch
    /// time, so a fill that finished just after an interval boundary still answers.
    pub fn verdict_after_fill(&self, q: &CandleQuery, fresh_after: Millis, now: Millis) -> Verdict {
        if q.end.is_some() || self.fetched_at < fresh_after {
            return self.verdict(q, now);
        }
        let at = self.fetched_at.min(now);
        let w = q.window(at);
        if self
            .coverage
            .contains(w.from, closed_bound(q.series.interval, at))
        {
            Verdict::Fresh(w)
        } else {
            Verdict::Miss(q.window(now))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CandlesRequest, Exchange};

    const M: Millis = 60_000;

    fn query(limit: i64, end: Option<Millis>) -> CandleQuery {
        CandlesRequest {
            exchange: Exchange::Binance.to_string(),
            symbol: "BTC/USDT".into(),
            interval: "1m".into(),
            limit: Some(limit),
            end,
            ..Default::default()
        }
        .validate()
        .unwrap()
    }

    fn state(fetched_at: Millis, covered: (Millis, Millis)) -> SeriesState {
        let mut coverage = Coverage::default();
        coverage.add(covered.0, covered.1, M);
        SeriesState {
            version: 1,
            fetched_at,
            coverage,
        }
    }

    #[test]
    fn latest_needs_a_recent_fetch_in_the_same_interval() {
        let now = 100 * M + 30_000;
        let s = state(now - 500, (90 * M, 99 * M));
        assert!(matches!(
            s.verdict(&query(10, None), now),
            Verdict::Fresh(_)
        ));
        // Older than max_age (1 s for 1m).
        assert!(matches!(
            s.verdict(&query(10, None), now + 600),
            Verdict::Miss(_)
        ));
        // Needs more history than covered.
        assert!(matches!(s.verdict(&query(12, None), now), Verdict::Miss(_)));
        // Fetched in the previous interval.
        let s = state(100 * M - 200, (90 * M, 98 * M));
        assert!(matches!(
            s.verdict(&query(5, None), 100 * M + 300),
            Verdict::Miss(_)
        ));
    }

    #[test]
    fn closed_windows_need_only_coverage() {
        let s = state(0, (10 * M, 50 * M));
        assert!(matches!(
            s.verdict(&query(5, Some(50 * M)), 200 * M),
            Verdict::Fresh(_)
        ));
        assert!(matches!(
            s.verdict(&query(5, Some(52 * M)), 200 * M),
            Verdict::Miss(_)
        ));
    }

    #[test]
    fn after_a_fill_the_window_is_taken_at_fetch_time() {
        let fetched = 100 * M - 100;
        let s = state(fetched, (80 * M, closed_bound(Interval::M1, fetched)));
        let q = query(10, None);
        // The boundary has passed since the fetch: a plain read misses, the waiter is served.
        assert!(matches!(s.verdict(&q, 100 * M + 50), Verdict::Miss(_)));
        match s.verdict_after_fill(&q, fetched - 10, 100 * M + 50) {
            Verdict::Fresh(w) => assert_eq!(w.to, 99 * M),
            other => panic!("{other:?}"),
        }
    }
}
