//! Coinbase Exchange `GET /products/{BASE-QUOTE}/candles?granularity&start&end`.
//!
//! Rows: `[time(s), low, high, open, close, volume]` as JSON numbers, newest first, at most
//! 300 per call. Errors: `{"message":"NotFound"}` (404), `{"message":"Unsupported granularity"}`.
//!
//! And `GET /products/{BASE-QUOTE}/trades?limit&after`: the newest trades first, at most
//! 1,000 a page; `after=<trade_id>` pages back to older ones (ids below it). Each is
//! `{"time","trade_id","price","size","side"}`, prices and sizes as strings.

use candlepipe_core::{Candle, Interval, Millis, Symbol};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::parse::{cut, decimal, field, integer, rows};
use crate::FetchError;

pub const PAGE: i64 = 300;

/// How Coinbase names a product (`BTC-USD`), for when its market list is not at hand.
pub fn native_symbol(s: &Symbol) -> String {
    format!("{}-{}", s.base(), s.quote())
}

pub fn path(native: &str) -> String {
    format!("/products/{native}/candles")
}

fn rfc3339(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

pub fn query(iv: Interval, from: Millis, to: Millis) -> Vec<(&'static str, String)> {
    vec![
        ("granularity", (iv.millis() / 1000).to_string()),
        ("start", rfc3339(from)),
        ("end", rfc3339(to)),
    ]
}

pub fn parse(body: &[u8], closed_bound: Millis) -> Result<Vec<Candle>, FetchError> {
    let mut candles = rows(body)?
        .iter()
        .map(|row| {
            let t = integer(field(row, 0)?)? * 1000;
            Ok(Candle {
                t,
                l: decimal(field(row, 1)?)?,
                h: decimal(field(row, 2)?)?,
                o: decimal(field(row, 3)?)?,
                c: decimal(field(row, 4)?)?,
                v: decimal(field(row, 5)?)?,
                closed: t <= closed_bound,
                synthetic: false,
                ..Default::default()
            })
        })
        .collect::<Result<Vec<_>, FetchError>>()?;
    candles.sort_by_key(|c| c.t);
    Ok(candles)
}

/// Trades a page holds at most.
pub const TRADES_PAGE: usize = 1000;

pub fn trades_path(native: &str) -> String {
    format!("/products/{native}/trades")
}

/// The newest page, or the page of trades older than `after`.
pub fn trades_query(after: Option<u64>) -> Vec<(&'static str, String)> {
    let mut q = vec![("limit", TRADES_PAGE.to_string())];
    if let Some(after) = after {
        q.push(("after", after.to_string()));
    }
    q
}

/// One trade of a product, as its REST trades page has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeRow {
    pub id: u64,
    pub t: Millis,
    pub price: Decimal,
    pub size: Decimal,
}

#[derive(Deserialize)]
struct TradeBody<'a> {
    trade_id: u64,
    time: String,
    #[serde(borrow)]
    price: &'a RawValue,
    #[serde(borrow)]
    size: &'a RawValue,
}

/// A trades page, newest first as Coinbase sends it.
pub fn parse_trades(body: &[u8]) -> Result<Vec<TradeRow>, FetchError> {
    let rows: Vec<TradeBody> = serde_json::from_slice(body)
        .map_err(|e| FetchError::Malformed(format!("coinbase trades: {e}")))?;
    rows.into_iter()
        .map(|r| {
            let t = OffsetDateTime::parse(&r.time, &Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as Millis)
                .map_err(|_| FetchError::Malformed(format!("coinbase time {}", cut(&r.time))))?;
            Ok(TradeRow {
                id: r.trade_id,
                t,
                price: decimal(r.price)?,
                size: decimal(r.size)?,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
}

pub fn error(status: u16, body: &[u8]) -> FetchError {
    let message = serde_json::from_slice::<ErrorBody>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| cut(&String::from_utf8_lossy(body)));
    match status {
        404 => FetchError::UnknownSymbol(message),
        400 if message.to_ascii_lowercase().contains("granularity") => {
            FetchError::UnsupportedInterval(message)
        }
        _ => FetchError::Status { status, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trades_page_is_read_newest_first() {
        let body = br#"[{"time":"2026-12-04T10:00:30.123456Z","trade_id":75,"price":"91250.55000000","size":"0.01200000","side":"sell"},{"time":"2026-12-04T10:00:01Z","trade_id":74,"price":"91234.1","size":"1.5","side":"buy"}]"#;
        let t = parse_trades(body).unwrap();
        assert_eq!(t.iter().map(|t| t.id).collect::<Vec<_>>(), vec![75, 74]);
        assert_eq!(t[0].t % 60_000, 30_123);
        assert_eq!(t[0].price.to_string(), "91250.55000000");
        assert_eq!(t[1].size.to_string(), "1.5");
        assert!(parse_trades(br#"[{"trade_id":1}]"#).is_err());
        assert_eq!(
            trades_query(Some(74)),
            vec![("limit", "1000".to_string()), ("after", "74".to_string())]
        );
    }

    #[test]
    fn newest_first_number_rows_become_ascending_candles() {
        let body = b"[[1764000060,91240.5,91260,91250.55,91255.1,1.5],[1764000000,91200.00,91300.00,91234.10,91250.55,12.3456]]";
        let c = parse(body, 1764000000000).unwrap();
        assert_eq!(
            c.iter().map(|c| c.t).collect::<Vec<_>>(),
            vec![1764000000000, 1764000060000]
        );
        assert_eq!(c[0].o.to_string(), "91234.10");
        assert_eq!(c[0].l.to_string(), "91200.00");
        assert_eq!(c[0].v.to_string(), "12.3456");
        assert_eq!(c[1].h.to_string(), "91260");
        assert!(c[0].closed && !c[1].closed);
    }

    #[test]
    fn query_uses_seconds_granularity_and_rfc3339() {
        let q = query(Interval::M5, 1_764_000_000_000, 1_764_000_300_000);
        assert_eq!(q[0], ("granularity", "300".to_string()));
        assert_eq!(q[1], ("start", "2025-11-24T16:00:00Z".to_string()));
    }

    #[test]
    fn errors_map() {
        assert!(matches!(
            error(404, br#"{"message":"NotFound"}"#),
            FetchError::UnknownSymbol(_)
        ));
        assert!(matches!(
            error(400, br#"{"message":"Unsupported granularity"}"#),
            FetchError::UnsupportedInterval(_)
        ));
        assert!(matches!(
            error(503, b""),
            FetchError::Status { status: 503, .. }
        ));
    }
}
