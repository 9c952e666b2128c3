//! What one exchange answer establishes about a range of open times (SPEC §2): an open
//! time is fetched for good only when the exchange returned its candle closed, or when it
//! is confirmed empty: the answer holds a later closed candle (exchanges publish in order),
//! or the exchange's publishing delay has passed since the interval closed. Anything else
//! (the forming candle, Kraken's uncommitted last row, a candle published late) is asked
//! again by the next fill.

use crate::closing::CLOSE_MARGIN_MS;
use crate::{Candle, Interval, Millis};

/// A fetch, ready to merge into the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// The candles returned, ascending, closed or not.
    pub candles: Vec<Candle>,
    /// Open-time ranges now confirmed (see [`crate::Coverage`]).
    pub covered: Vec<(Millis, Millis)>,
    /// Open times asked for and not confirmed: asked again by the next fill.
    pub unconfirmed: Vec<Millis>,
    /// The oldest open time the exchange still serves, when its answer says so (Kraken
    /// keeps its newest 720 intervals): older ones it cannot serve any more.
    pub history_from: Option<Millis>,
    /// Set when the fetch brought the series' newest candles.
    pub tail_fetched_at: Option<Millis>,
    /// Came from the exchange's stream, not a REST call.
    pub streamed: bool,
}

impl Fetched {
    /// Adds another range's fetch of the same series.
    pub fn extend(&mut self, other: Fetched) {
        self.candles.extend(other.candles);
        self.candles.sort_by_key(|c| c.t);
        self.candles.dedup_by_key(|c| c.t);
        self.covered.extend(other.covered);
        self.unconfirmed.extend(other.unconfirmed);
        self.history_from = self.history_from.max(other.history_from);
        self.tail_fetched_at = self.tail_fetched_at.max(other.tail_fetched_at);
    }
}

/// Judges an answer for open times `[from, to]` of `iv`, asked at `now`. `candles` are
/// those it returned in the range, ascending, marked closed by the exchange's own rules;
/// `history_from` the oldest open time it still serves, if it said; `delay` how long after
/// an interval's close its candle is surely published.
pub fn confirm(
    iv: Interval,
    range: (Millis, Millis),
    candles: Vec<Candle>,
    history_from: Option<Millis>,
    now: Millis,
    delay: Millis,
) -> Fetched {
    confirm_revisable(iv, range, candles, history_from, now, delay, false)
}

/// [`confirm`] for an exchange whose closed candles may still change until `delay` after
/// their close when `revisable` (Coinbase builds them from trades it publishes late): a
/// closed candle is then confirmed only once that delay has passed.
pub fn confirm_revisable(
    iv: Interval,
    (from, to): (Millis, Millis),
    candles: Vec<Candle>,
    history_from: Option<Millis>,
    now: Millis,
    delay: Millis,
    revisable: bool,
) -> Fetched {
    let step = iv.millis();
    let delay = delay.max(CLOSE_MARGIN_MS);
    let newest = to.min(iv.open_of(now));
    let is_final = |c: &Candle| c.closed && (!revisable || c.t + step + delay <= now);
    let newest_closed = candles.iter().rev().find(|c| is_final(c)).map(|c| c.t);
    let mut covered: Vec<(Millis, Millis)> = Vec::new();
    let mut unconfirmed = Vec::new();
    let mut next = candles.iter().peekable();
    let mut t = history_from.map_or(from, |h| from.max(h));
    while t <= newest {
        while next.peek().is_some_and(|c| c.t < t) {
            next.next();
        }
        let confirmed = match next.peek() {
            Some(c) if c.t == t => is_final(c),
            _ => newest_closed.is_some_and(|n| n > t) || t + step + delay <= now,
        };
        if !confirmed {
            unconfirmed.push(t);
        } else {
            match covered.last_mut() {
                Some(last) if last.1 + step == t => last.1 = t,
                _ => covered.push((t, t)),
            }
        }
        t += step;
    }
    Fetched {
        candles,
        covered,
        unconfirmed,
        history_from,
        tail_fetched_at: None,
        streamed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    const M: Millis = 60_000;
    const DELAY: Millis = 30_000;

    #[test]
    fn a_revisable_closed_candle_is_confirmed_only_after_the_delay() {
        let got = vec![
            candle(10 * M, true),
            candle(11 * M, true),
            candle(12 * M, false),
        ];
        // At 12:10 the candle of 11 closed 10 s ago; that of 10, 70 s ago.
        let now = 12 * M + 10_000;
        let f = confirm_revisable(
            Interval::M1,
            (10 * M, 12 * M),
            got.clone(),
            None,
            now,
            60_000,
            true,
        );
        assert_eq!(f.covered, vec![(10 * M, 10 * M)]);
        assert_eq!(f.unconfirmed, vec![11 * M, 12 * M]);
        assert!(f.candles[1].closed, "still closed: its interval is over");
        let f = confirm(Interval::M1, (10 * M, 12 * M), got, None, now, 60_000);
        assert_eq!(f.covered, vec![(10 * M, 11 * M)]);
    }

    fn candle(t: Millis, closed: bool) -> Candle {
        let d = Decimal::ONE;
        Candle {
            t,
            o: d,
            h: d,
            l: d,
            c: d,
            v: d,
            closed,
            synthetic: false,
            ..Default::default()
        }
    }

    #[test]
    fn closed_candles_and_holes_before_a_later_closed_candle_are_confirmed() {
        // 10..=14 asked at 15:10; 12 has no trades, 15 is forming.
        let now = 15 * M + 10_000;
        let got = vec![
            candle(10 * M, true),
            candle(11 * M, true),
            candle(13 * M, true),
            candle(14 * M, true),
            candle(15 * M, false),
        ];
        let f = confirm(Interval::M1, (10 * M, 15 * M), got, None, now, DELAY);
        assert_eq!(f.covered, vec![(10 * M, 14 * M)]);
        assert_eq!(f.unconfirmed, vec![15 * M]);
    }

    #[test]
    fn a_late_candle_stays_unconfirmed_until_the_publishing_delay_passed() {
        // 14 closed 10 s ago and is not published yet; the forming 15 is.
        let now = 15 * M + 10_000;
        let got = vec![candle(13 * M, true), candle(15 * M, false)];
        let f = confirm(
            Interval::M1,
            (13 * M, 15 * M),
            got.clone(),
            None,
            now,
            DELAY,
        );
        assert_eq!(f.covered, vec![(13 * M, 13 * M)]);
        assert_eq!(f.unconfirmed, vec![14 * M, 15 * M]);
        // Past the delay an empty interval is empty for good.
        let later = 15 * M + DELAY + 1;
        let f = confirm(Interval::M1, (13 * M, 15 * M), got, None, later, DELAY);
        assert_eq!(f.covered, vec![(13 * M, 14 * M)]);
    }

    #[test]
    fn an_open_row_is_not_confirmed_whatever_the_clock_says() {
        // Kraken's uncommitted last row, well after its interval closed.
        let now = 20 * M;
        let got = vec![candle(13 * M, true), candle(14 * M, false)];
        let f = confirm(Interval::M1, (13 * M, 14 * M), got, None, now, DELAY);
        assert_eq!(f.covered, vec![(13 * M, 13 * M)]);
        assert_eq!(f.unconfirmed, vec![14 * M]);
    }

    #[test]
    fn open_times_older_than_the_history_are_neither_covered_nor_asked_again() {
        let now = 100 * M;
        let got = vec![candle(95 * M, true), candle(96 * M, true)];
        let f = confirm(
            Interval::M1,
            (90 * M, 96 * M),
            got,
            Some(95 * M),
            now,
            DELAY,
        );
        assert_eq!(f.covered, vec![(95 * M, 96 * M)]);
        assert!(f.unconfirmed.is_empty());
        assert_eq!(f.history_from, Some(95 * M));
    }

    #[test]
    fn open_times_in_the_future_are_left_alone() {
        let now = 10 * M + 1;
        let f = confirm(Interval::M1, (9 * M, 12 * M), vec![], None, now, DELAY);
        assert!(f.covered.is_empty());
        assert_eq!(f.unconfirmed, vec![9 * M, 10 * M]);
    }
}
