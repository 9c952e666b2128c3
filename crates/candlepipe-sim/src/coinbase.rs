//! Simulated Coinbase Exchange `GET /products/{BASE-QUOTE}/candles` and `…/trades`.

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

/// A request for `product` through the faults gate: its base and quote when listed, else
/// the answer Coinbase gives (or the fault's).
async fn listed_product<'a>(
    sim: &Sim,
    product: &'a str,
    raw: Option<&str>,
) -> Result<(&'a str, &'a str), Response> {
    if let Some(r) = sim
        .gate(Exchange::Coinbase.as_str(), product, raw.unwrap_or(""))
        .await
    {
        return Err(r);
    }
    product
        .split_once('-')
        .filter(|(b, q)| is_listed(b, q))
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "NotFound"))
}

pub(crate) async fn candles(
    State(sim): State<Sim>,
    Path(product): Path<String>,
    RawQuery(raw): RawQuery,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (base, quote) = match listed_product(&sim, &product, raw.as_deref()).await {
        Ok(pair) => pair,
        Err(r) => return r,
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
    // `end` is inclusive, as Coinbase's is; intervals without trades are left out. Values
    // are JSON numbers, as Coinbase writes them: no trailing zeros.
    let mut rows: Vec<String> = std::iter::successors(Some(first), |t| Some(t + step))
        .take_while(|t| *t <= end)
        .filter(|t| !series.quiet(*t, habits) && !series.unpublished(*t, now, habits))
        .filter_map(|t| series.candle(t, now - habits.candles_lag_ms))
        .map(|c| {
            format!(
                "[{},{},{},{},{},{}]",
                c.t / 1000,
                c.l.normalize(),
                c.h.normalize(),
                c.o.normalize(),
                c.c.normalize(),
                c.v.normalize()
            )
        })
        .collect();
    rows.reverse();
    json_body(format!("[{}]", rows.join(",")))
}

/// `GET /products/{BASE-QUOTE}/trades?limit&after`: the newest trades first (the REST
/// record: true sizes, also while the stream's differ), `after` pages to older ids, with
/// Coinbase's `cb-before`/`cb-after` cursors.
pub(crate) async fn trades(
    State(sim): State<Sim>,
    Path(product): Path<String>,
    RawQuery(raw): RawQuery,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (base, quote) = match listed_product(&sim, &product, raw.as_deref()).await {
        Ok(pair) => pair,
        Err(r) => return r,
    };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 1000,
        Some(Ok(l)) if (1..=1000).contains(&l) => l,
        Some(_) => return error(StatusCode::BAD_REQUEST, "Invalid limit"),
    };
    let after = match q.get("after").map(|a| a.parse::<u64>()) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "Invalid after"),
    };
    let series = Series::new("coinbase", base, quote, 60_000);
    let habits = sim.habits(Exchange::Coinbase.as_str());
    // Minutes without trades (the `quiet_one_in` habit) have none here either.
    let trades: Vec<_> = series
        .trades_before(after, limit, now_ms())
        .into_iter()
        .filter(|tr| !series.quiet(tr.t - tr.t.rem_euclid(60_000), habits))
        .collect();
    let rows: Vec<String> = trades
        .iter()
        .map(|tr| {
            format!(
                "{{\"time\":\"{}\",\"trade_id\":{},\"price\":\"{}\",\"size\":\"{}\",\"side\":\"{}\"}}",
                crate::streams::rfc3339_micros(tr.t),
                tr.id,
                tr.price,
                tr.size,
                if tr.maker_sells { "sell" } else { "buy" }
            )
        })
        .collect();
    let mut response = json_body(format!("[{}]", rows.join(",")));
    for (name, trade) in [("cb-before", trades.first()), ("cb-after", trades.last())] {
        if let Some(v) = trade.and_then(|t| t.id.to_string().parse().ok()) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

/// `GET /products`: every listed pair, with the fields the real one has.
/// `GET /currencies`: every asset, with the fields Coinbase Exchange's has (no networks).
pub(crate) async fn currencies(State(sim): State<Sim>) -> Response {
    if let Some(r) = sim
        .gate_list(Exchange::Coinbase.as_str(), "currencies")
        .await
    {
        return r;
    }
    let currencies: Vec<String> = crate::market::assets()
        .map(|id| {
            let (kind, precision) = match crate::market::is_fiat(&id) {
                true => ("fiat", "0.01"),
                false => ("crypto", "0.00000001"),
            };
            format!(
                "{{\"id\":\"{id}\",\"name\":\"{id}\",\"min_size\":\"{precision}\",\"status\":\"online\",\"message\":\"\",\"max_precision\":\"{precision}\",\"convertible_to\":[],\"details\":{{\"type\":\"{kind}\",\"symbol\":null,\"network_confirmations\":0,\"sort_order\":0,\"crypto_address_link\":\"\",\"crypto_transaction_link\":\"\",\"push_payment_methods\":[],\"group_types\":[],\"display_name\":null,\"processing_time_seconds\":null,\"min_withdrawal_amount\":null,\"max_withdrawal_amount\":null}},\"default_network\":\"\",\"supported_networks\":[],\"display_name\":\"{id}\"}}"
            )
        })
        .collect();
    json_body(format!("[{}]", currencies.join(",")))
}

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
