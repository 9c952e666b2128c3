//! Coinbase Exchange `GET /products/{BASE-QUOTE}/candles?granularity&start&end`.
//!
//! Rows: `[time(s), low, high, open, close, volume]` as JSON numbers, newest first, at most
//! 300 per call. Errors: `{"message":"NotFound"}` (404), `{"message":"Unsupported granularity"}`.

use candlepipe_core::{Candle, Interval, Millis, Symbol};
use serde::Deserialize;
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
            })
        })
        .collect::<Result<Vec<_>, FetchError>>()?;
    candles.sort_by_key(|c| c.t);
    Ok(candles)
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
