//! Simulated Binance `GET /api/v3/klines`.

use std::collections::HashMap;

use axum::extract::{Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use candlepipe_core::{now_ms, Exchange, Interval};

use crate::market::{listings, split_concat, Series, SimCandle};
use crate::{json_body, Sim};

fn error(code: i64, msg: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        format!("{{\"code\":{code},\"msg\":\"{msg}\"}}"),
    )
        .into_response()
}

pub(crate) async fn klines(
    State(sim): State<Sim>,
    RawQuery(raw): RawQuery,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let symbol = q.get("symbol").cloned().unwrap_or_default();
    if let Some(r) = sim
        .gate(
            Exchange::Binance.as_str(),
            &symbol,
            raw.as_deref().unwrap_or(""),
        )
        .await
    {
        return r;
    }
    let Some((base, quote)) = split_concat(&symbol) else {
        return error(-1121, "Invalid symbol.");
    };
    let Some(iv) = q.get("interval").and_then(|i| Interval::parse(i).ok()) else {
        return error(-1120, "Invalid interval.");
    };
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let limit = num("limit").unwrap_or(500).clamp(1, 1000);
    let now = now_ms();
    let step = iv.millis();
    let end = num("endTime").unwrap_or(now).min(now);
    let start = match num("startTime") {
        Some(s) => iv.open_of(s) + if iv.open_of(s) < s { step } else { 0 },
        None => iv.open_of(end) - (limit - 1) * step,
    };
    let series = Series::new("binance", &base, &quote, step);
    let habits = sim.habits(Exchange::Binance.as_str());
    let rows: Vec<String> = (0..limit)
        .map(|i| start + i * step)
        .take_while(|t| *t <= end)
        .filter(|t| !series.unpublished(*t, now, habits))
        .filter_map(|t| {
            let c = series.candle(t, now)?;
            Some(match series.quiet(t, habits) {
                true => series.quiet_candle(t, habits),
                false => c,
            })
        })
        .map(|c| {
            let f = kline_fields(&c, step, 1);
            format!(
                "[{},\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",{},\"{}\",{},\"{}\",\"{}\",\"{}\"]",
                f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11]
            )
        })
        .collect();
    json_body(format!("[{}]", rows.join(",")))
}

/// A kline's 12 fields as Binance writes them (open time, open, high, low, close, volume,
/// close time, quote volume, trades, taker-buy base and quote volume, ignore), its times in
/// units of `1 / per_ms` ms (1: ms, as REST; 1000: µs, as the archive from 2025).
pub(crate) fn kline_fields(c: &SimCandle, step: i64, per_ms: i64) -> [String; 12] {
    [
        (c.t * per_ms).to_string(),
        c.o.to_string(),
        c.h.to_string(),
        c.l.to_string(),
        c.c.to_string(),
        c.v.to_string(),
        ((c.t + step) * per_ms - 1).to_string(),
        SimCandle::binance_quote(c.quote).to_string(),
        c.trades.to_string(),
        c.taker_base.to_string(),
        SimCandle::binance_quote(c.taker_quote).to_string(),
        "0".to_string(),
    ]
}

/// `GET /api/v3/exchangeInfo`: every listed pair, with the fields the real one has for
/// spot symbols (filters left empty).
pub(crate) async fn exchange_info(State(sim): State<Sim>) -> Response {
    if let Some(r) = sim
        .gate_list(Exchange::Binance.as_str(), "exchangeInfo")
        .await
    {
        return r;
    }
    let symbols: Vec<String> = listings()
        .map(|(base, quote)| {
            format!(
                "{{\"symbol\":\"{base}{quote}\",\"status\":\"TRADING\",\"baseAsset\":\"{base}\",\"baseAssetPrecision\":8,\"quoteAsset\":\"{quote}\",\"quotePrecision\":8,\"quoteAssetPrecision\":8,\"orderTypes\":[\"LIMIT\",\"MARKET\"],\"isSpotTradingAllowed\":true,\"filters\":[],\"permissions\":[],\"permissionSets\":[[\"SPOT\"]]}}"
            )
        })
        .collect();
    json_body(format!(
        "{{\"timezone\":\"UTC\",\"serverTime\":{},\"rateLimits\":[{{\"rateLimitType\":\"REQUEST_WEIGHT\",\"interval\":\"MINUTE\",\"intervalNum\":1,\"limit\":6000}}],\"exchangeFilters\":[],\"symbols\":[{}]}}",
        now_ms(),
        symbols.join(",")
    ))
}
