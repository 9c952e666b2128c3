//! Coinbase Exchange's public market-data endpoints under `/coinbase`, as Coinbase writes
//! them (`https://api.exchange.coinbase.com` → `http://<gateway>/coinbase`):
//! - `GET /products`, `GET /products/{id}`, `GET /currencies`, `GET /currencies/{id}` →
//!   Coinbase's own, as the cluster's market and currency lists last loaded them;
//! - `GET /products/{id}/candles?granularity[&start][&end]` → at most 300 rows, newest first,
//!   `[time, low, high, open, close, volume]` as JSON numbers without trailing zeros;
//!   `start`/`end` in unix seconds or RFC 3339, `end` inclusive, intervals without trades
//!   left out (as Coinbase's);
//! - `GET /time` → `{"iso":"…","epoch":…}`.
//!
//! Errors as Coinbase's: `{"message":"NotFound"}` 404, `Unsupported granularity`, `start must
//! be before end` and the 300-row limit 400, 429 with `Retry-After` when the budget is spent,
//! 503 when the exchange or the cluster fails.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use candlepipe_client::Error as ClientError;
use candlepipe_core::{now_ms, Candle, CandlesRequest, ErrorCode, Exchange, Interval, Millis};
use candlepipe_exchange::coinbase_list::CoinbaseList;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::window::Window;
use super::{json, retry_after_seconds, served, unified, Gateway};
use crate::cluster::markets::Served;

/// The most rows one candles request may span.
const MAX_ROWS: i64 = 300;

pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/time", get(time))
        .route("/products", get(products))
        .route("/products/{id}", get(product))
        .route("/products/{id}/candles", get(candles))
        .route("/currencies", get(currencies))
        .route("/currencies/{id}", get(currency))
}

/// Coinbase's error: its status, `{"message":…}`, and `Retry-After` on a 429.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    status: StatusCode,
    message: &'static str,
    retry_after_s: Option<u64>,
}

const fn refusal(status: StatusCode, message: &'static str) -> Refusal {
    Refusal {
        status,
        message,
        retry_after_s: None,
    }
}

const NOT_FOUND: Refusal = refusal(StatusCode::NOT_FOUND, "NotFound");
const UNAVAILABLE: Refusal = refusal(StatusCode::SERVICE_UNAVAILABLE, "service unavailable");

fn respond(endpoint: &'static str, answer: Result<String, Refusal>) -> Response {
    let status = match &answer {
        Ok(_) => StatusCode::OK,
        Err(r) => r.status,
    };
    metrics::counter!("candlepipe_gateway_requests_total", "exchange" => "coinbase", "endpoint" => endpoint, "status" => status.as_u16().to_string())
        .increment(1);
    match answer {
        Ok(body) => json(StatusCode::OK, body),
        Err(r) => {
            let mut resp = json(r.status, format!("{{\"message\":\"{}\"}}", r.message));
            if let Some(s) = r.retry_after_s {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            resp
        }
    }
}

async fn time() -> Response {
    let now = now_ms();
    let iso = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default();
    let body = format!(
        "{{\"iso\":\"{iso}\",\"epoch\":{}.{:03}}}",
        now.div_euclid(1000),
        now.rem_euclid(1000)
    );
    respond("time", Ok(body))
}

type Pick = fn(Served) -> Option<Arc<CoinbaseList>>;
const PRODUCTS: Pick = |s| s.coinbase_products;
const CURRENCIES: Pick = |s| s.coinbase_currencies;

/// One of Coinbase's lists as the cluster keeps it, looked for in Redis once more if not at
/// hand.
async fn kept(gw: &Gateway, pick: Pick) -> Result<Arc<CoinbaseList>, Refusal> {
    let found = served(gw, Exchange::Coinbase, pick).await;
    found.ok_or_else(|| {
        tracing::warn!("gateway: a Coinbase list is not at hand");
        UNAVAILABLE
    })
}

/// The whole list as Coinbase wrote it.
async fn whole(gw: &Gateway, pick: Pick) -> Result<String, Refusal> {
    kept(gw, pick).await.map(|l| l.all().to_string())
}

/// One object of the list as Coinbase wrote it.
async fn one(gw: &Gateway, pick: Pick, id: &str) -> Result<String, Refusal> {
    let list = kept(gw, pick).await?;
    list.get(id).map(str::to_string).ok_or(NOT_FOUND)
}

async fn products(State(gw): State<Gateway>) -> Response {
    respond("products", whole(&gw, PRODUCTS).await)
}

/// An id that is not even text names nothing Coinbase has.
type Id = Result<Path<String>, PathRejection>;

async fn product(State(gw): State<Gateway>, id: Id) -> Response {
    let answer = match id {
        Ok(Path(id)) => one(&gw, PRODUCTS, &id).await,
        Err(_) => Err(NOT_FOUND),
    };
    respond("product", answer)
}

async fn currencies(State(gw): State<Gateway>) -> Response {
    respond("currencies", whole(&gw, CURRENCIES).await)
}

async fn currency(State(gw): State<Gateway>, id: Id) -> Response {
    let answer = match id {
        Ok(Path(id)) => one(&gw, CURRENCIES, &id).await,
        Err(_) => Err(NOT_FOUND),
    };
    respond("currency", answer)
}

async fn candles(
    State(gw): State<Gateway>,
    id: Id,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let answer = match (id, query) {
        (Err(_), _) => Err(NOT_FOUND),
        (Ok(Path(id)), Ok(Query(q))) => rows(&gw, &id, &q).await,
        (Ok(_), Err(_)) => Err(refusal(StatusCode::BAD_REQUEST, "invalid query")),
    };
    respond("candles", answer)
}

/// Unix seconds or RFC 3339, as Coinbase takes them.
fn instant(s: &str) -> Option<Millis> {
    if let Ok(secs) = s.trim().parse::<i64>() {
        return Some(secs.saturating_mul(1000));
    }
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as Millis)
}

async fn rows(gw: &Gateway, id: &str, q: &HashMap<String, String>) -> Result<String, Refusal> {
    let symbol = match unified(gw, Exchange::Coinbase, id).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(NOT_FOUND),
        Err(_) => return Err(UNAVAILABLE),
    };
    let unsupported = refusal(StatusCode::BAD_REQUEST, "Unsupported granularity");
    let seconds = match q.get("granularity").map(|g| g.trim()) {
        None | Some("") => 60,
        Some(g) => g.parse::<i64>().map_err(|_| unsupported)?,
    };
    let iv = Interval::ALL
        .into_iter()
        .find(|i| i.millis() == seconds * 1000 && Exchange::Coinbase.serves(*i))
        .ok_or(unsupported)?;
    let bad_time = || refusal(StatusCode::BAD_REQUEST, "invalid start or end");
    let time_of = |k: &str| match q.get(k).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => instant(v).map(Some).ok_or_else(bad_time),
    };
    let (start, end) = (time_of("start")?, time_of("end")?);
    let now = now_ms();
    let step = iv.millis();
    let end = end.unwrap_or(now).min(now);
    let start = start.unwrap_or(end - (MAX_ROWS - 1) * step);
    if start > end {
        return Err(refusal(StatusCode::BAD_REQUEST, "start must be before end"));
    }
    if (end - start) / step + 1 > MAX_ROWS {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "granularity too small for the requested time range. Count of aggregations requested exceeds 300",
        ));
    }
    let open = iv.open_of(start);
    let window = Window {
        first: if open < start { open + step } else { open },
        last: iv.open_of(end),
    };
    if window.first > window.last {
        return Ok("[]".into());
    }
    let (limit, end) = window.request(iv, now);
    let req = CandlesRequest {
        end,
        ..CandlesRequest::latest("coinbase", symbol.as_str(), iv.as_str(), limit)
    };
    let reply = match gw.client.candles(&req).await {
        Ok(r) => r,
        Err(e) if e.code() == Some(ErrorCode::HistoryUnavailable) => return Ok("[]".into()),
        Err(e) => return Err(failure(&e)),
    };
    let chosen: Vec<&Candle> = reply
        .candles
        .iter()
        .rev()
        .filter(|c| c.t >= window.first && c.t <= window.last)
        .collect();
    Ok(rows_json(&chosen))
}

/// A request refused before any endpoint saw it (too many from its client), as this
/// exchange refuses.
pub(super) fn refused(e: &ClientError) -> Response {
    respond("refused", Err(failure(e)))
}

/// A failed candle request as Coinbase would answer it: the one place candlepipe's codes
/// become Coinbase's.
fn failure(e: &ClientError) -> Refusal {
    match e.code() {
        Some(ErrorCode::UnknownSymbol | ErrorCode::InvalidSymbol) => NOT_FOUND,
        Some(ErrorCode::UnsupportedInterval) => {
            refusal(StatusCode::BAD_REQUEST, "Unsupported granularity")
        }
        Some(ErrorCode::RateLimited) => Refusal {
            retry_after_s: Some(retry_after_seconds(e)),
            ..refusal(StatusCode::TOO_MANY_REQUESTS, "Public rate limit exceeded")
        },
        _ => {
            tracing::warn!(error = %e, "gateway: coinbase candles not answered");
            UNAVAILABLE
        }
    }
}

/// `[[time,low,high,open,close,volume],…]`, newest first, numbers without trailing zeros.
fn rows_json(candles: &[&Candle]) -> String {
    let mut out = Vec::with_capacity(2 + candles.len() * 80);
    out.push(b'[');
    let mut digits = itoa::Buffer::new();
    for (i, c) in candles.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        out.extend_from_slice(digits.format(c.t / 1000).as_bytes());
        for d in [c.l, c.h, c.o, c.c, c.v] {
            out.push(b',');
            candlepipe_core::decimal_text::write(&d.normalize(), &mut out);
        }
        out.push(b']');
    }
    out.push(b']');
    // Only ASCII digits and punctuation were written.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_written_as_coinbase_writes_them() {
        let d = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
        let c = Candle {
            t: 1_584_662_400_000,
            o: d("6230.90"),
            h: d("6240.00"),
            l: d("6222.22"),
            c: d("6235.1"),
            v: d("12.50000000"),
            ..Default::default()
        };
        assert_eq!(
            rows_json(&[&c, &c]),
            "[[1584662400,6222.22,6240,6230.9,6235.1,12.5],[1584662400,6222.22,6240,6230.9,6235.1,12.5]]"
        );
        assert_eq!(instant("1584662400"), Some(1_584_662_400_000));
        assert_eq!(instant("2020-03-20T00:00:00Z"), Some(1_584_662_400_000));
        assert_eq!(instant("yesterday"), None);
    }
}
