//! Kraken `GET /0/public/OHLC?pair&interval&since`.
//!
//! `{"error":[],"result":{"XXBTZUSD":[[time(s),"open","high","low","close","vwap","volume",count]],"last":…}}`:
//! the result key is Kraken's own pair name; its newest 720 committed rows and the forming
//! one after them (721); `last` is the newest committed row's time (a number, or a string
//! in some recordings). Errors come in `error` with HTTP 200, e.g. `EQuery:Unknown asset pair`.

use std::collections::BTreeMap;

use candlepipe_core::{Candle, Interval, Millis};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::parse::{cut, decimal, field, integer, optional_count};
use crate::FetchError;

pub const PATH: &str = "/0/public/OHLC";
/// Kraken serves only its 720 most recent committed candles (and the forming one), whatever
/// `since` asks.
pub const PAGE: i64 = 720;

/// The oldest open time of `iv` Kraken's OHLC still serves at `now`: [`PAGE`] committed
/// intervals before the forming one (a recorded 721-row page spans exactly that).
pub fn oldest_kept(iv: Interval, now: Millis) -> Millis {
    iv.open_of(now) - PAGE * iv.millis()
}

/// `native` is the pair's `altname` from Kraken's market list (`XBTUSD`): Kraken's names
/// for assets are its own, so there is no rule to make one from a unified symbol.
pub fn query(native: &str, iv: Interval, from: Millis) -> Vec<(&'static str, String)> {
    vec![
        ("pair", native.to_string()),
        ("interval", iv.minutes().to_string()),
        ("since", (from.div_euclid(1000) - 1).to_string()),
    ]
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default)]
    error: Vec<String>,
    #[serde(borrow, default)]
    result: Option<BTreeMap<String, &'a RawValue>>,
}

pub fn parse(body: &[u8], closed_bound: Millis) -> Result<Vec<Candle>, FetchError> {
    let parsed: Body = serde_json::from_slice(body)
        .map_err(|e| FetchError::Malformed(format!("kraken body: {e}")))?;
    if let Some(first) = parsed.error.first() {
        return Err(error_message(first));
    }
    let result = parsed
        .result
        .ok_or_else(|| FetchError::Malformed("kraken body has neither error nor result".into()))?;
    let raw = result
        .iter()
        .find(|(k, _)| k.as_str() != "last")
        .map(|(_, v)| *v)
        .ok_or_else(|| FetchError::Malformed("kraken result has no pair".into()))?;
    let rows: Vec<Vec<&RawValue>> = serde_json::from_str(raw.get())
        .map_err(|e| FetchError::Malformed(format!("kraken rows: {e}")))?;
    let n = rows.len();
    // Rows after `last` are not committed; without `last`, the last row is not.
    let committed = result
        .get("last")
        .and_then(|v| {
            let text = v.get().trim_matches('"');
            text.parse::<i64>().ok()
        })
        .map(|s| s * 1000);
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let t = integer(field(row, 0)?)? * 1000;
            Ok(Candle {
                t,
                o: decimal(field(row, 1)?)?,
                h: decimal(field(row, 2)?)?,
                l: decimal(field(row, 3)?)?,
                c: decimal(field(row, 4)?)?,
                v: decimal(field(row, 6)?)?,
                vwap: Some(decimal(field(row, 5)?)?),
                trades: optional_count(row, 7)?,
                // An uncommitted row is open whatever the clock says.
                closed: t <= closed_bound
                    && match committed {
                        Some(last) => t <= last,
                        None => i + 1 < n,
                    },
                synthetic: false,
                ..Default::default()
            })
        })
        .collect()
}

/// The error a Kraken body carries, if any (they come with HTTP 200).
pub fn check_error(body: &[u8]) -> Result<(), FetchError> {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        error: Vec<String>,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(Errors { error }) if !error.is_empty() => Err(error_message(&error[0])),
        _ => Ok(()),
    }
}

fn error_message(e: &str) -> FetchError {
    if e.starts_with("EQuery:Unknown asset pair") {
        FetchError::UnknownSymbol(e.to_string())
    } else if e.starts_with("EGeneral:Invalid arguments") {
        FetchError::UnsupportedInterval(e.to_string())
    } else if e.starts_with("EAPI:Rate limit exceeded")
        || e.starts_with("EGeneral:Too many requests")
    {
        FetchError::RateLimited {
            retry_after: None,
            banned: false,
            message: e.to_string(),
        }
    } else {
        FetchError::Status {
            status: 503,
            message: cut(e),
        }
    }
}

/// A non-200 answer (Kraken's errors usually come with 200, see [`parse`]).
pub fn error(status: u16, body: &[u8]) -> FetchError {
    match parse(body, 0) {
        Err(
            e @ (FetchError::UnknownSymbol(_)
            | FetchError::UnsupportedInterval(_)
            | FetchError::RateLimited { .. }),
        ) => e,
        _ => FetchError::Status {
            status,
            message: cut(&String::from_utf8_lossy(body)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_body_becomes_unified_candles_and_last_row_stays_open() {
        let body = br#"{"error":[],"result":{"XXBTZUSD":[
            [1764000000,"91234.1","91300.0","91200.0","91250.5","91250.1","12.34560000",321],
            [1764000060,"91250.5","91260.0","91240.0","91255.0","91250.0","1.00000000",3]],
            "last":1764000000}}"#;
        let c = parse(body, i64::MAX).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].t, c[0].o.to_string(), c[0].v.to_string()),
            (1764000000000, "91234.1".into(), "12.34560000".into())
        );
        assert!(c[0].closed && !c[1].closed);
    }

    #[test]
    fn rows_after_last_are_uncommitted() {
        // Kraken has not rolled over yet: `last` is two rows back.
        let body = br#"{"error":[],"result":{"XXBTZUSD":[
            [1764000000,"1","1","1","1","1","1",1],
            [1764000060,"1","1","1","1","1","1",1],
            [1764000120,"1","1","1","1","1","1",1]],
            "last":"1764000000"}}"#;
        let c = parse(body, i64::MAX).unwrap();
        assert_eq!(
            c.iter().map(|c| c.closed).collect::<Vec<_>>(),
            vec![true, false, false]
        );
    }

    #[test]
    fn errors_in_the_body_map() {
        assert!(matches!(
            parse(br#"{"error":["EQuery:Unknown asset pair"]}"#, 0),
            Err(FetchError::UnknownSymbol(_))
        ));
        assert!(matches!(
            parse(br#"{"error":["EAPI:Rate limit exceeded"]}"#, 0),
            Err(FetchError::RateLimited { .. })
        ));
        assert!(matches!(
            parse(br#"{"error":[],"result":{"last":1}}"#, 0),
            Err(FetchError::Malformed(_))
        ));
        assert!(matches!(parse(b"<html>", 0), Err(FetchError::Malformed(_))));
    }
}
