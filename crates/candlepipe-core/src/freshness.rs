//! When a cached series can answer a query, and what an answer lacks. Pure rules shared by
//! L1, Redis and fill workers.
//!
//! A candle counts as closed by [`crate::closing`]'s rule. Confirmed
//! open times are covered for good ([`Coverage`]); the others (the forming candle, a candle
//! not committed or not published yet) answer only as recently as they were last asked of
//! the exchange (`asked`), so that a later request asks again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::request::Window;
use crate::{CandleQuery, Coverage, Millis};

/// The default `max_age_ms` of a series its stream keeps live (when larger than the
/// interval's own default). Each exchange's protocol proves freshness at its own cadence:
/// Binance pushes every kline stream every 2 s (1 s only for `1s`); Coinbase sends each
/// product's heartbeat every second; Kraken sends a pair's update when it trades and a
/// heartbeat about every second while the connection is otherwise silent, and any message
/// on the connection vouches for all its pairs. 3 s sits above the slowest of these with
/// room for the store write, so that at the default a streamed series answers from the
/// stream on the exchanges' real cadences.
pub const STREAMED_MAX_AGE_MS: Millis = 3_000;

/// What the store knows about a series, without its candles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesState {
    /// Monotonic per series; bumped by every write.
    pub version: u64,
    /// When the newest part was last fetched from the exchange (0: never).
    pub fetched_at: Millis,
    /// Confirmed open times.
    pub coverage: Coverage,
    /// Open times asked of the exchange but not confirmed → when last asked.
    pub asked: BTreeMap<Millis, Millis>,
    /// Oldest open time the exchange still serves (0: all of them); older open times that
    /// are not covered cannot be fetched any more.
    pub history_from: Millis,
    /// When the exchange's stream last wrote the series (0: never).
    pub streamed_at: Millis,
    /// The covered open times only the stream confirmed (not REST's record yet).
    #[serde(default)]
    pub stream_only: Coverage,
}

impl SeriesState {
    /// Whether the candle at `t` is REST's record: covered, and not by the stream alone.
    pub fn is_record(&self, t: Millis) -> bool {
        self.coverage.covers(t) && !self.stream_only.covers(t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer from the cache.
    Fresh(Window),
    /// Some of the window is missing or too old; a fill is needed.
    Miss(Window),
}

/// What a window of candles lacks: `missing` are open times the exchange has no candle for
/// (confirmed empty); `complete` is false when some open time is neither a candle nor
/// confirmed empty (beyond the exchange's history, not published yet, or forming without
/// trades yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completeness {
    pub complete: bool,
    pub missing: Vec<Millis>,
}

impl SeriesState {
    /// Whether every open time of `[from, to]` is settled for an answer: confirmed, beyond
    /// the exchange's history, or asked of the exchange at or after `since`.
    pub fn answers(&self, step: Millis, from: Millis, to: Millis, since: Millis) -> bool {
        let from = from.max(self.history_from);
        from > to
            || self.coverage.every_gap(from, to, step, |a, b| {
                let mut t = a;
                while t <= b {
                    if self.asked.get(&t).is_none_or(|&at| at < since) {
                        return false;
                    }
                    t += step;
                }
                true
            })
    }

    /// Whether this state answers `q` at `now`: every open time of the window confirmed
    /// or asked within `max_age_ms` (for a "latest" query that includes the forming
    /// candle, which is never confirmed). While the exchange's stream wrote the series
    /// within `max_age_ms`, it vouches for the forming candle and the one just closed
    /// (whose closing update may still be on its way): a new interval without an update
    /// yet has had no trade.
    pub fn verdict(&self, q: &CandleQuery, now: Millis) -> Verdict {
        let w = q.window(now);
        let iv = q.series.interval;
        let step = iv.millis();
        let since = now - self.max_age(q, now);
        let from = if self.streamed_at > 0 && self.streamed_at >= since {
            w.from.max(iv.open_of(now) - step)
        } else {
            w.to + step
        };
        let ok = self.answers(step, w.from, w.to.min(from - step), since);
        if ok {
            Verdict::Fresh(w)
        } else {
            Verdict::Miss(w)
        }
    }

    /// How fresh `q` needs the series: what the producer asked for, or by default at least
    /// [`STREAMED_MAX_AGE_MS`] while the stream keeps the series live.
    pub fn max_age(&self, q: &CandleQuery, now: Millis) -> Millis {
        let streamed = self.streamed_at > 0 && self.streamed_at >= now - STREAMED_MAX_AGE_MS;
        match q.max_age_default && streamed {
            true => q.max_age_ms.max(STREAMED_MAX_AGE_MS),
            false => q.max_age_ms,
        }
    }

    /// Whether this state already answers a fill job at `now`, so the job needs no exchange
    /// request: every open time it wants confirmed or asked at or after its `fresh_after`.
    pub fn fulfils(&self, job: &crate::FillJob, now: Millis) -> bool {
        let iv = job.series.interval;
        let to = if job.includes_open {
            iv.open_of(now)
        } else {
            job.to
        };
        self.answers(iv.millis(), job.from, to, job.fresh_after)
    }

    /// The state as fill job `job` sees it: a confirmation ([`crate::FillJob::confirm`])
    /// does not count what only the stream confirmed, so REST is asked for it.
    pub fn for_job(mut self, job: &crate::FillJob) -> SeriesState {
        if job.confirm {
            let step = job.series.interval.millis();
            for &(a, b) in std::mem::take(&mut self.stream_only).ranges() {
                self.coverage.remove(a, b, step);
            }
        }
        self
    }

    /// The verdict for a producer that has waited for a fill which was asked for when the
    /// data had to be fetched at or after `fresh_after`. A "latest" window is taken at the
    /// fetch time, so a fill that finished just after an interval boundary still answers.
    pub fn verdict_after_fill(&self, q: &CandleQuery, fresh_after: Millis, now: Millis) -> Verdict {
        let at = match q.end {
            None if self.fetched_at >= fresh_after => self.fetched_at.min(now),
            _ => now,
        };
        let w = q.window(at);
        if self.answers(q.series.interval.millis(), w.from, w.to, fresh_after) {
            Verdict::Fresh(w)
        } else {
            Verdict::Miss(q.window(now))
        }
    }

    /// What the window `[from, to]` lacks, given the open times of its stored candles
    /// (ascending).
    pub fn completeness(
        &self,
        step: Millis,
        from: Millis,
        to: Millis,
        stored: impl ExactSizeIterator<Item = Millis>,
    ) -> Completeness {
        if from > to || stored.len() as Millis == (to - from) / step + 1 {
            return Completeness {
                complete: true,
                missing: Vec::new(),
            };
        }
        let mut out = Completeness {
            complete: true,
            missing: Vec::new(),
        };
        let mut next = stored.peekable();
        let mut t = from;
        while t <= to {
            while next.peek().is_some_and(|&c| c < t) {
                next.next();
            }
            if next.peek() != Some(&t) {
                if self.coverage.covers(t) {
                    out.missing.push(t);
                } else {
                    out.complete = false;
                }
            }
            t += step;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closing::closed_bound;
    use crate::{Candle, CandlesRequest, Exchange, Interval};

    const M: Millis = 60_000;

    fn request(limit: i64, end: Option<Millis>) -> CandlesRequest {
        CandlesRequest {
            exchange: Exchange::Binance.to_string(),
            symbol: "BTC/USDT".into(),
            interval: "1m".into(),
            limit: Some(limit),
            end,
            ..Default::default()
        }
    }

    fn query(limit: i64, end: Option<Millis>) -> CandleQuery {
        request(limit, end).validate().unwrap()
    }

    /// Confirmed `covered`; everything after it up to the forming candle asked at
    /// `fetched_at`.
    fn state(fetched_at: Millis, covered: (Millis, Millis)) -> SeriesState {
        let mut coverage = Coverage::default();
        coverage.add(covered.0, covered.1, M);
        let asked = (covered.1 / M + 1..=Interval::M1.open_of(fetched_at) / M)
            .map(|i| (i * M, fetched_at))
            .collect();
        SeriesState {
            version: 1,
            fetched_at,
            coverage,
            asked,
            history_from: 0,
            streamed_at: 0,
            stream_only: Coverage::default(),
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

    #[test]
    fn an_unconfirmed_hole_answers_only_as_recently_as_it_was_asked() {
        // 95 was not published when asked at 100:10; the window ends before the forming one.
        let asked_at = 100 * M + 10_000;
        let mut s = state(asked_at, (80 * M, 94 * M));
        s.coverage.add(96 * M, 99 * M, M);
        let q = query(10, Some(99 * M));
        assert!(matches!(s.verdict(&q, asked_at + 500), Verdict::Fresh(_)));
        assert!(matches!(s.verdict(&q, asked_at + 1_500), Verdict::Miss(_)));
        // A producer that waited for that fill is answered all the same.
        assert!(matches!(
            s.verdict_after_fill(&q, asked_at - 100, asked_at + 5_000),
            Verdict::Fresh(_)
        ));
    }

    #[test]
    fn open_times_beyond_the_history_are_settled() {
        let mut s = state(0, (50 * M, 60 * M));
        s.history_from = 50 * M;
        assert!(matches!(
            s.verdict(&query(20, Some(60 * M)), 200 * M),
            Verdict::Fresh(_)
        ));
        s.history_from = 0;
        assert!(matches!(
            s.verdict(&query(20, Some(60 * M)), 200 * M),
            Verdict::Miss(_)
        ));
    }

    #[test]
    fn completeness_lists_confirmed_empty_open_times_and_flags_the_rest() {
        let mut s = state(0, (10 * M, 20 * M));
        s.history_from = 10 * M;
        let candle = |t: Millis| Candle {
            t,
            o: Default::default(),
            h: Default::default(),
            l: Default::default(),
            c: Default::default(),
            v: Default::default(),
            closed: true,
            synthetic: false,
            ..Default::default()
        };
        let all: Vec<Candle> = (10..=20).map(|i| candle(i * M)).collect();
        assert_eq!(
            s.completeness(M, 10 * M, 20 * M, all.iter().map(|c| c.t)),
            Completeness {
                complete: true,
                missing: vec![]
            }
        );
        let holes: Vec<Candle> = all
            .iter()
            .filter(|c| c.t != 12 * M && c.t != 13 * M)
            .cloned()
            .collect();
        assert_eq!(
            s.completeness(M, 10 * M, 20 * M, holes.iter().map(|c| c.t)),
            Completeness {
                complete: true,
                missing: vec![12 * M, 13 * M]
            }
        );
        // 8 and 9 are beyond the history: not missing, but the window is not complete.
        assert_eq!(
            s.completeness(M, 8 * M, 20 * M, holes.iter().map(|c| c.t)),
            Completeness {
                complete: false,
                missing: vec![12 * M, 13 * M]
            }
        );
    }

    #[test]
    fn a_live_stream_vouches_for_the_forming_candle_and_the_one_just_closed() {
        // At 100:00.5 the stream wrote 99 (forming then) 0.8 s ago; 100 has no update yet.
        let now = 100 * M + 500;
        let mut s = state(now - 800, (80 * M, 98 * M));
        s.asked.remove(&(100 * M));
        assert!(matches!(s.verdict(&query(10, None), now), Verdict::Miss(_)));
        s.streamed_at = now - 800;
        assert!(matches!(
            s.verdict(&query(10, None), now),
            Verdict::Fresh(_)
        ));
        // Not for older gaps, and not once the stream is quiet past the streamed default.
        s.coverage.remove(95 * M, 95 * M, M);
        assert!(matches!(s.verdict(&query(10, None), now), Verdict::Miss(_)));
        s.coverage.add(95 * M, 95 * M, M);
        assert!(matches!(
            s.verdict(&query(10, None), now + STREAMED_MAX_AGE_MS - 800 + 1),
            Verdict::Miss(_)
        ));
    }

    #[test]
    fn a_streamed_series_default_max_age_sits_above_binances_two_second_cadence() {
        // Binance pushed 99's update 2.4 s ago (every 2 s, plus latency): the 1m default
        // (1 s) would send the request to REST; a streamed series' default does not.
        let now = 99 * M + 30_000;
        let mut s = state(now - 2_400, (80 * M, 98 * M));
        s.streamed_at = now - 2_400;
        let q = query(10, None);
        assert_eq!(q.max_age_ms, 1_000);
        assert_eq!(s.max_age(&q, now), STREAMED_MAX_AGE_MS);
        assert!(matches!(s.verdict(&q, now), Verdict::Fresh(_)));
        // A producer's own max_age_ms is kept as asked.
        let strict = CandlesRequest {
            max_age_ms: Some(1_000),
            ..request(10, None)
        }
        .validate()
        .unwrap();
        assert_eq!(s.max_age(&strict, now), 1_000);
        assert!(matches!(s.verdict(&strict, now), Verdict::Miss(_)));
        // Nor is a series the stream does not keep live given the longer default.
        s.streamed_at = 0;
        assert_eq!(s.max_age(&q, now), 1_000);
    }
}
