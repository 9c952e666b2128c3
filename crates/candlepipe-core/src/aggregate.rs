//! Candles of an interval an exchange does not serve, built exactly from the largest one it
//! serves that divides it ([`crate::Exchange::source_interval`]): open of the first, highest
//! high, lowest low, close of the last, summed volume, all exact decimals. Buckets are the
//! target interval's own open times ([`Interval::open_of`]: sub-day multiples from 00:00
//! UTC, days at 00:00, 3 days from the epoch, weeks on Monday).
//!
//! A bucket is confirmed when every source open time in it is; a bucket that is not yet
//! (the forming one) is the forming candle. A bucket that reaches before the exchange's
//! history is not built at all: it would be a candle made of part of its data.

use crate::confirm::Fetched;
use crate::{Candle, Coverage, Interval, Millis};

/// Builds the `target` candles of open times `[from, to]` from `source`, a fetch of
/// `base` candles covering `[from, to + target - base]`.
pub fn aggregate(
    target: Interval,
    base: Interval,
    source: &Fetched,
    (from, to): (Millis, Millis),
) -> Fetched {
    let (step, base_step) = (target.millis(), base.millis());
    let mut confirmed = Coverage::default();
    for &(a, b) in &source.covered {
        confirmed.add(a, b, base_step);
    }
    let history_from = source.history_from.map(|h| {
        let open = target.open_of(h);
        if open < h {
            open + step
        } else {
            open
        }
    });
    let mut out = Fetched {
        history_from,
        tail_fetched_at: source.tail_fetched_at,
        ..Fetched::default()
    };
    let mut rest = source.candles.as_slice();
    let mut t = target.open_of(from);
    while t <= to {
        let last = t + step - base_step;
        let start = rest.partition_point(|c| c.t < t);
        let end = rest.partition_point(|c| c.t <= last);
        let bucket = &rest[start..end.max(start)];
        rest = &rest[end.max(start)..];
        if history_from.is_some_and(|h| t < h) {
            t += step;
            continue;
        }
        let done = confirmed.contains(t, last);
        let candle = combine(t, bucket, done);
        match (done, &candle) {
            // A sum past what a decimal holds: leave the bucket to be asked again.
            (true, None) if !bucket.is_empty() => out.unconfirmed.push(t),
            (true, _) => match out.covered.last_mut() {
                Some(range) if range.1 + step == t => range.1 = t,
                _ => out.covered.push((t, t)),
            },
            (false, _) => out.unconfirmed.push(t),
        }
        out.candles.extend(candle);
        t += step;
    }
    out
}

/// One bucket's candle, `None` when it has no candles (or its volume overflows).
fn combine(t: Millis, bucket: &[Candle], closed: bool) -> Option<Candle> {
    let (first, last) = (bucket.first()?, bucket.last()?);
    let mut candle = Candle {
        t,
        o: first.o,
        h: first.h,
        l: first.l,
        c: last.c,
        v: first.v,
        closed,
        synthetic: false,
    };
    for c in &bucket[1..] {
        candle.h = candle.h.max(c.h);
        candle.l = candle.l.min(c.l);
        candle.v = candle.v.checked_add(c.v)?;
    }
    Some(candle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::confirm::confirm;
    use rust_decimal::Decimal;

    const H: Millis = 3_600_000;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn hour(t: Millis, o: &str, h: &str, l: &str, c: &str, v: &str) -> Candle {
        Candle {
            t,
            o: d(o),
            h: d(h),
            l: d(l),
            c: d(c),
            v: d(v),
            closed: true,
            synthetic: false,
        }
    }

    #[test]
    fn four_hours_from_hours_keep_every_digit() {
        let day = 1_764_028_800_000; // 2025-11-25T00:00Z
        let hours = vec![
            hour(day, "100.10", "101.00", "99.50", "100.70", "1.25"),
            hour(day + H, "100.70", "102.305", "100.00", "101.00", "2.000"),
            // day + 2h: no trades
            hour(
                day + 3 * H,
                "101.20",
                "101.90",
                "98.001",
                "99.99",
                "0.00000001",
            ),
            Candle {
                closed: false,
                ..hour(day + 4 * H, "99.99", "100", "99", "99.5", "3")
            },
        ];
        let now = day + 4 * H + 30 * 60_000;
        let fetched = confirm(Interval::H1, (day, day + 7 * H), hours, None, now, 60_000);
        let agg = aggregate(Interval::H4, Interval::H1, &fetched, (day, day + 4 * H));
        assert_eq!(agg.candles.len(), 2);
        let c = &agg.candles[0];
        assert_eq!(
            (
                c.t,
                c.o.to_string(),
                c.h.to_string(),
                c.l.to_string(),
                c.c.to_string(),
                c.v.to_string(),
                c.closed
            ),
            (
                day,
                "100.10".into(),
                "102.305".into(),
                "98.001".into(),
                "99.99".into(),
                "3.25000001".into(),
                true
            )
        );
        // The second bucket is forming: open, not covered, asked again.
        assert!(!agg.candles[1].closed);
        assert_eq!(agg.covered, vec![(day, day)]);
        assert_eq!(agg.unconfirmed, vec![day + 4 * H]);
    }

    #[test]
    fn a_bucket_without_trades_is_confirmed_empty_and_one_before_the_history_is_not_built() {
        let day = 1_764_028_800_000;
        let now = day + 30 * H;
        let hours = vec![hour(day + 9 * H, "1", "1", "1", "1", "1")];
        // History from 02:00: the 00:00 bucket is partly beyond it.
        let fetched = confirm(
            Interval::H1,
            (day, day + 11 * H),
            hours,
            Some(day + 2 * H),
            now,
            60_000,
        );
        let agg = aggregate(Interval::H4, Interval::H1, &fetched, (day, day + 8 * H));
        assert_eq!(agg.history_from, Some(day + 4 * H));
        assert_eq!(agg.covered, vec![(day + 4 * H, day + 8 * H)]);
        assert_eq!(
            agg.candles.iter().map(|c| c.t).collect::<Vec<_>>(),
            vec![day + 8 * H]
        );
    }

    #[test]
    fn weeks_open_on_monday() {
        let monday = 1_764_547_200_000; // 2025-12-01T00:00Z, a Monday
        assert_eq!(Interval::W1.open_of(monday + 3 * 86_400_000), monday);
        let days: Vec<Candle> = (0..7)
            .map(|i| hour(monday + i * 86_400_000, "1", "2", "1", "1", "1"))
            .collect();
        let fetched = confirm(
            Interval::D1,
            (monday, monday + 6 * 86_400_000),
            days,
            None,
            monday + 8 * 86_400_000,
            60_000,
        );
        let agg = aggregate(Interval::W1, Interval::D1, &fetched, (monday, monday));
        assert_eq!(agg.candles.len(), 1);
        assert_eq!(agg.candles[0].v, d("7"));
        assert!(agg.candles[0].closed);
    }
}
