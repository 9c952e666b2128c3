//! Simulated Kraken `GET /0/public/OHLC`: the 720 most recent candles, filtered by `since`.

use std::collections::HashMap;

use axum::extract::{Query, RawQuery, State};
use axum::response::Response;
use candlepipe_core::{now_ms, Exchange, Interval};

use crate::market::{split_concat, Series};
use crate::{json_body, Sim};

/// Kraken's result key for a pair: the legacy `X…Z…` form for the old majors.
fn result_key(base: &str, quote: &str) -> String {
    let kb = if base == "BTC" { "XBT" } else { base };
    match (kb, quote) {
        ("XBT" | "ETH" | "LTC" | "XRP" | "ETC", "USD" | "EUR") => format!("X{kb}Z{quote}"),
        _ => format!("{kb}{quote}"),
    }
}

fn error(e: &str) -> Response {
    json_body(format!("{{\"error\":[\"{e}\"]}}"))
}

pub(crate) async fn ohlc(
    State(sim): State<Sim>,
    RawQuery(raw): RawQuery,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let pair = q.get("pair").cloned().unwrap_or_default();
    if let Some(r) = sim
        .gate(
            Exchange::Kraken.as_str(),
            &pair,
            raw.as_deref().unwrap_or(""),
        )
        .await
    {
        return r;
    }
    let unified = pair.replacen("XBT", "BTC", 1).replacen("XDG", "DOGE", 1);
    let Some((base, quote)) = split_concat(&unified) else {
        return error("EQuery:Unknown asset pair");
    };
    let minutes = q
        .get("interval")
        .and_then(|i| i.parse::<i64>().ok())
        .unwrap_or(1);
    let Some(iv) = Interval::ALL
        .into_iter()
        .find(|i| i.minutes() == minutes && Exchange::Kraken.supports(*i))
    else {
        return error("EGeneral:Invalid arguments");
    };
    let since = q
        .get("since")
        .and_then(|s| s.parse::<i64>().ok())
        .map(|s| s * 1000);
    let now = now_ms();
    let step = iv.millis();
    let series = Series::new("kraken", &base, &quote, step);
    let newest = iv.open_of(now);
    let candles: Vec<_> = (0..720)
        .rev()
        .map(|i| newest - i * step)
        .filter(|t| since.is_none_or(|s| *t > s))
        .filter_map(|t| series.candle(t, now))
        .collect();
    let rows: Vec<String> = candles
        .iter()
        .map(|c| {
            let vwap = ((c.o + c.c) / rust_decimal::Decimal::TWO).round_dp(c.o.scale());
            format!(
                "[{},\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",{}]",
                c.t / 1000,
                c.o,
                c.h,
                c.l,
                c.c,
                vwap,
                c.v,
                42
            )
        })
        .collect();
    let last = candles
        .len()
        .checked_sub(2)
        .map(|i| candles[i].t / 1000)
        .unwrap_or(newest / 1000);
    json_body(format!(
        "{{\"error\":[],\"result\":{{\"{}\":[{}],\"last\":{}}}}}",
        result_key(&base, &quote),
        rows.join(","),
        last
    ))
}
