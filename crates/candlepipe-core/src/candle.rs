//! One OHLCV candle with exact decimals.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Millis;

/// Prices and volume keep the exact digits the exchange sent (`rust_decimal` keeps the
/// scale, so `"91234.10"` stays `"91234.10"`); on the wire and in Redis they are strings
/// (`decimal_text`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    /// Open time, ms UTC.
    pub t: Millis,
    #[serde(with = "crate::decimal_text")]
    pub o: Decimal,
    #[serde(with = "crate::decimal_text")]
    pub h: Decimal,
    #[serde(with = "crate::decimal_text")]
    pub l: Decimal,
    #[serde(with = "crate::decimal_text")]
    pub c: Decimal,
    #[serde(with = "crate::decimal_text")]
    pub v: Decimal,
    /// False only for the newest, still-forming candle.
    pub closed: bool,
    /// Made by candlepipe for an interval without trades (`fill_gaps: "previous"`): zero
    /// volume at the previous close. Never stored; on the wire only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub synthetic: bool,
}

/// `candles` (ascending) with, for each open time in `missing` (ascending), a zero-volume
/// candle at the previous candle's close, marked synthetic. Open times before the first
/// candle have no previous close and stay out.
pub fn fill_with_previous(candles: &[Candle], missing: &[Millis]) -> Vec<Candle> {
    let mut out = Vec::with_capacity(candles.len() + missing.len());
    let mut gaps = missing.iter().copied().peekable();
    let mut previous: Option<Decimal> = None;
    let mut fill_until = |limit: Millis, out: &mut Vec<Candle>, previous: Option<Decimal>| {
        while let Some(t) = gaps.next_if(|&t| t < limit) {
            if let Some(p) = previous {
                out.push(Candle {
                    t,
                    o: p,
                    h: p,
                    l: p,
                    c: p,
                    v: Decimal::ZERO,
                    closed: true,
                    synthetic: true,
                });
            }
        }
    };
    for c in candles {
        fill_until(c.t, &mut out, previous);
        out.push(c.clone());
        previous = Some(c.c);
    }
    fill_until(Millis::MAX, &mut out, previous);
    out
}

/// A candle from a property test's row (open time, mantissa, scale, closed, synthetic): every
/// price from the one decimal, of both signs.
#[cfg(test)]
pub(crate) fn from_test_row(
    &(t, m, scale, closed, synthetic): &(i64, i64, u32, bool, bool),
) -> Candle {
    let d = Decimal::from_i128_with_scale(i128::from(m), scale);
    Candle {
        t,
        o: d,
        h: -d,
        l: d,
        c: d,
        v: d.abs(),
        closed,
        synthetic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candle(t: Millis, close: i64) -> Candle {
        let d = Decimal::new(close, 2);
        Candle {
            t,
            o: d,
            h: d,
            l: d,
            c: d,
            v: Decimal::ONE,
            closed: true,
            synthetic: false,
        }
    }

    #[test]
    fn gaps_take_the_previous_close_and_leading_ones_stay_out() {
        let candles = [candle(2, 150), candle(5, 170)];
        let filled = fill_with_previous(&candles, &[1, 3, 4, 6]);
        let seen: Vec<(Millis, String, String, bool)> = filled
            .iter()
            .map(|c| (c.t, c.o.to_string(), c.v.to_string(), c.synthetic))
            .collect();
        assert_eq!(
            seen,
            vec![
                (2, "1.50".into(), "1".into(), false),
                (3, "1.50".into(), "0".into(), true),
                (4, "1.50".into(), "0".into(), true),
                (5, "1.70".into(), "1".into(), false),
                (6, "1.70".into(), "0".into(), true),
            ]
        );
    }
}
