//! candlepipe's own HTTP API under `/v1`, for producers that do not speak NATS:
//! - `GET /v1/candles?exchange&symbol&interval[&limit][&end][&max_age_ms][&allow_stale]
//!   [&timeout_ms][&fill_gaps]` → the `candles.get` reply exactly as NATS gives it (JSON, or
//!   MessagePack with `Accept: application/msgpack`), with an HTTP status from its error
//!   code ([`status_of`]: the one place codes become statuses);
//! - `GET /v1/live?exchange&symbol&interval` → Server-Sent Events: each change of the series'
//!   newest candles as `event: candle` with the live subject's object, the watch renewed
//!   while the client listens; `event: error` with the error, then the end, when it fails;
//! - `GET /v1/stats` → the cluster's hit ratio, requests by source, exchange calls and each
//!   exchange's budget (the page shows them);
//! - `GET /v1/openapi.json` → this API and the exchange-compatible endpoints, OpenAPI 3.1;
//! - `GET /v1/echo?bytes=N` → N bytes and nothing else: the trivial endpoint load tests
//!   compare the others with (`scripts/bench_gateway.sh`), at most [`MAX_ECHO`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use candlepipe_client::Error as ClientError;
use candlepipe_core::request::ErrorReply;
use candlepipe_core::watch::LiveCandle;
use candlepipe_core::{CandlesRequest, Encoding, ErrorCode, Exchange, WireError};
use futures::StreamExt;
use serde::Deserialize;

use super::{json, Gateway};

/// The query parameters of `/v1/candles`: `candles.get`'s fields.
const CANDLES_PARAMS: [&str; 9] = [
    "exchange",
    "symbol",
    "interval",
    "limit",
    "end",
    "max_age_ms",
    "allow_stale",
    "timeout_ms",
    "fill_gaps",
];

/// The largest `/v1/echo` body.
const MAX_ECHO: usize = 1 << 20;

/// The OpenAPI description, kept beside this file.
const OPENAPI: &str = include_str!("openapi.json");

pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/candles", get(candles))
        .route("/live", get(live))
        .route("/stats", get(stats))
        .route("/openapi.json", get(openapi))
        .route("/echo", get(echo))
}

/// The HTTP status of an answer with this error code: the one place they are chosen.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest
        | ErrorCode::UnknownExchange
        | ErrorCode::InvalidSymbol
        | ErrorCode::UnsupportedInterval
        | ErrorCode::LimitOutOfRange => StatusCode::BAD_REQUEST,
        ErrorCode::UnknownSymbol | ErrorCode::HistoryUnavailable => StatusCode::NOT_FOUND,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::UpstreamError => StatusCode::BAD_GATEWAY,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The encoding the client accepts: MessagePack only when it says so.
fn accepted(headers: &HeaderMap) -> Encoding {
    let wants_msgpack = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case(candlepipe_core::encoding::MSGPACK)
            })
        });
    match wants_msgpack {
        true => Encoding::Msgpack,
        false => Encoding::Json,
    }
}

/// A body in `encoding`, with its status, content type and (`rate_limited`) `Retry-After`.
fn answer(
    status: StatusCode,
    encoding: Encoding,
    body: Vec<u8>,
    retry_after_ms: Option<u64>,
) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    if let Some(ms) = retry_after_ms {
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(ms.div_ceil(1000).max(1)),
        );
    }
    r
}

/// The service's error reply, as NATS would carry it.
fn error_answer(encoding: Encoding, error: WireError) -> Response {
    let (status, retry) = (status_of(error.code), error.retry_after_ms);
    let body = encoding.encode(&ErrorReply::new(error));
    answer(status, encoding, body, retry)
}

/// A request refused before any endpoint saw it (too many from its client).
pub(super) fn refused(e: &ClientError) -> Response {
    let error = unanswered(e);
    count("refused", status_of(error.code));
    error_answer(Encoding::Json, error)
}

/// What became of a request that got no reply from the service.
fn unanswered(e: &ClientError) -> WireError {
    let code = match e {
        ClientError::Service { code, .. } => *code,
        ClientError::TimedOut { .. } => ErrorCode::Timeout,
        _ => ErrorCode::Unavailable,
    };
    let mut error = WireError::new(code, e.to_string());
    error.retry_after_ms = e.retry_after().map(|d| d.as_millis() as u64);
    error
}

fn count(endpoint: &'static str, status: StatusCode) {
    metrics::counter!("candlepipe_gateway_requests_total", "exchange" => "candlepipe", "endpoint" => endpoint, "status" => status.as_u16().to_string())
        .increment(1);
}

/// The parameters as `T`, every one of them known: a misspelt one is a `bad_request`
/// naming it, not silently ignored.
fn params<T: serde::de::DeserializeOwned>(
    raw: &Result<Query<HashMap<String, String>>, QueryRejection>,
    query: Option<&str>,
    known: &[&str],
) -> Result<T, WireError> {
    let bad = |m: String| WireError::new(ErrorCode::BadRequest, m);
    let Ok(Query(given)) = raw else {
        return Err(bad("the query string is not valid".into()));
    };
    let mut unknown: Vec<&str> = given
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    unknown.sort_unstable();
    if !unknown.is_empty() {
        return Err(bad(format!(
            "unknown parameter {}; known: {}",
            unknown.join(", "),
            known.join(", ")
        )));
    }
    serde_urlencoded_query(query.unwrap_or("")).map_err(bad)
}

/// The query string as `T` (numbers and booleans read from their text).
fn serde_urlencoded_query<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, String> {
    let uri: axum::http::Uri = format!("/?{query}")
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| e.to_string())?;
    Query::<T>::try_from_uri(&uri)
        .map(|Query(t)| t)
        .map_err(|e| e.body_text())
}

async fn candles(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let encoding = accepted(&headers);
    let req: CandlesRequest = match params(&raw, uri.query(), &CANDLES_PARAMS) {
        Ok(r) => r,
        Err(e) => {
            count("candles", StatusCode::BAD_REQUEST);
            return error_answer(encoding, e);
        }
    };
    let client = match encoding {
        Encoding::Json => &gw.client,
        Encoding::Msgpack => &gw.msgpack_client,
    };
    let reply = match client.candles_reply(&req).await {
        Ok(payload) => payload,
        Err(e) => {
            let error = unanswered(&e);
            count("candles", status_of(error.code));
            return error_answer(encoding, error);
        }
    };
    let (status, retry) = match outcome(encoding, &reply) {
        None => (StatusCode::OK, None),
        Some(e) => (status_of(e.code), e.retry_after_ms),
    };
    count("candles", status);
    answer(status, encoding, reply.to_vec(), retry)
}

/// The error a reply holds, if it holds one; only `ok` and `error` are read.
fn outcome(encoding: Encoding, payload: &[u8]) -> Option<WireError> {
    #[derive(Deserialize)]
    struct Outcome {
        ok: bool,
        #[serde(default)]
        error: Option<WireError>,
    }
    match encoding.decode::<Outcome>(payload) {
        Ok(o) if o.ok => None,
        Ok(o) => Some(o.error.unwrap_or_else(|| {
            WireError::new(ErrorCode::Unavailable, "the service's error said nothing")
        })),
        Err(e) => Some(WireError::new(
            ErrorCode::Unavailable,
            format!("the service's reply could not be read: {e}"),
        )),
    }
}

/// `/v1/live`'s parameters.
#[derive(Deserialize)]
struct LiveParams {
    exchange: String,
    symbol: String,
    interval: String,
}

async fn live(
    State(gw): State<Gateway>,
    uri: axum::http::Uri,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let p: LiveParams = match params(&raw, uri.query(), &["exchange", "symbol", "interval"]) {
        Ok(p) => p,
        Err(e) => {
            count("live", StatusCode::BAD_REQUEST);
            return error_answer(Encoding::Json, e);
        }
    };
    let updates = match gw.client.watch(&p.exchange, &p.symbol, &p.interval).await {
        Ok(live) => live,
        Err(e) => {
            let error = unanswered(&e);
            count("live", status_of(error.code));
            return error_answer(Encoding::Json, error);
        }
    };
    count("live", StatusCode::OK);
    let events = updates
        // Nothing after an error: the watch is over.
        .scan(false, |ended, item| {
            let next = (!*ended).then_some(item);
            *ended = next.as_ref().is_none_or(Result::is_err);
            futures::future::ready(next)
        })
        .map(|item| {
            Ok::<_, Infallible>(match item {
                Ok(c) => {
                    let wire = LiveCandle {
                        candle: c.candle,
                        confirmed: c.confirmed,
                        revised: c.revised,
                    };
                    let data = serde_json::to_string(&wire).unwrap_or_default();
                    Event::default().event("candle").data(data)
                }
                Err(e) => {
                    let data =
                        serde_json::to_string(&ErrorReply::new(unanswered(&e))).unwrap_or_default();
                    Event::default().event("error").data(data)
                }
            })
        });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn stats(State(gw): State<Gateway>) -> Response {
    let mut conn = gw.ctx.redis.clone();
    let totals = match crate::cluster::stats::read(&mut conn, &gw.ctx.settings.redis_prefix).await {
        Ok(t) => t,
        Err(e) => {
            count("stats", StatusCode::SERVICE_UNAVAILABLE);
            return error_answer(
                Encoding::Json,
                WireError::new(ErrorCode::Unavailable, format!("redis: {e}")),
            );
        }
    };
    let get = |k: &str| totals.get(k).copied().unwrap_or(0);
    let sources = ["l1", "redis", "exchange", "stream"].map(|s| get(&format!("requests:{s}")));
    let answered: u64 = sources.iter().sum();
    let hits = answered - sources[2];
    let mut budgets = Vec::new();
    for ex in Exchange::ALL {
        match gw.ctx.budget.state(ex).await {
            Ok(state) => budgets.push(serde_json::json!({
                "exchange": ex,
                "rps": state.rps,
                "waiting": state.waiting,
                "paused_ms": state.paused_ms,
                "calls": get(&format!("exchange_calls:{ex}")),
            })),
            Err(e) => tracing::debug!(exchange = %ex, error = %e, "budget not read"),
        }
    }
    let body = serde_json::json!({
        "hit_ratio": if answered == 0 { 0.0 } else { hits as f64 / answered as f64 },
        "requests": {
            "l1": sources[0], "redis": sources[1], "exchange": sources[2], "stream": sources[3],
            "stale": get("requests:stale"), "error": get("requests:error"),
        },
        "budgets": budgets,
    });
    count("stats", StatusCode::OK);
    json(StatusCode::OK, body.to_string())
}

async fn openapi() -> Response {
    count("openapi", StatusCode::OK);
    json(StatusCode::OK, OPENAPI.to_string())
}

/// `/v1/echo`'s parameter.
#[derive(Deserialize)]
struct EchoParams {
    bytes: usize,
}

async fn echo(
    uri: axum::http::Uri,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    static BODY: std::sync::LazyLock<bytes::Bytes> =
        std::sync::LazyLock::new(|| bytes::Bytes::from(vec![b'x'; MAX_ECHO]));
    let n = match params::<EchoParams>(&raw, uri.query(), &["bytes"]) {
        Ok(p) if p.bytes <= MAX_ECHO => p.bytes,
        Ok(_) => {
            let e = WireError::new(
                ErrorCode::BadRequest,
                format!("bytes is at most {MAX_ECHO}"),
            );
            return error_answer(Encoding::Json, e);
        }
        Err(e) => return error_answer(Encoding::Json, e),
    };
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        BODY.slice(..n),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_status_and_msgpack_is_chosen_only_when_asked() {
        for code in ErrorCode::ALL {
            assert!(status_of(code).is_client_error() || status_of(code).is_server_error());
        }
        let mut h = HeaderMap::new();
        assert_eq!(accepted(&h), Encoding::Json);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html, application/msgpack;q=0.9"),
        );
        assert_eq!(accepted(&h), Encoding::Msgpack);
    }

    #[test]
    fn the_description_names_every_parameter_of_candles_get() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let documented: Vec<&str> = doc["paths"]["/v1/candles"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(documented, CANDLES_PARAMS);
        // And the request type has no field the description lacks.
        let fields = serde_json::to_value(CandlesRequest::default()).unwrap();
        let mut fields: Vec<&str> = fields
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut params = CANDLES_PARAMS.to_vec();
        fields.sort_unstable();
        params.sort_unstable();
        assert_eq!(fields, params);
    }
}
