//! Which open times of a series are fetched for good.
//!
//! A range `[from, to]` (inclusive open times) means: every open time in it is confirmed,
//! either because the exchange returned its candle closed (and it is stored) or because the
//! exchange confirmed it has none (no trades, not listed yet; see [`crate::confirm`]). A
//! covered open time without a stored candle is therefore one the exchange has no candle
//! for, and covered open times are never fetched again.

use serde::{Deserialize, Serialize};

use crate::Millis;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Sorted, disjoint, non-adjacent inclusive ranges of open times.
    ranges: Vec<(Millis, Millis)>,
}

impl Coverage {
    pub fn ranges(&self) -> &[(Millis, Millis)] {
        &self.ranges
    }

    /// Marks `[from, to]` as covered; `step` is the interval, so adjacent ranges merge.
    pub fn add(&mut self, from: Millis, to: Millis, step: Millis) {
        if from > to {
            return;
        }
        let (mut from, mut to) = (from, to);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(a, b) in &self.ranges {
            if b + step < from || to + step < a {
                kept.push((a, b));
            } else {
                from = from.min(a);
                to = to.max(b);
            }
        }
        kept.push((from, to));
        kept.sort_unstable();
        self.ranges = kept;
    }

    pub fn contains(&self, from: Millis, to: Millis) -> bool {
        from > to || self.ranges.iter().any(|&(a, b)| a <= from && to <= b)
    }

    /// The parts of `[from, to]` not covered, oldest first.
    pub fn gaps(&self, from: Millis, to: Millis, step: Millis) -> Vec<(Millis, Millis)> {
        let mut gaps = Vec::new();
        self.every_gap(from, to, step, |a, b| {
            gaps.push((a, b));
            true
        });
        gaps
    }

    /// Whether `ok` holds for every uncovered part `(a, b)` of `[from, to]`, oldest first;
    /// stops at the first that fails. Allocates nothing (it runs on every cache hit).
    pub fn every_gap(
        &self,
        from: Millis,
        to: Millis,
        step: Millis,
        mut ok: impl FnMut(Millis, Millis) -> bool,
    ) -> bool {
        let mut cursor = from;
        for &(a, b) in &self.ranges {
            if cursor > to {
                return true;
            }
            if b < cursor {
                continue;
            }
            if a > cursor && !ok(cursor, (a - step).min(to)) {
                return false;
            }
            cursor = cursor.max(b + step);
        }
        cursor > to || ok(cursor, to)
    }

    /// Whether any open time of `[from, to]` is covered.
    pub fn touches(&self, from: Millis, to: Millis) -> bool {
        let i = self.ranges.partition_point(|&(_, b)| b < from);
        self.ranges.get(i).is_some_and(|&(a, _)| a <= to)
    }

    /// Whether open time `t` is covered.
    pub fn covers(&self, t: Millis) -> bool {
        let i = self.ranges.partition_point(|&(_, b)| b < t);
        self.ranges.get(i).is_some_and(|&(a, _)| a <= t)
    }

    /// The ranges to ask the exchange for so that `[from, to]` is covered: the gaps, with
    /// neighbours merged while the merged range holds at most `page` candles, so that one
    /// request fetches what several small gaps lack (candles already stored in between are
    /// fetched again; the store's merge keeps confirmed ones as they are, unless REST's record
    /// replaces what the stream alone confirmed).
    pub fn fetches(
        &self,
        from: Millis,
        to: Millis,
        step: Millis,
        page: i64,
    ) -> Vec<(Millis, Millis)> {
        let mut out: Vec<(Millis, Millis)> = Vec::new();
        for (a, b) in self.gaps(from, to, step) {
            match out.last_mut() {
                Some(last) if (b - last.0) / step < page => last.1 = b,
                _ => out.push((a, b)),
            }
        }
        out
    }

    /// Marks `[from, to]` as not covered (its stored candles were lost or failed verification).
    pub fn remove(&mut self, from: Millis, to: Millis, step: Millis) {
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(a, b) in &self.ranges {
            if b < from || a > to {
                kept.push((a, b));
                continue;
            }
            if a < from {
                kept.push((a, from - step));
            }
            if b > to {
                kept.push((to + step, b));
            }
        }
        self.ranges = kept;
    }

    /// Forgets everything older than `t` (history cap).
    pub fn trim_before(&mut self, t: Millis) {
        self.ranges.retain(|&(_, b)| b >= t);
        if let Some(first) = self.ranges.first_mut() {
            first.0 = first.0.max(t);
        }
    }

    /// Newest covered open time.
    pub fn last(&self) -> Option<Millis> {
        self.ranges.last().map(|r| r.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cov(ranges: &[(Millis, Millis)]) -> Coverage {
        let mut c = Coverage::default();
        for &(a, b) in ranges {
            c.add(a, b, 1);
        }
        c
    }

    #[test]
    fn adjacent_and_overlapping_ranges_merge() {
        assert_eq!(cov(&[(0, 4), (5, 9)]).ranges(), &[(0, 9)]);
        assert_eq!(
            cov(&[(0, 4), (2, 9), (20, 30)]).ranges(),
            &[(0, 9), (20, 30)]
        );
        assert_eq!(
            cov(&[(20, 30), (0, 4), (6, 19)]).ranges(),
            &[(0, 4), (6, 30)]
        );
    }

    #[test]
    fn a_window_touches_coverage_when_any_of_its_open_times_is_covered() {
        let c = cov(&[(10, 19), (30, 39)]);
        assert!(!c.touches(0, 9));
        assert!(!c.touches(20, 29));
        assert!(!c.touches(40, 50));
        assert!(c.touches(0, 10));
        assert!(c.touches(19, 29));
        assert!(c.touches(25, 30));
        assert!(c.touches(12, 14));
        assert!(c.touches(0, 50));
        assert!(!Coverage::default().touches(0, 50));
    }

    #[test]
    fn gaps_are_the_uncovered_parts() {
        let c = cov(&[(10, 19), (30, 39)]);
        assert_eq!(c.gaps(0, 50, 1), vec![(0, 9), (20, 29), (40, 50)]);
        assert_eq!(c.gaps(12, 18, 1), vec![]);
        assert_eq!(c.gaps(15, 35, 1), vec![(20, 29)]);
        assert_eq!(c.gaps(35, 45, 1), vec![(40, 45)]);
        assert!(c.contains(31, 39));
        assert!(!c.contains(18, 31));
    }

    #[test]
    fn removed_spans_become_gaps() {
        let mut c = cov(&[(0, 100)]);
        c.remove(10, 19, 1);
        assert_eq!(c.ranges(), &[(0, 9), (20, 100)]);
        c.remove(90, 200, 1);
        assert_eq!(c.ranges(), &[(0, 9), (20, 89)]);
        assert_eq!(c.gaps(0, 100, 1), vec![(10, 19), (90, 100)]);
    }

    #[test]
    fn trim_drops_old_history() {
        let mut c = cov(&[(0, 9), (20, 29)]);
        c.trim_before(5);
        assert_eq!(c.ranges(), &[(5, 9), (20, 29)]);
        c.trim_before(15);
        assert_eq!(c.ranges(), &[(20, 29)]);
    }

    #[test]
    fn gaps_within_a_page_are_fetched_together() {
        const M: Millis = 60_000;
        let mut c = Coverage::default();
        c.add(10 * M, 19 * M, M);
        c.add(30 * M, 39 * M, M);
        // Gaps 0..9, 20..29, 40..49: one range of 50 candles fits a page of 50.
        assert_eq!(c.fetches(0, 49 * M, M, 50), vec![(0, 49 * M)]);
        // A page of 30: the first two merge (30 candles), the third stays apart.
        assert_eq!(
            c.fetches(0, 49 * M, M, 30),
            vec![(0, 29 * M), (40 * M, 49 * M)]
        );
        assert_eq!(c.fetches(10 * M, 19 * M, M, 50), vec![]);
    }
}
