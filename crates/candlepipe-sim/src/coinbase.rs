//! Simulated Coinbase Exchange `GET /products/{BASE-QUOTE}/candles`.

use std::collections::HashMap;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use candlepipe_core::{now_ms, Exchange, Interval, Millis};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::market::{is_listed, listings, Series};
use crate::{json_body, Sim};

fn error(status: StatusCode, message: &str) -> Response {
    (status, format!("{{\"message\":\"{message}\"}}")).into_response()
}

fn parse_time(s: &str) -> Option<Millis> {
    if let Ok(secs) = s.parse::<i64>() {
        return Some(secs * 1000);
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp() * 1000)
}

pub(crate) async fn candles(
    State(sim): State<Sim>,
    Path(product): Path<String>,
    RawQuery(raw): RawQuery,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = sim
        .gate(
            Exchange::Coinbase.as_str(),
            &product,
            raw.as_deref().unwrap_or(""),
        )
        .await
    {
        return r;
    }
    let Some((base, quote)) = product.split_once('-').filter(|(b, q)| is_listed(b, q)) else {
        return error(StatusCode::NOT_FOUND, "NotFound");
    };
    let granularity = q
        .get("granularity")
        .and_then(|g| g.parse::<i64>().ok())
        .unwrap_or(60);
    let Some(iv) = Interval::ALL
        .into_iter()
        .find(|i| i.millis() == granularity * 1000 && Exchange::Coinbase.serves(*i))
    else {
        return error(StatusCode::BAD_REQUEST, "Unsupported granularity");
    };
    let step = iv.millis();
    let now = now_ms();
    let end = q
        .get("end")
        .and_then(|e| parse_time(e))
        .unwrap_or(now)
        .min(now);
    let start = q
        .get("start")
        .and_then(|s| parse_time(s))
        .unwrap_or(end - 299 * step);
    if start > end {
        return error(StatusCode::BAD_REQUEST, "start must be before end");
    }
    if (end - start) / step + 1 > 300 {
        return error(
            StatusCode::BAD_REQUEST,
            "granularity too small for the requested time range. Count of aggregations requested exceeds 300",
        );
    }
    let series = Series::new("coinbase", base, quote, step);
    let habits = sim.habits(Exchange::Coinbase.as_str());
    let first = iv.open_of(start) + if iv.open_of(start) < start { step } else { 0 };
    // `end` is inclusive, as Coinbase's is; intervals without trades are left out.
    let mut rows: Vec<String> = std::iter::successors(Some(first), |t| Some(t + step))
        .take_while(|t| *t <= end)
        .filter(|t| !series.quiet(*t, habits) && !series.unpublished(*t, now, habits))
        .filter_map(|t| series.candle(t, now))
        .map(|c| {
            format!(
                "[{},{},{},{},{},{}]",
                c.t / 1000,
                c.l,
                c.h,
                c.o,
                c.c,
                c.v.normalize()
            )
        })
        .collect();
    rows.reverse();
    json_body(format!("[{}]", rows.join(",")))
}

/// `GET /products`: every listed pair, with the fields the real one has.
pub(crate) async fn products(State(sim): State<Sim>) -> Response {
    if let Some(r) = sim.gate_list(Exchange::Coinbase.as_str(), "products").await {
        return r;
    }
    let products: Vec<String> = listings()
        .map(|(base, quote)| {
            format!(
                "{{\"id\":\"{base}-{quote}\",\"base_currency\":\"{base}\",\"quote_currency\":\"{quote}\",\"quote_increment\":\"0.01\",\"base_increment\":\"0.00000001\",\"display_name\":\"{base}/{quote}\",\"min_market_funds\":\"1\",\"margin_enabled\":false,\"post_only\":false,\"limit_only\":false,\"cancel_only\":false,\"status\":\"online\",\"status_message\":\"\",\"trading_disabled\":false,\"fx_stablecoin\":false,\"max_slippage_percentage\":\"0.03000000\",\"auction_mode\":false,\"high_bid_limit_percentage\":\"\"}}"
            )
        })
        .collect();
    json_body(format!("[{}]", products.join(",")))
}
