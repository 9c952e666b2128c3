//! How a chunk's candles are stored: a MessagePack array of rows, each decimal as its
//! sign-and-scale byte and its 96-bit mantissa in two integers. Every Redis hit decodes the
//! chunks its window touches, so this keeps decoding to integer reads with `rmp` (no field
//! names, no UTF-8 checks, no decimal text to parse: profiles showed those at about a fifth
//! of the ingest's CPU on Redis hits) in about half the bytes of named fields with text.
//!
//! A row: `[t, o_sign_scale, o_lo, o_hi, h_…, l_…, c_…, v_…, closed]` (17 values), then,
//! when the exchange sent any extra field, a presence mask and the present ones in order:
//! quote volume (bit 0), trades (bit 1, one integer), taker-buy base (bit 2), taker-buy
//! quote (bit 3), vwap (bit 4); bit 5, with no value, marks a candle built from trades.
//! A row without extras (Coinbase's) is the 17 values alone.

use candlepipe_core::{BuiltFrom, Candle, Millis};
use rmp::decode::{read_array_len, read_bool, read_int};
use rmp::encode::{write_array_len, write_bool, write_sint, write_uint};
use rust_decimal::Decimal;

const NEGATIVE: u8 = 0x80;
/// The values of a row without extras.
const BASE_LEN: u32 = 17;
const QUOTE_VOLUME: u8 = 1;
const TRADES: u8 = 2;
const TAKER_BASE: u8 = 4;
const TAKER_QUOTE: u8 = 8;
const VWAP: u8 = 16;
/// A flag: no value in the row.
const FROM_TRADES: u8 = 32;

/// The candle's extra decimals with their mask bits, in row order after the trades.
fn extra_decimals(c: &Candle) -> [(u8, Option<&Decimal>); 3] {
    [
        (TAKER_BASE, c.taker_buy_base.as_ref()),
        (TAKER_QUOTE, c.taker_buy_quote.as_ref()),
        (VWAP, c.vwap.as_ref()),
    ]
}

fn mask_of(c: &Candle) -> u8 {
    let mut mask = 0;
    if c.quote_volume.is_some() {
        mask |= QUOTE_VOLUME;
    }
    if c.trades.is_some() {
        mask |= TRADES;
    }
    for (bit, d) in extra_decimals(c) {
        if d.is_some() {
            mask |= bit;
        }
    }
    if c.built_from == Some(BuiltFrom::Trades) {
        mask |= FROM_TRADES;
    }
    mask
}

/// Values a row holds for `mask`.
fn row_len(mask: u8) -> u32 {
    if mask == 0 {
        return BASE_LEN;
    }
    let decimals = [QUOTE_VOLUME, TAKER_BASE, TAKER_QUOTE, VWAP]
        .iter()
        .filter(|bit| mask & **bit != 0)
        .count() as u32;
    BASE_LEN + 1 + 3 * decimals + u32::from(mask & TRADES != 0)
}

fn write_decimal(out: &mut Vec<u8>, d: &Decimal) {
    // The scale is at most 28, so it never collides with the sign bit.
    let sign = if d.is_sign_negative() { NEGATIVE } else { 0 };
    let m = d.mantissa().unsigned_abs();
    let _ = write_uint(out, u64::from(sign | d.scale() as u8));
    let _ = write_uint(out, m as u64);
    let _ = write_uint(out, (m >> 64) as u64);
}

/// The stored body of a chunk.
pub fn encode(candles: &[Candle]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + candles.len() * 48);
    // Writing into a Vec cannot fail.
    let _ = write_array_len(&mut out, candles.len() as u32);
    for c in candles {
        let mask = mask_of(c);
        let _ = write_array_len(&mut out, row_len(mask));
        let _ = write_sint(&mut out, c.t);
        for d in [&c.o, &c.h, &c.l, &c.c, &c.v] {
            write_decimal(&mut out, d);
        }
        let _ = write_bool(&mut out, c.closed);
        if mask == 0 {
            continue;
        }
        let _ = write_uint(&mut out, u64::from(mask));
        if let Some(q) = &c.quote_volume {
            write_decimal(&mut out, q);
        }
        if let Some(n) = c.trades {
            let _ = write_uint(&mut out, n);
        }
        for (_, d) in extra_decimals(c) {
            if let Some(d) = d {
                write_decimal(&mut out, d);
            }
        }
    }
    out
}

/// The candles of a stored body with open times in `[from, to]`, ascending as stored;
/// anything malformed is an error, never a candle.
pub fn decode(bytes: &[u8], from: Millis, to: Millis) -> Result<Vec<Candle>, String> {
    let mut rd = bytes;
    let rows = read_array_len(&mut rd).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity((rows as usize).min(1024));
    for _ in 0..rows {
        let row = read_array_len(&mut rd).map_err(|e| e.to_string())?;
        if row < BASE_LEN {
            return Err(format!("a row of {row} values, not at least {BASE_LEN}"));
        }
        let t: i64 = read_int(&mut rd).map_err(|e| e.to_string())?;
        let mut d = [Decimal::ZERO; 5];
        for slot in &mut d {
            *slot = read_decimal(&mut rd)?;
        }
        let closed = read_bool(&mut rd).map_err(|e| e.to_string())?;
        let [o, h, l, c, v] = d;
        let mut candle = Candle {
            t,
            o,
            h,
            l,
            c,
            v,
            closed,
            ..Default::default()
        };
        if row > BASE_LEN {
            let mask: u8 = read_int(&mut rd).map_err(|e| e.to_string())?;
            if mask == 0 || mask > 2 * FROM_TRADES - 1 || row != row_len(mask) {
                return Err(format!("a row of {row} values with extras {mask:#b}"));
            }
            if mask & QUOTE_VOLUME != 0 {
                candle.quote_volume = Some(read_decimal(&mut rd)?);
            }
            if mask & TRADES != 0 {
                candle.trades = Some(read_int(&mut rd).map_err(|e| e.to_string())?);
            }
            for (bit, slot) in [
                (TAKER_BASE, &mut candle.taker_buy_base),
                (TAKER_QUOTE, &mut candle.taker_buy_quote),
                (VWAP, &mut candle.vwap),
            ] {
                if mask & bit != 0 {
                    *slot = Some(read_decimal(&mut rd)?);
                }
            }
            if mask & FROM_TRADES != 0 {
                candle.built_from = Some(BuiltFrom::Trades);
            }
        }
        if (from..=to).contains(&t) {
            out.push(candle);
        }
    }
    if !rd.is_empty() {
        return Err(format!("{} bytes after the last row", rd.len()));
    }
    Ok(out)
}

fn read_decimal(rd: &mut &[u8]) -> Result<Decimal, String> {
    let sign_scale: u8 = read_int(rd).map_err(|e| e.to_string())?;
    let lo: u64 = read_int(rd).map_err(|e| e.to_string())?;
    let hi: u32 = read_int(rd).map_err(|e| e.to_string())?;
    let m = (u128::from(hi) << 64 | u128::from(lo)) as i128;
    let mut d = Decimal::try_from_i128_with_scale(m, u32::from(sign_scale & !NEGATIVE))
        .map_err(|e| e.to_string())?;
    // Set apart from the mantissa so that a negative zero ("-0.00") keeps its sign.
    d.set_sign_negative(sign_scale & NEGATIVE != 0);
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn candle(t: i64, o: &str, v: &str) -> Candle {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        Candle {
            t,
            o: d(o),
            h: d(o),
            l: d(o),
            c: d(o),
            v: d(v),
            closed: t % 2 == 0,
            synthetic: false,
            ..Default::default()
        }
    }

    #[test]
    fn candles_come_back_digit_for_digit() {
        let mut negative_zero = Decimal::from_str("0.00").unwrap();
        negative_zero.set_sign_negative(true);
        let mut candles = vec![
            candle(1_764_000_000_000, "91234.10", "12.34560000"),
            candle(-60_000, "-0.00", "0"),
            candle(
                0,
                "79228162514264337593543950335",
                "0.0000000000000000000000000001",
            ),
            candle(60_000, "-79228162514264337593543950335", "0.00001000"),
        ];
        candles[1].c = negative_zero;
        let back = decode(&encode(&candles), i64::MIN, i64::MAX).unwrap();
        assert_eq!(back, candles);
        let text = |c: &[Candle]| {
            c.iter()
                .map(|c| format!("{} {}", c.o, c.v))
                .collect::<Vec<_>>()
        };
        assert_eq!(text(&back), text(&candles), "scale and sign kept");
        assert!(back[1].c.is_sign_negative(), "negative zero keeps its sign");
        let window = decode(&encode(&candles), -60_000, 0).unwrap();
        assert_eq!(window, candles[1..3].to_vec(), "only the window's candles");
    }

    #[test]
    fn extra_fields_come_back_and_rows_without_them_stay_as_they_were() {
        let d = |s: &str| Some(Decimal::from_str(s).unwrap());
        let plain = candle(0, "91234.10", "12.34560000");
        let binance = Candle {
            quote_volume: d("1126541.42000000"),
            trades: Some(321),
            taker_buy_base: d("6.10000000"),
            taker_buy_quote: d("556000.10000000"),
            ..candle(60_000, "91250.55", "1.00000000")
        };
        let kraken = Candle {
            vwap: d("0.0"),
            trades: Some(0),
            ..candle(120_000, "106038.2", "0.00000000")
        };
        let from_trades = Candle {
            vwap: d("106040.1"),
            trades: Some(3),
            built_from: Some(BuiltFrom::Trades),
            ..candle(180_000, "106038.2", "0.08317981")
        };
        let candles = vec![plain.clone(), binance, kraken, from_trades];
        let body = encode(&candles);
        assert_eq!(decode(&body, i64::MIN, i64::MAX).unwrap(), candles);
        let text = |c: &Candle| c.taker_buy_quote.map(|d| d.to_string());
        assert_eq!(
            text(&decode(&body, 60_000, 60_000).unwrap()[0]).as_deref(),
            Some("556000.10000000")
        );
        // A row without extras is the 17 values alone.
        let old = encode(std::slice::from_ref(&plain));
        assert_eq!(old[1..4], [0xdc, 0, 17], "an array of 17");
        // A mask that does not match the row's length is an error, never a candle.
        let mut bad = encode(&candles[2..3]);
        let mask_at = bad.iter().rposition(|b| *b == (VWAP | TRADES)).unwrap();
        bad[mask_at] = VWAP;
        assert!(decode(&bad, i64::MIN, i64::MAX).is_err());
        // The trades flag is a bit without a value; an unknown bit is an error.
        let flagged = encode(&candles[3..]);
        let mask_at = flagged
            .iter()
            .rposition(|b| *b == (VWAP | TRADES | FROM_TRADES))
            .unwrap();
        let mut unknown = flagged.clone();
        unknown[mask_at] |= 64;
        assert!(decode(&unknown, i64::MIN, i64::MAX).is_err());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(decode(b"\x91\x01", 0, 1).is_err());
        // A scale of 29 is not a decimal.
        let mut bad = encode(&[candle(0, "1", "1")]);
        bad[5] = 29; // after the array headers (1 + 3 bytes) and t (1 byte)
        assert!(decode(&bad, 0, 1)
            .unwrap_err()
            .to_lowercase()
            .contains("scale"));
        let good = encode(&[candle(0, "1", "1")]);
        assert!(decode(&good[..good.len() - 1], 0, 1).is_err(), "truncated");
        assert!(
            decode(&[&good[..], b"\x01"].concat(), 0, 1).is_err(),
            "trailing bytes"
        );
    }

    proptest! {
        #[test]
        fn any_decimal_round_trips(lo in any::<u64>(), hi in any::<u32>(), scale in 0u32..=28, neg in any::<bool>(), t in any::<i64>()) {
            let mut d = Decimal::from_i128_with_scale((u128::from(hi) << 64 | u128::from(lo)) as i128, scale);
            d.set_sign_negative(neg);
            let c = Candle { t, o: d, h: d, l: d, c: d, v: d, closed: neg, synthetic: false, ..Default::default() };
            let back = decode(&encode(std::slice::from_ref(&c)), i64::MIN, i64::MAX).unwrap();
            prop_assert_eq!(back[0].o.to_string(), d.to_string());
            prop_assert_eq!(&back[0], &c);
        }
    }
}
