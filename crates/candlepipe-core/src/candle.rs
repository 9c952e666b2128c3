//! One OHLCV candle with exact decimals.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Millis;

/// Prices and volume keep the exact digits the exchange sent (`rust_decimal` keeps the
/// scale, so `"91234.10"` stays `"91234.10"`); on the wire and in Redis they are strings
/// (`decimal_text`). Beside OHLCV a candle carries what its exchange sends with it, as the
/// exchange wrote it: Binance's quote volume, trade count and taker-buy volumes, Kraken's
/// vwap and trade count (`None` where the exchange sends none, as Coinbase).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Σ price × size (Binance's quote asset volume).
    #[serde(
        default,
        with = "crate::decimal_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub quote_volume: Option<Decimal>,
    /// How many trades the candle holds (Binance, Kraken).
    #[serde(
        default,
        with = "crate::decimal_text::count",
        skip_serializing_if = "Option::is_none"
    )]
    pub trades: Option<u64>,
    /// Volume of the trades whose taker bought, in the base asset (Binance).
    #[serde(
        default,
        with = "crate::decimal_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub taker_buy_base: Option<Decimal>,
    /// The same in the quote asset (Binance).
    #[serde(
        default,
        with = "crate::decimal_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub taker_buy_quote: Option<Decimal>,
    /// Volume-weighted average price, at the pair's price decimals (Kraken; "0.0"-like
    /// zero for a candle without trades).
    #[serde(
        default,
        with = "crate::decimal_text::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub vwap: Option<Decimal>,
    /// Where candlepipe took the candle from when not the exchange's candle endpoint:
    /// `trades` for Kraken's history past the 720 intervals its OHLC keeps, built from its
    /// trades exactly as Kraken writes OHLC. On the wire only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_from: Option<BuiltFrom>,
    /// False only for the newest, still-forming candle.
    pub closed: bool,
    /// Made by candlepipe for an interval without trades (`fill_gaps: "previous"`): zero
    /// volume at the previous close. Never stored; on the wire only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub synthetic: bool,
}

/// What a candle was built from (see [`Candle::built_from`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltFrom {
    /// The exchange's public trades.
    Trades,
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
                    ..Default::default()
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
/// price from the one decimal, of both signs; by the mantissa, Binance's extra fields,
/// Kraken's, or none.
#[cfg(test)]
pub(crate) fn from_test_row(
    &(t, m, scale, closed, synthetic): &(i64, i64, u32, bool, bool),
) -> Candle {
    let d = Decimal::from_i128_with_scale(i128::from(m), scale);
    let trades = Some(m.unsigned_abs() / 7);
    let (binance, kraken) = (m.rem_euclid(3) == 1, m.rem_euclid(3) == 2);
    Candle {
        t,
        o: d,
        h: -d,
        l: d,
        c: d,
        v: d.abs(),
        quote_volume: binance.then_some(d),
        trades: (binance || kraken).then_some(trades).flatten(),
        taker_buy_base: binance.then_some(-d),
        taker_buy_quote: binance.then_some(d.abs()),
        vwap: kraken.then_some(d),
        built_from: (kraken && m % 2 == 0).then_some(BuiltFrom::Trades),
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
            ..Default::default()
        }
    }

    #[test]
    fn extra_fields_are_text_on_the_wire_and_come_back_exactly() {
        let d = |s: &str| Some(s.parse::<Decimal>().unwrap());
        let c = Candle {
            quote_volume: d("1126541.42000000"),
            trades: Some(321),
            taker_buy_base: d("6.10000000"),
            taker_buy_quote: d("556000.10000000"),
            ..candle(1, 9123410)
        };
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            json.contains(r#""v":"1","quote_volume":"1126541.42000000","trades":"321","taker_buy_base":"6.10000000","taker_buy_quote":"556000.10000000","closed":true"#),
            "{json}"
        );
        assert!(!json.contains("vwap"), "{json}");
        assert_eq!(serde_json::from_str::<Candle>(&json).unwrap(), c);
        let packed = rmp_serde::to_vec_named(&c).unwrap();
        assert_eq!(rmp_serde::from_slice::<Candle>(&packed).unwrap(), c);
        // A count sent as a number is read too.
        let number = json.replace(r#""trades":"321""#, r#""trades":321"#);
        assert_eq!(serde_json::from_str::<Candle>(&number).unwrap(), c);
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
