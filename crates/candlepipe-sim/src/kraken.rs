//! Simulated Kraken `GET /0/public/OHLC` (the 720 most recent committed rows and the forming
//! one, filtered by `since`; `last` is the newest committed row)
//! `GET /0/public/Trades` (the trades the 1m candles are made of, none in quiet minutes,
//! 1,000 a page, `last` in nanoseconds as the next `since`), and `GET /0/public/AssetPairs`
//! and `GET /0/public/Assets`, with Kraken's own asset codes
//! (`XBT`, `XDG`), asset keys (`XXBT`, `ZUSD` for the old ones) and pair names: the key
//! (`XXBTZUSD` for the old majors) and the `altname` (`XBTUSD`), both of which `OHLC`
//! accepts. A pair's `base` and `quote` are asset keys, as Kraken's (`XBTUSDT`: `XXBT`,
//! `USDT`).

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::{Query, RawQuery, State};
use axum::response::Response;
use candlepipe_core::{now_ms, Exchange, Interval};

use crate::market::{is_fiat, listings, Series};
use crate::{json_body, Sim};

/// Kraken's code for an asset.
fn code(asset: &str) -> &str {
    match asset {
        "BTC" => "XBT",
        "DOGE" => "XDG",
        other => other,
    }
}

/// Kraken's key for an asset (`Assets`, a pair's `base`/`quote`): `X…`/`Z…` for the old
/// ones.
fn asset_key(asset: &str) -> String {
    match code(asset) {
        c @ ("XBT" | "ETH" | "LTC" | "XRP" | "ETC" | "XDG" | "XLM") => format!("X{c}"),
        c @ ("USD" | "EUR") => format!("Z{c}"),
        c => c.to_string(),
    }
}

/// Kraken's key for a pair: the legacy `X…Z…` form for the old majors.
fn result_key(base: &str, quote: &str) -> String {
    let kb = code(base);
    match (kb, quote) {
        ("XBT" | "ETH" | "LTC" | "XRP" | "ETC", "USD" | "EUR") => format!("X{kb}Z{quote}"),
        _ => format!("{kb}{quote}"),
    }
}

fn altname(base: &str, quote: &str) -> String {
    format!("{}{}", code(base), code(quote))
}

/// Every name `OHLC` accepts for a pair (key and altname) → (base, quote).
static PAIRS: LazyLock<HashMap<String, (String, String)>> = LazyLock::new(|| {
    listings()
        .flat_map(|(base, quote)| {
            let pair = (base.clone(), quote.to_string());
            [
                (result_key(&base, quote), pair.clone()),
                (altname(&base, quote), pair),
            ]
        })
        .collect()
});

/// `GET /0/public/AssetPairs`: every listed pair under its key.
pub(crate) async fn asset_pairs(State(sim): State<Sim>) -> Response {
    if let Some(r) = sim.gate_list(Exchange::Kraken.as_str(), "AssetPairs").await {
        return r;
    }
    let pairs: Vec<String> = listings()
        .map(|(base, quote)| {
            let key = result_key(&base, quote);
            let (kb, kq) = (asset_key(&base), asset_key(quote));
            format!(
                "\"{key}\":{{\"altname\":\"{}\",\"wsname\":\"{}/{}\",\"aclass_base\":\"currency\",\"base\":\"{kb}\",\"aclass_quote\":\"currency\",\"quote\":\"{kq}\",\"lot\":\"unit\",\"cost_decimals\":5,\"pair_decimals\":{},\"lot_decimals\":8,\"lot_multiplier\":1,\"ordermin\":\"0.0001\",\"costmin\":\"0.5\",\"tick_size\":\"{}\",\"status\":\"online\"}}",
                altname(&base, quote),
                code(&base),
                code(quote),
                crate::market::scale(quote),
                rust_decimal::Decimal::new(1, crate::market::scale(quote))
            )
        })
        .collect();
    json_body(format!(
        "{{\"error\":[],\"result\":{{{}}}}}",
        pairs.join(",")
    ))
}

/// `GET /0/public/Assets`: every asset under its key; the fiat ones under their key as
/// their altname too (`ZUSD`), as Kraken's.
pub(crate) async fn assets(State(sim): State<Sim>) -> Response {
    if let Some(r) = sim.gate_list(Exchange::Kraken.as_str(), "Assets").await {
        return r;
    }
    let assets: Vec<String> = crate::market::assets()
        .map(|asset| {
            let key = asset_key(&asset);
            let (alt, decimals, display) = match is_fiat(&asset) {
                true => (key.as_str(), 4, 2),
                false => (code(&asset), 10, 5),
            };
            format!(
                "\"{key}\":{{\"aclass\":\"currency\",\"altname\":\"{alt}\",\"decimals\":{decimals},\"display_decimals\":{display},\"collateral_value\":1,\"status\":\"enabled\"}}"
            )
        })
        .collect();
    json_body(format!(
        "{{\"error\":[],\"result\":{{{}}}}}",
        assets.join(",")
    ))
}

/// `GET /0/public/Trades?pair[&since][&count]`: up to `count` (1,000) trades after `since`
/// (ns; from the listing when absent), oldest first, under the pair's key, each
/// `[price, volume, time (s), side, type, misc, trade_id]`; `last` is the newest one's time
/// in ns, as text (`since` again when there are none).
pub(crate) async fn trades(
    State(sim): State<Sim>,
    RawQuery(raw): RawQuery,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (base, quote) = match pair(&sim, &q, raw.as_deref()).await {
        Ok(pair) => pair,
        Err(refused) => return refused,
    };
    let since_ns = match q.get("since").map(|s| s.parse::<i128>()) {
        None => 0,
        Some(Ok(ns)) => ns.max(0),
        Some(Err(_)) => return error("EGeneral:Invalid arguments"),
    };
    let count = match q.get("count").map(|c| c.parse::<usize>()) {
        None => 1000,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => return error("EGeneral:Invalid arguments:count"),
    };
    let after = i64::try_from(since_ns / 1_000_000).unwrap_or(i64::MAX);
    let series = Series::new("kraken", &base, &quote, 60_000);
    let habits = sim.habits(Exchange::Kraken.as_str());
    let trades = series.trades_after(after, count, now_ms(), |t| series.quiet(t, habits));
    let rows: Vec<String> = trades
        .iter()
        .map(|tr| {
            let side = if tr.maker_sells { "b" } else { "s" };
            format!(
                "[\"{}\",\"{}\",{}.{:03},\"{side}\",\"l\",\"\",{}]",
                tr.price,
                tr.size,
                tr.t.div_euclid(1000),
                tr.t.rem_euclid(1000),
                tr.id
            )
        })
        .collect();
    let last = trades
        .last()
        .map_or(since_ns, |tr| i128::from(tr.t) * 1_000_000);
    json_body(format!(
        "{{\"error\":[],\"result\":{{\"{}\":[{}],\"last\":\"{last}\"}}}}",
        result_key(&base, &quote),
        rows.join(",")
    ))
}

/// The pair a candle or trades request names (after the request's latency, rate limit and
/// faults), or the answer that refuses it.
async fn pair(
    sim: &Sim,
    q: &HashMap<String, String>,
    raw: Option<&str>,
) -> Result<(String, String), Response> {
    let pair = q.get("pair").cloned().unwrap_or_default();
    if let Some(r) = sim
        .gate(Exchange::Kraken.as_str(), &pair, raw.unwrap_or(""))
        .await
    {
        return Err(r);
    }
    PAIRS
        .get(&pair)
        .cloned()
        .ok_or_else(|| error("EQuery:Unknown asset pair"))
}

fn error(e: &str) -> Response {
    json_body(format!("{{\"error\":[\"{e}\"]}}"))
}

pub(crate) async fn ohlc(
    State(sim): State<Sim>,
    RawQuery(raw): RawQuery,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (base, quote) = match pair(&sim, &q, raw.as_deref()).await {
        Ok(pair) => pair,
        Err(refused) => return refused,
    };
    let minutes = q
        .get("interval")
        .and_then(|i| i.parse::<i64>().ok())
        .unwrap_or(1);
    let Some(iv) = Interval::ALL
        .into_iter()
        .find(|i| i.minutes() == minutes && Exchange::Kraken.serves(*i))
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
    let habits = sim.habits(Exchange::Kraken.as_str());
    // Kraken rolls over to a new row `late_ms` after an interval ends.
    let newest = iv.open_of(now - habits.late_ms);
    let candles: Vec<_> = (0..=720)
        .rev()
        .map(|i| newest - i * step)
        .filter(|t| since.is_none_or(|s| *t > s))
        .filter_map(|t| series.kraken_row(t, now, habits))
        .collect();
    let rows: Vec<String> = candles
        .iter()
        .map(|c| {
            let (vwap, count) = (c.kraken_vwap(), c.trades);
            format!(
                "[{},\"{}\",\"{}\",\"{}\",\"{}\",\"{vwap}\",\"{}\",{count}]",
                c.t / 1000,
                c.o,
                c.h,
                c.l,
                c.c,
                c.v,
            )
        })
        .collect();
    let last = (newest - step) / 1000;
    json_body(format!(
        "{{\"error\":[],\"result\":{{\"{}\":[{}],\"last\":{}}}}}",
        result_key(&base, &quote),
        rows.join(","),
        last
    ))
}
