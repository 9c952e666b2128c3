//! Kraken `GET /0/public/Trades?pair&since`, and candles built from its trades exactly as
//! Kraken's OHLC writes them: the way to Kraken's history past the 720 intervals OHLC keeps.
//!
//! `{"error":[],"result":{"XBTUSDT":[[price,volume,time,side,type,misc,trade_id],…],"last":"<ns>"}}`:
//! at most 1,000 trades a page, oldest first, keyed by Kraken's own pair name; `last` (in
//! nanoseconds, a string) is the next page's `since`; `time` is fractional seconds. Older
//! documentation shows six fields, without `trade_id`: both are read.
//!
//! A candle as Kraken's OHLC has it (checked against recorded pages of both, see
//! `tests/real_formats.rs`): open, high, low and close at the pair's `pair_decimals`,
//! volume at its `lot_decimals`, `count` the trades, `vwap` the volume-weighted mean price
//! cut (not rounded) to `pair_decimals`; an interval without trades repeats the previous
//! close as open, high, low and close, with volume 0, count 0 and vwap 0.

use std::collections::BTreeMap;

use candlepipe_core::{Candle, Millis};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::FetchError;

pub const PATH: &str = "/0/public/Trades";
/// Trades in a full page.
pub const PAGE: usize = 1000;

/// One trade.
#[derive(Debug, Clone, PartialEq)]
pub struct Trade {
    pub price: Decimal,
    pub volume: Decimal,
    /// When, in ms (Kraken gives fractional seconds).
    pub t: Millis,
    /// Kraken's id (absent in the older six-field form).
    pub id: Option<u64>,
}

/// One page of trades and the cursor of the next.
#[derive(Debug, Clone, PartialEq)]
pub struct TradesPage {
    pub trades: Vec<Trade>,
    /// `last`: the next page's `since` (nanoseconds, as Kraken wrote it).
    pub next_since: String,
}

/// `native`: the pair's altname; `since_ns`: a previous page's `last`, or a time in ns.
pub fn query(native: &str, since_ns: &str) -> Vec<(&'static str, String)> {
    vec![
        ("pair", native.to_string()),
        ("since", since_ns.to_string()),
    ]
}

/// A time in ms as a `since` for [`query`].
pub fn since_of(t: Millis) -> String {
    (i128::from(t) * 1_000_000).to_string()
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default)]
    error: Vec<String>,
    #[serde(borrow, default)]
    result: Option<BTreeMap<String, &'a RawValue>>,
}

pub fn parse(body: &[u8]) -> Result<TradesPage, FetchError> {
    let malformed = |what: &str, e: &dyn std::fmt::Display| {
        FetchError::Malformed(format!("kraken trades {what}: {e}"))
    };
    crate::kraken::check_error(body)?;
    let parsed: Body = serde_json::from_slice(body).map_err(|e| malformed("body", &e))?;
    if let Some(first) = parsed.error.first() {
        return Err(malformed("error", first));
    }
    let result = parsed
        .result
        .ok_or_else(|| malformed("body", &"neither error nor result"))?;
    let next_since = result
        .get("last")
        .map(|v| v.get().trim_matches('"').to_string())
        .ok_or_else(|| malformed("result", &"no last"))?;
    let raw = result
        .iter()
        .find(|(k, _)| k.as_str() != "last")
        .map(|(_, v)| *v)
        .ok_or_else(|| malformed("result", &"no pair"))?;
    let rows: Vec<Vec<&RawValue>> =
        serde_json::from_str(raw.get()).map_err(|e| malformed("rows", &e))?;
    let trades = rows
        .iter()
        .map(|row| {
            // Each field's text as Kraken wrote it: prices and volumes are strings, the
            // time a number of seconds with a fraction (read exactly, not as a float).
            let text = |i: usize| {
                row.get(i)
                    .map(|v| v.get().trim_matches('"'))
                    .ok_or_else(|| malformed("row", &format!("no field {i}")))
            };
            let number = |s: &str| {
                s.parse::<Decimal>()
                    .or_else(|_| Decimal::from_scientific(s))
                    .map_err(|e| malformed("row", &format!("{s}: {e}")))
            };
            let ms = (number(text(2)?)? * Decimal::ONE_THOUSAND).floor();
            Ok(Trade {
                price: number(text(0)?)?,
                volume: number(text(1)?)?,
                t: i64::try_from(ms).map_err(|e| malformed("time", &e))?,
                id: text(6).ok().and_then(|s| s.parse().ok()),
            })
        })
        .collect::<Result<Vec<_>, FetchError>>()?;
    Ok(TradesPage { trades, next_since })
}

/// How the pair's numbers are written (its `AssetPairs` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimals {
    /// `pair_decimals`: prices and vwap.
    pub price: u32,
    /// `lot_decimals`: volume.
    pub volume: u32,
}

fn at(d: Decimal, dp: u32, strategy: RoundingStrategy) -> Decimal {
    let mut d = d.round_dp_with_strategy(dp, strategy);
    d.rescale(dp);
    d
}

/// The candles of `step` ms for open times `from..=to` from `trades` (ascending), as
/// Kraken's OHLC writes them. An interval without trades takes the close before it (the
/// last trade before `from`, when `trades` holds one); intervals before the first trade
/// with nothing before them are left out. Every candle is closed: the caller asks only for
/// intervals that have ended and whose trades `trades` holds whole.
pub fn candles(
    trades: &[Trade],
    step: Millis,
    from: Millis,
    to: Millis,
    d: Decimals,
) -> Vec<Candle> {
    let price = |p: Decimal| at(p, d.price, RoundingStrategy::MidpointAwayFromZero);
    let mut out = Vec::new();
    let mut previous: Option<Decimal> = None;
    let mut rest = trades;
    // The close before the window.
    let before = rest.partition_point(|t| t.t < from);
    if before > 0 {
        previous = Some(price(rest[before - 1].price));
    }
    rest = &rest[before..];
    let mut open = from;
    while open <= to {
        let n = rest.partition_point(|t| t.t < open + step);
        let (these, after) = rest.split_at(n);
        rest = after;
        let candle = match these {
            [] => previous.map(|c| Candle {
                t: open,
                o: c,
                h: c,
                l: c,
                c,
                v: at(Decimal::ZERO, d.volume, RoundingStrategy::ToZero),
                vwap: Some(at(Decimal::ZERO, d.price, RoundingStrategy::ToZero)),
                trades: Some(0),
                closed: true,
                ..Default::default()
            }),
            [first, ..] => {
                let volume: Decimal = these.iter().map(|t| t.volume).sum();
                let value: Decimal = these.iter().map(|t| t.price * t.volume).sum();
                let vwap = match volume.is_zero() {
                    true => Decimal::ZERO,
                    false => value / volume,
                };
                let high = these.iter().map(|t| t.price).max().unwrap_or(first.price);
                let low = these.iter().map(|t| t.price).min().unwrap_or(first.price);
                let close = these.last().map_or(first.price, |t| t.price);
                Some(Candle {
                    t: open,
                    o: price(first.price),
                    h: price(high),
                    l: price(low),
                    c: price(close),
                    v: at(volume, d.volume, RoundingStrategy::ToZero),
                    vwap: Some(at(vwap, d.price, RoundingStrategy::ToZero)),
                    trades: Some(these.len() as u64),
                    closed: true,
                    ..Default::default()
                })
            }
        };
        if let Some(c) = candle {
            previous = Some(c.c);
            out.push(c);
        }
        open += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_row_forms_and_the_cursor() {
        let body = br#"{"error":[],"result":{"XXBTZUSD":[["100.10000","0.50000000",60.25,"b","l","",7],["101.00000","1.00000000",61.5,"s","m",""]],"last":"61500000000"}}"#;
        let page = parse(body).unwrap();
        assert_eq!(page.next_since, "61500000000");
        assert_eq!(page.trades.len(), 2);
        assert_eq!(page.trades[0].t, 60_250);
        assert_eq!(page.trades[0].id, Some(7));
        assert_eq!(page.trades[1].id, None);
        assert_eq!(since_of(61_500), "61500000000");
        let unknown = br#"{"error":["EQuery:Unknown asset pair"]}"#;
        assert!(matches!(parse(unknown), Err(FetchError::UnknownSymbol(_))));
    }

    #[test]
    fn empty_intervals_repeat_the_close_and_vwap_is_cut() {
        let d = Decimals {
            price: 1,
            volume: 8,
        };
        let trade = |p: &str, v: &str, t: Millis| Trade {
            price: p.parse().unwrap(),
            volume: v.parse().unwrap(),
            t,
            id: None,
        };
        let trades = [
            trade("10.00", "1", 59_000),
            trade("10.00", "1", 60_000),
            trade("10.19", "2", 61_000),
        ];
        let got = candles(&trades, 60_000, 60_000, 120_000, d);
        let text = |c: &Candle| [c.o, c.h, c.l, c.c, c.v, c.vwap.unwrap()].map(|x| x.to_string());
        assert_eq!(
            text(&got[0]),
            ["10.0", "10.2", "10.0", "10.2", "3.00000000", "10.1"]
        );
        assert_eq!(got[0].trades, Some(2));
        assert_eq!(
            text(&got[1]),
            ["10.2", "10.2", "10.2", "10.2", "0.00000000", "0.0"]
        );
        assert_eq!(got[1].trades, Some(0));
        // Nothing before the window and no trade in its first interval: left out.
        assert_eq!(candles(&trades[2..], 60_000, 0, 60_000, d).len(), 1);
    }
}
