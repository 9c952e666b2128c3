//! Wire formats: each exchange's real response becomes the same unified candles with exact
//! decimals, and MessagePack requests get MessagePack replies.

use bytes::Bytes;
use candlepipe_core::request::AnyReply;
use serde_json::{json, Value};

use crate::support::*;

/// The sim's own answer for a window, fetched directly in the exchange's format.
async fn raw(stack: &Stack, path_and_query: &str) -> Value {
    serde_json::from_slice(&sim_raw(stack, path_and_query).await).expect("json")
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn each_exchange_format_round_trips_to_unified_candles() {
    let stack = stack().await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let end = closed_end(3_600_000);
    let start = end - 9 * 3_600_000;

    let reply = get(
        &client,
        json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1h","limit":10,"end":end}),
    )
    .await;
    let rows = raw(
        &stack,
        &format!("/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime={start}&endTime={end}"),
    )
    .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 10);
    for (c, r) in ok(&reply).iter().zip(rows) {
        assert_eq!(c["t"], r[0]);
        for (k, i) in [("o", 1), ("h", 2), ("l", 3), ("c", 4), ("v", 5)] {
            assert_eq!(
                c[k].as_str().unwrap(),
                r[i].as_str().unwrap(),
                "binance {k} keeps its digits"
            );
        }
        // Every other field Binance sends but the close time and the ignored one, as text.
        for (k, i) in [
            ("quote_volume", 7),
            ("trades", 8),
            ("taker_buy_base", 9),
            ("taker_buy_quote", 10),
        ] {
            assert_eq!(c[k].as_str().unwrap(), text(&r[i]), "binance {k}: {c}");
        }
        assert!(c.get("vwap").is_none(), "{c}");
    }
    // From the store (fragments, then L1), every field as the exchange gave it.
    for _ in 0..2 {
        let again = get(
            &client,
            json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1h","limit":10,"end":end}),
        )
        .await;
        assert_ne!(again["source"], "exchange", "{again}");
        assert_eq!(ok(&again), ok(&reply));
    }

    let reply = get(
        &client,
        json!({"exchange":"coinbase","symbol":"ETH/USD","interval":"1h","limit":10,"end":end}),
    )
    .await;
    let rows = raw(
        &stack,
        &format!(
            "/products/ETH-USD/candles?granularity=3600&start={}&end={}",
            start / 1000,
            end / 1000
        ),
    )
    .await;
    let mut rows = rows.as_array().unwrap().clone();
    rows.reverse();
    assert_eq!(rows.len(), 10);
    for (c, r) in ok(&reply).iter().zip(&rows) {
        assert_eq!(c["t"].as_i64().unwrap(), r[0].as_i64().unwrap() * 1000);
        for (k, i) in [("l", 1), ("h", 2), ("o", 3), ("c", 4), ("v", 5)] {
            let ours: f64 = c[k].as_str().unwrap().parse().unwrap();
            assert_eq!(ours, r[i].as_f64().unwrap(), "coinbase {k}");
        }
        assert!(
            c.get("trades").is_none() && c.get("quote_volume").is_none(),
            "Coinbase sends no extra field: {c}"
        );
    }

    let reply = get(
        &client,
        json!({"exchange":"kraken","symbol":"BTC/USD","interval":"1h","limit":10,"end":end}),
    )
    .await;
    let body = raw(
        &stack,
        &format!(
            "/0/public/OHLC?pair=XBTUSD&interval=60&since={}",
            start / 1000 - 1
        ),
    )
    .await;
    let rows: Vec<Value> = body["result"]["XXBTZUSD"]
        .as_array()
        .expect("Kraken's own pair key")
        .clone();
    let by_t: std::collections::HashMap<i64, &Value> = rows
        .iter()
        .map(|r| (r[0].as_i64().unwrap() * 1000, r))
        .collect();
    assert_eq!(ok(&reply).len(), 10);
    for c in ok(&reply) {
        let r = by_t[&c["t"].as_i64().unwrap()];
        for (k, i) in [("o", 1), ("h", 2), ("l", 3), ("c", 4), ("v", 6)] {
            assert_eq!(c[k].as_str().unwrap(), text(&r[i]), "kraken {k}");
        }
        for (k, i) in [("vwap", 5), ("trades", 7)] {
            assert_eq!(c[k].as_str().unwrap(), text(&r[i]), "kraken {k}: {c}");
        }
        assert_eq!(c["closed"], true);
    }
}

#[tokio::test]
async fn msgpack_requests_get_msgpack_replies() {
    let stack = stack().await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let ask = |body: Vec<u8>| {
        let client = client.clone();
        async move {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Content-Type", "application/msgpack");
            let req = async_nats::Request::new()
                .payload(Bytes::from(body))
                .headers(headers);
            client
                .send_request("candlepipe.candles.get", req)
                .await
                .expect("reply")
        }
    };
    #[derive(serde::Serialize)]
    struct Req<'a> {
        exchange: &'a str,
        symbol: &'a str,
        interval: &'a str,
        limit: i64,
    }
    let body = rmp_serde::to_vec_named(&Req {
        exchange: "binance",
        symbol: "BTC/USDT",
        interval: "15m",
        limit: 7,
    })
    .unwrap();
    let msg = ask(body).await;
    assert_eq!(
        msg.headers
            .as_ref()
            .and_then(|h| h.get("Content-Type"))
            .map(|v| v.as_str()),
        Some("application/msgpack")
    );
    assert!(
        serde_json::from_slice::<Value>(&msg.payload).is_err(),
        "the reply is not JSON"
    );
    let reply: AnyReply = rmp_serde::from_slice(&msg.payload).expect("msgpack reply");
    let reply = reply.into_result().expect("ok");
    assert_eq!(reply.candles.len(), 7);
    assert_eq!(reply.interval.as_str(), "15m");

    let body = rmp_serde::to_vec_named(&Req {
        exchange: "binance",
        symbol: "BTC.USDT",
        interval: "15m",
        limit: 7,
    })
    .unwrap();
    let err: AnyReply =
        rmp_serde::from_slice(&ask(body).await.payload).expect("msgpack error reply");
    assert_eq!(
        err.into_result().unwrap_err().code.as_str(),
        "invalid_symbol"
    );
    let err: AnyReply = rmp_serde::from_slice(&ask(b"\xc1\xc1".to_vec()).await.payload)
        .expect("msgpack error reply");
    assert_eq!(err.into_result().unwrap_err().code.as_str(), "bad_request");
}
