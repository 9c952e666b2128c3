//! Binance `GET /api/v3/klines`.
//!
//! Rows: `[openTime, "open", "high", "low", "close", "volume", closeTime, "quoteVolume",
//! trades, "takerBuyBase", "takerBuyQuote", "0"]`, oldest first, at most 1000 per call.
//! Every field but the close time (open + interval − 1) and the ignored last is kept. Errors: `{"code":-1121,"msg":"Invalid symbol."}`.

use candlepipe_core::{Candle, Interval, Millis, Symbol};
use serde::Deserialize;

use crate::parse::{cut, decimal, field, integer, optional_count, optional_decimal, rows};
use crate::FetchError;

pub const PAGE: i64 = 1000;
pub const PATH: &str = "/api/v3/klines";

/// How Binance names a pair (`BTCUSDT`), for when its market list is not at hand.
pub fn native_symbol(s: &Symbol) -> String {
    format!("{}{}", s.base(), s.quote())
}

pub fn query(native: &str, iv: Interval, from: Millis, to: Millis) -> Vec<(&'static str, String)> {
    vec![
        ("symbol", native.to_string()),
        ("interval", iv.as_str().to_string()),
        ("startTime", from.to_string()),
        ("endTime", (to + iv.millis() - 1).to_string()),
        ("limit", PAGE.to_string()),
    ]
}

/// Parses a 200 body. `closed_bound`: newest open time known to be closed.
pub fn parse(body: &[u8], closed_bound: Millis) -> Result<Vec<Candle>, FetchError> {
    rows(body)?
        .iter()
        .map(|row| {
            let t = integer(field(row, 0)?)?;
            Ok(Candle {
                t,
                o: decimal(field(row, 1)?)?,
                h: decimal(field(row, 2)?)?,
                l: decimal(field(row, 3)?)?,
                c: decimal(field(row, 4)?)?,
                v: decimal(field(row, 5)?)?,
                quote_volume: optional_decimal(row, 7)?,
                trades: optional_count(row, 8)?,
                taker_buy_base: optional_decimal(row, 9)?,
                taker_buy_quote: optional_decimal(row, 10)?,
                vwap: None,
                built_from: None,
                closed: t <= closed_bound,
                synthetic: false,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct ErrorBody {
    code: i64,
    msg: String,
}

/// Maps a non-200 answer. 429/418 are handled by the client before this.
pub fn error(status: u16, body: &[u8]) -> FetchError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if e.code == -1121 => FetchError::UnknownSymbol(e.msg),
        Ok(e) if e.code == -1120 => FetchError::UnsupportedInterval(e.msg),
        Ok(e) => FetchError::Status {
            status,
            message: format!("binance {}: {}", e.code, e.msg),
        },
        Err(_) => FetchError::Status {
            status,
            message: cut(&String::from_utf8_lossy(body)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_rows_become_unified_candles() {
        let body = br#"[[1764000000000,"91234.10","91300.00","91200.00","91250.55","12.34560000",1764000059999,"1126541.42",321,"6.1","556000.1","0"],
                        [1764000060000,"91250.55","91260.00","91240.00","91255.00","1.00000000",1764000119999,"91255.0",3,"0.5","45000.0","0"]]"#;
        let c = parse(body, 1764000000000).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].t, 1764000000000);
        assert_eq!(c[0].o.to_string(), "91234.10");
        assert_eq!(c[0].v.to_string(), "12.34560000");
        assert!(c[0].closed && !c[1].closed);
        let text = |d: Option<rust_decimal::Decimal>| d.map(|d| d.to_string());
        assert_eq!(text(c[0].quote_volume).as_deref(), Some("1126541.42"));
        assert_eq!(c[0].trades, Some(321));
        assert_eq!(text(c[1].taker_buy_base).as_deref(), Some("0.5"));
        assert_eq!(text(c[1].taker_buy_quote).as_deref(), Some("45000.0"));
        assert_eq!(c[0].vwap, None);
    }

    #[test]
    fn error_codes_map() {
        assert_eq!(
            error(400, br#"{"code":-1121,"msg":"Invalid symbol."}"#),
            FetchError::UnknownSymbol("Invalid symbol.".into())
        );
        assert!(matches!(
            error(400, br#"{"code":-1120,"msg":"Invalid interval."}"#),
            FetchError::UnsupportedInterval(_)
        ));
        assert!(matches!(
            error(502, b"<html>bad gateway</html>"),
            FetchError::Status { status: 502, .. }
        ));
    }
}
