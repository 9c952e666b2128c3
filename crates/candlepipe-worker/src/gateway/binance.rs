//! Binance's spot market-data endpoints under `/binance`, as Binance writes them
//! (`https://api.binance.com` → `http://<gateway>/binance`):
//! - `GET /api/v3/ping` → `{}`; `GET /api/v3/time` → `{"serverTime":…}`;
//! - `GET /api/v3/exchangeInfo[?symbol=…|?symbols=["…",…]]` → Binance's own, as the cluster's
//!   market list last loaded it (only `serverTime` is now);
//! - `GET /api/v3/klines?symbol&interval[&startTime][&endTime][&limit]` → the 12-column
//!   rows, every value's text as Binance wrote it (`limit` default 500, at most 1000; a
//!   start inside an interval begins at the next one, as Binance's).
//!
//! Errors as Binance's: HTTP 400 with `{"code":-1121,"msg":"Invalid symbol."}`, -1120 for an
//! interval, -1102 for a missing parameter, -1100 for an unreadable one; `rate_limited` is
//! 429 with `Retry-After` (seconds) and -1003; an exchange or cluster failure is 503 with
//! -1001 (or -1007 for a timeout). A window before the pair's history is `[]`.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use candlepipe_client::Error as ClientError;
use candlepipe_core::{now_ms, Candle, CandlesRequest, ErrorCode, Exchange, Interval, Millis};
use rust_decimal::Decimal;

use super::window::between;
use super::{json, retry_after_seconds, served, unified, Gateway};

/// Binance's default and largest `limit` for klines.
const DEFAULT_LIMIT: i64 = 500;
const MAX_LIMIT: i64 = 1000;

pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/api/v3/ping", get(ping))
        .route("/api/v3/time", get(time))
        .route("/api/v3/klines", get(klines))
        .route("/api/v3/exchangeInfo", get(exchange_info))
}

async fn ping() -> Response {
    json(StatusCode::OK, "{}".into())
}

async fn time() -> Response {
    json(StatusCode::OK, format!("{{\"serverTime\":{}}}", now_ms()))
}

/// An answer Binance gives instead of klines: its HTTP status and error body
/// (`{"code":-1121,"msg":"Invalid symbol."}`), with `Retry-After` on a 429.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: i32,
    msg: String,
    retry_after_s: Option<u64>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"code": self.code, "msg": self.msg}).to_string();
        let mut r = json(self.status, body);
        if let Some(s) = self.retry_after_s {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

fn refusal(status: StatusCode, code: i32, msg: &str) -> Refusal {
    Refusal {
        status,
        code,
        msg: msg.to_string(),
        retry_after_s: None,
    }
}

fn missing(param: &str) -> Refusal {
    refusal(
        StatusCode::BAD_REQUEST,
        -1102,
        &format!("Mandatory parameter '{param}' was not sent, was empty/null, or malformed."),
    )
}

fn illegal(param: &str) -> Refusal {
    refusal(
        StatusCode::BAD_REQUEST,
        -1100,
        &format!(
            "Illegal characters found in parameter '{param}'; legal range is '^[0-9]{{1,20}}$'."
        ),
    )
}

/// A number parameter, if sent.
fn number(q: &HashMap<String, String>, param: &str) -> Result<Option<i64>, Refusal> {
    match q.get(param).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| illegal(param)),
    }
}

async fn klines(
    State(gw): State<Gateway>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let answer = match query {
        Ok(Query(q)) => answer(&gw, &q).await,
        Err(_) => Err(unreadable()),
    };
    respond("klines", answer)
}

async fn exchange_info(
    State(gw): State<Gateway>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let answer = match query {
        Ok(Query(q)) => info(&gw, &q).await,
        Err(_) => Err(unreadable()),
    };
    respond("exchangeInfo", answer)
}

/// Binance's `exchangeInfo` for the symbols `q` names (all without `symbol`/`symbols`).
async fn info(gw: &Gateway, q: &HashMap<String, String>) -> Result<String, Refusal> {
    let only: Option<Vec<String>> = match (q.get("symbol"), q.get("symbols")) {
        (Some(_), Some(_)) => {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                -1128,
                "Combination of optional parameters invalid.",
            ))
        }
        (Some(one), None) => Some(vec![one.trim().to_ascii_uppercase()]),
        (None, Some(list)) => Some(
            serde_json::from_str::<Vec<String>>(list)
                .map_err(|_| illegal_list("symbols"))?
                .into_iter()
                .map(|s| s.to_ascii_uppercase())
                .collect(),
        ),
        (None, None) => None,
    };
    let info = served(gw, Exchange::Binance, |s| s.binance_info)
        .await
        .ok_or_else(|| unavailable("Binance's exchangeInfo is not at hand"))?;
    info.write(now_ms(), only.as_deref())
        .map_err(|_| refusal(StatusCode::BAD_REQUEST, -1121, "Invalid symbol."))
}

fn illegal_list(param: &str) -> Refusal {
    refusal(
        StatusCode::BAD_REQUEST,
        -1100,
        &format!("Illegal characters found in parameter '{param}'; legal range is '^\\[(\"[A-Z0-9-_.]{{1,20}}\"(,\"[A-Z0-9-_.]{{1,20}}\"){{0,}}){{0,1}}\\]$'."),
    )
}

/// A query string that is not one.
fn unreadable() -> Refusal {
    refusal(
        StatusCode::BAD_REQUEST,
        -1100,
        "Illegal characters found in a parameter.",
    )
}

/// The answer of `endpoint` as a response, counted by its HTTP status.
fn respond(endpoint: &'static str, answer: Result<String, Refusal>) -> Response {
    let status = match &answer {
        Ok(_) => "200".to_string(),
        Err(r) => r.status.as_u16().to_string(),
    };
    metrics::counter!("candlepipe_gateway_requests_total", "exchange" => "binance", "endpoint" => endpoint, "status" => status)
        .increment(1);
    match answer {
        Ok(body) => json(StatusCode::OK, body),
        Err(r) => r.into_response(),
    }
}

/// The klines rows `q` asks for, or Binance's refusal.
async fn answer(gw: &Gateway, q: &HashMap<String, String>) -> Result<String, Refusal> {
    let native = q
        .get("symbol")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("symbol"))?;
    let iv_text = q
        .get("interval")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("interval"))?;
    let invalid_interval = || refusal(StatusCode::BAD_REQUEST, -1120, "Invalid interval.");
    let iv = Interval::parse(iv_text).map_err(|_| invalid_interval())?;
    if iv.as_str() != iv_text {
        return Err(invalid_interval());
    }
    if let Some(tz) = q.get("timeZone").map(|t| t.trim()) {
        if !matches!(tz, "" | "0" | "+0" | "-0" | "00:00" | "+00:00" | "-00:00") {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                -1100,
                "Illegal characters found in parameter 'timeZone'; candlepipe serves UTC klines only.",
            ));
        }
    }
    let limit = number(q, "limit")?
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_LIMIT);
    let (start, end) = (number(q, "startTime")?, number(q, "endTime")?);
    let native = native.to_ascii_uppercase();
    let symbol = match unified(gw, Exchange::Binance, &native).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(refusal(StatusCode::BAD_REQUEST, -1121, "Invalid symbol.")),
        Err(no_list) => return Err(unavailable(&no_list.to_string())),
    };
    let now = now_ms();
    let Some(window) = between(iv, start, end, limit, now) else {
        return Ok("[]".into());
    };
    let (limit, end) = window.request(iv, now);
    let req = CandlesRequest {
        end,
        ..CandlesRequest::latest("binance", symbol.as_str(), iv.as_str(), limit)
    };
    let reply = match gw.client.candles(&req).await {
        Ok(r) => r,
        Err(e) if e.code() == Some(ErrorCode::HistoryUnavailable) => return Ok("[]".into()),
        Err(e) => return Err(failure(&e)),
    };
    let rows = reply
        .candles
        .iter()
        .filter(|c| c.t >= window.first && c.t <= window.last);
    Ok(rows_json(rows, iv))
}

/// A request refused before any endpoint saw it (too many from its client), as this
/// exchange refuses.
pub(super) fn refused(e: &ClientError) -> Response {
    respond("refused", Err(failure(e)))
}

/// A failed candle request as Binance would answer it: the one place candlepipe's codes
/// become Binance's.
fn failure(e: &ClientError) -> Refusal {
    match e.code() {
        Some(ErrorCode::UnknownSymbol | ErrorCode::InvalidSymbol) => {
            refusal(StatusCode::BAD_REQUEST, -1121, "Invalid symbol.")
        }
        Some(ErrorCode::UnsupportedInterval) => {
            refusal(StatusCode::BAD_REQUEST, -1120, "Invalid interval.")
        }
        Some(ErrorCode::RateLimited) => Refusal {
            retry_after_s: Some(
                retry_after_seconds(e),
            ),
            ..refusal(
                StatusCode::TOO_MANY_REQUESTS,
                -1003,
                "Too much request weight used; the exchange's budget is spent for now. Please retry after the Retry-After seconds.",
            )
        },
        Some(ErrorCode::Timeout) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            -1007,
            "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
        ),
        Some(ErrorCode::BadRequest | ErrorCode::LimitOutOfRange | ErrorCode::UnknownExchange) => {
            refusal(StatusCode::BAD_REQUEST, -1100, &e.to_string())
        }
        _ => unavailable(&e.to_string()),
    }
}

fn unavailable(why: &str) -> Refusal {
    tracing::warn!(error = why, "gateway: binance klines not answered");
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        -1001,
        "Internal error; unable to process your request. Please try again.",
    )
}

/// Klines rows as Binance writes them: `[openTime,"open","high","low","close","volume",
/// closeTime,"quoteVolume",trades,"takerBuyBase","takerBuyQuote","0"]`.
fn rows_json<'a>(candles: impl Iterator<Item = &'a Candle>, iv: Interval) -> String {
    let mut out = Vec::with_capacity(4096);
    out.push(b'[');
    let mut digits = itoa::Buffer::new();
    for (i, c) in candles.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        out.extend_from_slice(digits.format(c.t).as_bytes());
        for d in [&c.o, &c.h, &c.l, &c.c, &c.v] {
            text(&mut out, Some(d));
        }
        out.push(b',');
        out.extend_from_slice(digits.format(close_time(c.t, iv)).as_bytes());
        text(&mut out, c.quote_volume.as_ref());
        out.push(b',');
        out.extend_from_slice(digits.format(c.trades.unwrap_or(0)).as_bytes());
        text(&mut out, c.taker_buy_base.as_ref());
        text(&mut out, c.taker_buy_quote.as_ref());
        out.extend_from_slice(b",\"0\"]");
    }
    out.push(b']');
    // Only ASCII digits, punctuation and decimal text were written.
    String::from_utf8(out).unwrap_or_default()
}

/// `,"<decimal>"`; a field the store lacks (never for Binance's own candles) as `"0"`.
fn text(out: &mut Vec<u8>, d: Option<&Decimal>) {
    out.extend_from_slice(b",\"");
    match d {
        Some(d) => candlepipe_core::decimal_text::write(d, out),
        None => out.push(b'0'),
    }
    out.push(b'"');
}

/// A kline's close time: the last millisecond of its interval.
fn close_time(t: Millis, iv: Interval) -> Millis {
    t + iv.millis() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_written_as_binance_writes_them() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let c = Candle {
            t: 1_764_000_000_000,
            o: d("91234.10"),
            h: d("91300.00"),
            l: d("91200.00"),
            c: d("91250.55"),
            v: d("12.34560000"),
            quote_volume: Some(d("1126541.42000000")),
            trades: Some(321),
            taker_buy_base: Some(d("6.10000000")),
            taker_buy_quote: Some(d("556000.10000000")),
            closed: true,
            ..Default::default()
        };
        assert_eq!(
            rows_json([&c, &c].into_iter(), Interval::M1),
            r#"[[1764000000000,"91234.10","91300.00","91200.00","91250.55","12.34560000",1764000059999,"1126541.42000000",321,"6.10000000","556000.10000000","0"],[1764000000000,"91234.10","91300.00","91200.00","91250.55","12.34560000",1764000059999,"1126541.42000000",321,"6.10000000","556000.10000000","0"]]"#
        );
        assert_eq!(rows_json(std::iter::empty(), Interval::M1), "[]");
    }
}
