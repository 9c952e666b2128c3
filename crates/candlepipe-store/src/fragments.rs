//! A run's reply fragments: the candles of up to [`crate::series_store::RUN_CANDLES`] open
//! times, each already encoded for one reply format (`candlepipe_core::reply_parts`), with
//! their open times. A Redis hit verifies the runs its window touches and copies their
//! fragments into the reply; nothing is decoded or formatted again.
//!
//! Body: for each candle, ascending, `t` (i64, big-endian), the fragment's length (u32,
//! big-endian), the fragment.

use std::ops::Range;

use candlepipe_core::reply_parts::write_candle;
use candlepipe_core::{Candle, Encoding, Millis};

const ROW_HEAD: usize = 12;

/// The body of a run holding `candles` (ascending) in `enc`.
pub fn encode(enc: Encoding, candles: &[Candle]) -> Vec<u8> {
    let mut out = Vec::with_capacity(candles.len() * (ROW_HEAD + 120));
    for c in candles {
        out.extend_from_slice(&c.t.to_be_bytes());
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        write_candle(enc, c, &mut out);
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    out
}

/// Each candle's open time and where its fragment lies in `body`; anything malformed
/// (truncated, trailing bytes, times not ascending) is an error, never a fragment.
pub fn parse(body: &[u8]) -> Result<Vec<(Millis, Range<usize>)>, String> {
    let mut rows = Vec::with_capacity(16);
    let mut at = 0;
    while at < body.len() {
        let head = body
            .get(at..at + ROW_HEAD)
            .ok_or_else(|| format!("a row head cut short at byte {at}"))?;
        let (t, len) = head.split_at(8);
        let t = Millis::from_be_bytes(t.try_into().map_err(|_| "time")?);
        let len = u32::from_be_bytes(len.try_into().map_err(|_| "length")?) as usize;
        let start = at + ROW_HEAD;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= body.len())
            .ok_or_else(|| format!("a fragment of {len} bytes past the end at byte {start}"))?;
        if rows.last().is_some_and(|(prev, _)| *prev >= t) {
            return Err(format!("open time {t} not after the one before"));
        }
        rows.push((t, start..end));
        at = end;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candle(t: i64) -> Candle {
        let d = |s: &str| s.parse().unwrap();
        Candle {
            t,
            o: d("91234.10"),
            h: d("91300"),
            l: d("91000.5"),
            c: d("91200.00"),
            v: d("12.345"),
            closed: true,
            synthetic: false,
            ..Default::default()
        }
    }

    #[test]
    fn fragments_come_back_where_they_were_written() {
        let candles = [candle(0), candle(60_000), candle(180_000)];
        for enc in [Encoding::Json, Encoding::Msgpack] {
            let body = encode(enc, &candles);
            let rows = parse(&body).unwrap();
            assert_eq!(rows.len(), 3);
            for ((t, range), c) in rows.iter().zip(&candles) {
                let mut want = Vec::new();
                write_candle(enc, c, &mut want);
                assert_eq!((*t, &body[range.clone()]), (c.t, &want[..]));
            }
            assert!(parse(&body[..body.len() - 1]).is_err(), "truncated");
            assert!(parse(&[&body[..], &[0]].concat()).is_err(), "trailing byte");
        }
        assert_eq!(parse(&[]).unwrap(), vec![], "an empty run");
        let backwards = encode(Encoding::Json, &[candle(60_000), candle(0)]);
        assert!(parse(&backwards).is_err());
    }
}
