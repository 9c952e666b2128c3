//! `GET /`: a page to look at any series — a candle chart from `/v1/candles` that moves with
//! `/v1/live`, synthetic candles grey, missing intervals marked, a `stale` answer flagged —
//! and the cluster's hit ratio and exchange budgets from `/v1/stats`. One HTML file with its
//! script, embedded in the binary: nothing to build or install. The series can be given in
//! the address: `/?exchange=kraken&symbol=ETH/USD&interval=1h&fill_gaps=previous` (with
//! `&end=<ms>` a past window, which does not move).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("page.html");

pub async fn page() -> Response {
    metrics::counter!("candlepipe_gateway_requests_total", "exchange" => "candlepipe", "endpoint" => "page", "status" => "200")
        .increment(1);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        PAGE,
    )
        .into_response()
}
