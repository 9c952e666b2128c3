//! Candles of an interval an exchange does not serve, built exactly from the largest one it
//! serves that divides it ([`crate::Exchange::source_interval`]): open of the first, highest
//! high, lowest low, close of the last, summed volume, all exact decimals. Buckets are the
//! target interval's own open times ([`Interval::open_of`]: sub-day multiples from 00:00
//! UTC, days at 00:00, 3 days from the epoch, weeks on Monday).
//!
//! A bucket is confirmed when every source open time in it is; a bucket that is not yet
//! (the forming one) is the forming candle. A bucket that reaches before the exchange's
//! history is not built at all: it would be a candle made of part of its data.

use rust_decimal::Decimal;

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

/// One bucket's candle, `None` when it has no candles (or a sum overflows). The exchange's
/// extra fields are carried when every candle of the bucket has them: counts and volumes
/// summed exactly, the vwap as Σ(vwap × volume) / Σ volume at the parts' vwap decimals
/// (rounded half away from zero; zero when no volume).
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
        ..Default::default()
    };
    for c in &bucket[1..] {
        candle.h = candle.h.max(c.h);
        candle.l = candle.l.min(c.l);
        candle.v = candle.v.checked_add(c.v)?;
    }
    let sum = |field: fn(&Candle) -> Option<Decimal>| -> Option<Decimal> {
        bucket
            .iter()
            .try_fold(Decimal::ZERO, |acc, c| acc.checked_add(field(c)?))
    };
    candle.quote_volume = sum(|c| c.quote_volume);
    candle.taker_buy_base = sum(|c| c.taker_buy_base);
    candle.taker_buy_quote = sum(|c| c.taker_buy_quote);
    candle.trades = bucket
        .iter()
        .try_fold(0u64, |acc, c| acc.checked_add(c.trades?));
    candle.vwap = vwap(bucket, candle.v);
    candle.built_from = bucket.iter().find_map(|c| c.built_from);
    Some(candle)
}

/// The bucket's vwap from its parts' (see [`combine`]), if every part has one.
fn vwap(bucket: &[Candle], volume: Decimal) -> Option<Decimal> {
    let scale = bucket.iter().map(|c| c.vwap.map(|v| v.scale())).max()??;
    let weighted = sum_weighted(bucket)?;
    let mut mean = match volume.is_zero() {
        true => Decimal::ZERO,
        false => weighted
            .checked_div(volume)?
            .round_dp_with_strategy(scale, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
    };
    mean.rescale(scale);
    Some(mean)
}

fn sum_weighted(bucket: &[Candle]) -> Option<Decimal> {
    bucket.iter().try_fold(Decimal::ZERO, |acc, c| {
        acc.checked_add(c.vwap?.checked_mul(c.v)?)
    })
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
            ..Default::default()
        }
    }

    #[test]
    fn the_exchanges_extra_fields_are_summed_and_the_vwap_weighted() {
        let t = 1_764_028_800_000;
        let kraken = |t, v: &str, vwap: &str, n| Candle {
            vwap: Some(d(vwap)),
            trades: Some(n),
            ..hour(t, "100.0", "101.0", "99.0", "100.5", v)
        };
        let bucket = [
            kraken(t, "1.00000000", "100.2", 3),
            kraken(t + H, "3.00000000", "100.9", 5),
            kraken(t + 2 * H, "0.00000000", "0.0", 0),
        ];
        let c = combine(t, &bucket, true).unwrap();
        // (100.2 × 1 + 100.9 × 3) / 4 = 100.725 → 100.7 at the parts' one decimal.
        assert_eq!(c.vwap.map(|v| v.to_string()).as_deref(), Some("100.7"));
        assert_eq!(c.trades, Some(8));
        assert_eq!(c.quote_volume, None, "Kraken sends none");
        let quiet = combine(t, &bucket[2..], true).unwrap();
        assert_eq!(quiet.vwap.map(|v| v.to_string()).as_deref(), Some("0.0"));

        let binance = |t, q: &str, n| Candle {
            quote_volume: Some(d(q)),
            trades: Some(n),
            taker_buy_base: Some(d("0.5")),
            taker_buy_quote: Some(d("50.25")),
            ..hour(t, "100.0", "101.0", "99.0", "100.5", "1")
        };
        let c = combine(
            t,
            &[binance(t, "100.10", 2), binance(t + H, "200.205", 7)],
            true,
        )
        .unwrap();
        assert_eq!(
            (
                c.quote_volume.map(|v| v.to_string()),
                c.trades,
                c.taker_buy_base.map(|v| v.to_string()),
                c.taker_buy_quote.map(|v| v.to_string()),
                c.vwap
            ),
            (
                Some("300.305".into()),
                Some(9),
                Some("1.0".into()),
                Some("100.50".into()),
                None
            )
        );
        // A part without the field: the bucket has none rather than a partial sum.
        let c = combine(
            t,
            &[binance(t, "1", 1), hour(t + H, "1", "1", "1", "1", "1")],
            true,
        )
        .unwrap();
        assert_eq!((c.quote_volume, c.trades), (None, None));
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
