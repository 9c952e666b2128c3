//! Kraken's public market-data endpoints under `/kraken`, as Kraken writes them
//! (`https://api.kraken.com` → `http://<gateway>/kraken`):
//! - `GET /0/public/Time` → `{"error":[],"result":{"unixtime":…,"rfc1123":"…"}}`;
//! - `GET /0/public/AssetPairs[?pair=A,B]`, `GET /0/public/Assets[?asset=A,B]` → Kraken's
//!   own, as the cluster's market and currency lists last loaded them, each entry under its
//!   key (asked for by key or altname);
//! - `GET /0/public/OHLC?pair[&interval][&since]` → the newest 720 committed rows and the
//!   forming one (or those after `since`, seconds), keyed by Kraken's own pair key (`pair` may
//!   be the key or the altname), `[time,"open","high","low","close","vwap","volume",count]`,
//!   and `last`, the newest committed row's time.
//!
//! Errors as Kraken's, in `error` with HTTP 200: `EQuery:Unknown asset pair`,
//! `EQuery:Unknown asset`,
//! `EGeneral:Invalid arguments`, `EAPI:Rate limit exceeded`, `EService:Unavailable`,
//! `EService:Busy` (a timeout).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use candlepipe_client::Error as ClientError;
use candlepipe_core::{now_ms, Candle, CandlesRequest, ErrorCode, Exchange, Interval, Millis};
use candlepipe_exchange::kraken_list::KrakenList;
use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::{json, served, Gateway};
use crate::cluster::markets::Served;

/// The committed rows Kraken keeps (and serves with the forming one after them).
const ROWS: i64 = 720;

pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/0/public/Time", get(time))
        .route("/0/public/AssetPairs", get(asset_pairs))
        .route("/0/public/Assets", get(assets))
        .route("/0/public/OHLC", get(ohlc))
}

/// Kraken's error, in its body (Kraken answers errors with HTTP 200).
#[derive(Debug, Clone, Copy)]
struct KrakenError(&'static str);

fn respond(endpoint: &'static str, answer: Result<String, KrakenError>) -> Response {
    let outcome = match &answer {
        Ok(_) => "ok",
        Err(e) => e.0,
    };
    metrics::counter!("candlepipe_gateway_requests_total", "exchange" => "kraken", "endpoint" => endpoint, "status" => outcome)
        .increment(1);
    json(
        StatusCode::OK,
        match answer {
            Ok(body) => body,
            Err(e) => format!("{{\"error\":[\"{}\"]}}", e.0),
        },
    )
}

const UNKNOWN_PAIR: KrakenError = KrakenError("EQuery:Unknown asset pair");
const UNKNOWN_ASSET: KrakenError = KrakenError("EQuery:Unknown asset");
const INVALID: KrakenError = KrakenError("EGeneral:Invalid arguments");
const UNAVAILABLE: KrakenError = KrakenError("EService:Unavailable");

async fn time() -> Response {
    let now = now_ms();
    let t = OffsetDateTime::from_unix_timestamp(now.div_euclid(1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    respond(
        "Time",
        Ok(format!(
            "{{\"error\":[],\"result\":{{\"unixtime\":{},\"rfc1123\":\"{}\"}}}}",
            now.div_euclid(1000),
            rfc1123(t)
        )),
    )
}

/// Kraken's `rfc1123`: `Thu, 06 Jul 23 18:50:48 +0000` (a two-digit year, as Kraken's).
fn rfc1123(t: OffsetDateTime) -> String {
    let weekday = &format!("{:?}", t.weekday())[..3];
    let month = &format!("{:?}", t.month())[..3];
    format!(
        "{weekday}, {:02} {month} {:02} {:02}:{:02}:{:02} +0000",
        t.day(),
        t.year().rem_euclid(100),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// One of Kraken's lists: which, the parameter that narrows it, and its error for a name it
/// lacks.
struct List {
    endpoint: &'static str,
    pick: fn(Served) -> Option<Arc<KrakenList>>,
    param: &'static str,
    unknown: KrakenError,
}

const ASSET_PAIRS: List = List {
    endpoint: "AssetPairs",
    pick: |s| s.kraken_pairs,
    param: "pair",
    unknown: UNKNOWN_PAIR,
};

const ASSETS: List = List {
    endpoint: "Assets",
    pick: |s| s.kraken_assets,
    param: "asset",
    unknown: UNKNOWN_ASSET,
};

async fn asset_pairs(
    State(gw): State<Gateway>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    respond(
        ASSET_PAIRS.endpoint,
        list_body(&gw, &ASSET_PAIRS, query).await,
    )
}

async fn assets(
    State(gw): State<Gateway>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    respond(ASSETS.endpoint, list_body(&gw, &ASSETS, query).await)
}

/// The list as the cluster keeps it (looked for in Redis once more if not at hand), whole or
/// narrowed to the names in `list.param`.
async fn list_body(
    gw: &Gateway,
    list: &List,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<String, KrakenError> {
    let Ok(Query(q)) = query else {
        return Err(INVALID);
    };
    let only: Option<Vec<String>> = q.get(list.param).filter(|p| !p.trim().is_empty()).map(|p| {
        p.split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .collect()
    });
    let Some(kept) = served(gw, Exchange::Kraken, list.pick).await else {
        tracing::warn!(list = list.endpoint, "gateway: Kraken's list not at hand");
        return Err(UNAVAILABLE);
    };
    kept.write(only.as_deref()).map_err(|_| list.unknown)
}

async fn ohlc(
    State(gw): State<Gateway>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let answer = match query {
        Ok(Query(q)) => rows(&gw, &q).await,
        Err(_) => Err(INVALID),
    };
    respond("OHLC", answer)
}

async fn rows(gw: &Gateway, q: &HashMap<String, String>) -> Result<String, KrakenError> {
    let name = q
        .get("pair")
        .map(|p| p.trim().to_ascii_uppercase())
        .filter(|p| !p.is_empty())
        .ok_or(INVALID)?;
    let minutes = match q.get("interval").map(|i| i.trim()) {
        None | Some("") => 1,
        Some(i) => i.parse::<i64>().map_err(|_| INVALID)?,
    };
    let iv = Interval::ALL
        .into_iter()
        .find(|i| i.minutes() == minutes && Exchange::Kraken.serves(*i))
        .ok_or(INVALID)?;
    let since = match q.get("since").map(|s| s.trim()) {
        None | Some("") => None,
        Some(s) => Some(s.parse::<i64>().map_err(|_| INVALID)?.saturating_mul(1000)),
    };
    let pairs = served(gw, Exchange::Kraken, ASSET_PAIRS.pick)
        .await
        .ok_or(UNAVAILABLE)?;
    let pair = pairs.get(&name).ok_or(UNKNOWN_PAIR)?;
    let symbol = match gw.ctx.markets.unified(Exchange::Kraken, &pair.altname) {
        Ok(Some(s)) => s,
        Ok(None) => return Err(UNKNOWN_PAIR),
        Err(_) => return Err(UNAVAILABLE),
    };
    let step = iv.millis();
    let forming = iv.open_of(now_ms());
    let oldest = forming - ROWS * step;
    let first = match since {
        Some(s) if s >= oldest => iv.open_of(s) + step,
        _ => oldest,
    };
    let candles = if first > forming {
        Vec::new()
    } else {
        let req = CandlesRequest::latest(
            "kraken",
            symbol.as_str(),
            iv.as_str(),
            (forming - first) / step + 1,
        );
        match gw.client.candles(&req).await {
            Ok(r) => r.candles,
            Err(e) if e.code() == Some(ErrorCode::HistoryUnavailable) => Vec::new(),
            Err(e) => return Err(failure(&e)),
        }
    };
    let candles: Vec<&Candle> = candles.iter().filter(|c| c.t >= first).collect();
    let last = candles
        .iter()
        .rev()
        .find(|c| c.closed)
        .map_or(forming - step, |c| c.t);
    Ok(ohlc_json(&pair.key, &candles, last))
}

/// A request refused before any endpoint saw it (too many from its client), as this
/// exchange refuses.
pub(super) fn refused(e: &ClientError) -> Response {
    respond("refused", Err(failure(e)))
}

/// A failed candle request as Kraken would answer it: the one place candlepipe's codes
/// become Kraken's.
fn failure(e: &ClientError) -> KrakenError {
    match e.code() {
        Some(ErrorCode::UnknownSymbol | ErrorCode::InvalidSymbol) => UNKNOWN_PAIR,
        Some(
            ErrorCode::UnsupportedInterval | ErrorCode::BadRequest | ErrorCode::LimitOutOfRange,
        ) => INVALID,
        Some(ErrorCode::RateLimited) => KrakenError("EAPI:Rate limit exceeded"),
        Some(ErrorCode::Timeout) => KrakenError("EService:Busy"),
        _ => {
            tracing::warn!(error = %e, "gateway: kraken OHLC not answered");
            UNAVAILABLE
        }
    }
}

/// `{"error":[],"result":{"<key>":[[time,"o","h","l","c","vwap","volume",count],…],"last":…}}`.
fn ohlc_json(key: &str, candles: &[&Candle], last: Millis) -> String {
    let mut out = Vec::with_capacity(64 + candles.len() * 100);
    out.extend_from_slice(b"{\"error\":[],\"result\":{\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":[");
    let mut digits = itoa::Buffer::new();
    for (i, c) in candles.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        out.extend_from_slice(digits.format(c.t / 1000).as_bytes());
        for d in [
            Some(&c.o),
            Some(&c.h),
            Some(&c.l),
            Some(&c.c),
            c.vwap.as_ref(),
            Some(&c.v),
        ] {
            out.extend_from_slice(b",\"");
            candlepipe_core::decimal_text::write(d.unwrap_or(&Decimal::ZERO), &mut out);
            out.push(b'"');
        }
        out.push(b',');
        out.extend_from_slice(digits.format(c.trades.unwrap_or(0)).as_bytes());
        out.push(b']');
    }
    out.extend_from_slice(b"],\"last\":");
    out.extend_from_slice(digits.format(last / 1000).as_bytes());
    out.extend_from_slice(b"}}");
    // Only ASCII digits, punctuation, a pair key and decimal text were written.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_times_are_written_as_kraken_writes_them() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let c = Candle {
            t: 1_762_777_200_000,
            o: d("106038.1"),
            h: d("106044.3"),
            l: d("106038.1"),
            c: d("106040.1"),
            v: d("0.08317981"),
            vwap: Some(d("106039.6")),
            trades: Some(3),
            closed: true,
            ..Default::default()
        };
        assert_eq!(
            ohlc_json("XBTUSDT", &[&c], 1_762_777_200_000),
            r#"{"error":[],"result":{"XBTUSDT":[[1762777200,"106038.1","106044.3","106038.1","106040.1","106039.6","0.08317981",3]],"last":1762777200}}"#
        );
        let t = OffsetDateTime::from_unix_timestamp(1_688_669_448).unwrap();
        assert_eq!(rfc1123(t), "Thu, 06 Jul 23 18:50:48 +0000");
    }
}
