//! Live candles from the exchanges' WebSockets (the sim's streams): watched series are
//! published on their live subjects, answered from cache with `"source":"stream"`, and
//! cost no REST call after the first load.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::support::*;

const M: i64 = 60_000;

async fn request(client: &async_nats::Client, subject: &str, body: Value) -> Value {
    let msg = client
        .request(subject.to_string(), Bytes::from(body.to_string()))
        .await
        .expect("a reply");
    serde_json::from_slice(&msg.payload).expect("json")
}

async fn watch(
    client: &async_nats::Client,
    exchange: &str,
    symbol: &str,
    interval: &str,
) -> String {
    let reply = request(
        client,
        "candlepipe.candles.watch",
        json!({"exchange": exchange, "symbol": symbol, "interval": interval}),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    reply["subject"].as_str().unwrap().to_string()
}

async fn next_candle(live: &mut async_nats::Subscriber) -> Value {
    let msg = tokio::time::timeout(Duration::from_secs(15), live.next())
        .await
        .expect("a live candle in time")
        .expect("subscription open");
    serde_json::from_slice(&msg.payload).expect("candle json")
}

#[tokio::test]
async fn watched_series_are_live_and_served_from_the_stream_without_rest_calls() {
    let stack = stack().await;
    stack
        .sim
        .set_faults("binance", json!({"stream_tick_ms": 200}))
        .await;
    stack
        .sim
        .set_faults("kraken", json!({"stream_tick_ms": 200}))
        .await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;

    for (exchange, symbol) in [("binance", "ETH/USDT"), ("kraken", "ETH/USD")] {
        let subject = watch(&client, exchange, symbol, "1m").await;
        assert_eq!(
            subject,
            format!(
                "candlepipe.candles.live.{exchange}.{}.1m",
                symbol.replace('/', "-")
            )
        );
        let mut live = client.subscribe(subject).await.unwrap();
        // Kraken's snapshot brings recent candles first; then the forming one comes.
        let forming = loop {
            let candle = next_candle(&mut live).await;
            assert!(
                candle["o"].is_string() && candle["closed"].is_boolean(),
                "{candle}"
            );
            if candle["closed"] == false {
                break candle;
            }
        };
        let now = now_ms();
        let t = forming["t"].as_i64().unwrap();
        assert!(
            t == now - now.rem_euclid(M) || t == now - now.rem_euclid(M) - M,
            "{forming}"
        );

        // The first request loads the window from REST; then the stream keeps it fresh.
        let latest = json!({"exchange": exchange, "symbol": symbol, "interval": "1m", "limit": 10, "max_age_ms": 2000});
        let first = get(&client, latest.clone()).await;
        assert_eq!(ok(&first).len(), 10, "{first}");
        let calls = stack.sim.requests(exchange).await;
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let reply = get(&client, latest.clone()).await;
            assert_eq!(source(&reply), "stream", "{exchange}: {reply}");
            let candles = ok(&reply);
            let now = now_ms();
            let newest = candles.last().unwrap()["t"].as_i64().unwrap();
            assert!(now - newest < M + 3_000, "{exchange}: fresh: {reply}");
        }
        assert_eq!(
            stack.sim.requests(exchange).await,
            calls,
            "{exchange}: no REST call while the stream is healthy"
        );
    }

    // What cannot be streamed says so.
    let refused = request(
        &client,
        "candlepipe.candles.watch",
        json!({"exchange":"coinbase","symbol":"BTC/USD","interval":"1m"}),
    )
    .await;
    assert_eq!(
        refused["error"]["code"], "unsupported_interval",
        "{refused}"
    );
    let refused = request(
        &client,
        "candlepipe.candles.watch",
        json!({"exchange":"binance","symbol":"NOPE/USDT","interval":"1m"}),
    )
    .await;
    assert_eq!(refused["error"]["code"], "unknown_symbol", "{refused}");
}
