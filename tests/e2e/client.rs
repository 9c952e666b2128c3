//! The Rust client crate (`candlepipe-client`) against a real stack: typed candles in both
//! encodings, wire errors as typed errors, analyses (request-reply and the async job), and
//! live candles with the watch renewed.

use std::time::Duration;

use candlepipe_client::{Client, Error};
use candlepipe_core::{AnalysisRequest, CandlesRequest, Encoding, ErrorCode, Source};
use futures::StreamExt;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn typed_candles_in_both_encodings_and_wire_errors_as_typed_errors() {
    let stack = stack().await;
    let nats = stack.client().await;
    let client = Client::new(nats.clone());
    // Nobody serves yet.
    let none = client
        .candles(&CandlesRequest::latest("binance", "BTC/USDT", "1h", 5))
        .await;
    assert!(matches!(none, Err(Error::NoResponders { .. })), "{none:?}");

    let _worker = stack.worker(&["ingest", "fill"]).await;
    let end = closed_end(3_600_000);
    let req = CandlesRequest {
        end: Some(end),
        ..CandlesRequest::latest("binance", "BTC/USDT", "1h", 5)
    };
    let first = client.candles(&req).await.unwrap();
    assert_eq!(first.candles.len(), 5);
    assert_eq!(first.candles.last().unwrap().t, end);
    assert_eq!(first.source, Source::Exchange);
    let packed = client
        .clone()
        .with_encoding(Encoding::Msgpack)
        .candles(&req)
        .await
        .unwrap();
    assert_eq!(packed.candles, first.candles);
    assert_ne!(packed.source, Source::Exchange, "a hit the second time");
    // The same as a raw JSON request gets.
    let raw = get(
        &nats,
        json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1h","limit":5,"end":end}),
    )
    .await;
    assert_eq!(
        serde_json::to_value(&first.candles).unwrap(),
        raw["candles"]
    );

    let bad = client
        .candles(&CandlesRequest::latest("binance", "BTC.USDT", "1h", 5))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some(ErrorCode::InvalidSymbol), "{bad}");
    assert!(!bad.is_transient());
    let unknown = client
        .candles(&CandlesRequest::latest("binance", "NOPE/USDT", "1h", 5))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Some(ErrorCode::UnknownSymbol), "{unknown}");
}

#[tokio::test]
async fn analyses_request_reply_and_as_a_job() {
    let stack = stack().await;
    let _worker = stack.worker(&["all"]).await;
    let client = Client::new(stack.client().await);
    let req = AnalysisRequest {
        exchange: "binance".into(),
        symbols: vec!["ETH/USDT".into(), "NOPE/USDT".into()],
        interval: Some("1h".into()),
        lookback: Some(60),
        ..AnalysisRequest::default()
    };
    let reply = client.analyze(&req).await.unwrap();
    assert!(reply.results["ETH/USDT"].rsi14.is_some(), "{reply:?}");
    assert_eq!(reply.errors["NOPE/USDT"].code, ErrorCode::UnknownSymbol);

    let job = client.analysis_job(&req, "client-job-1").await.unwrap();
    assert_eq!(job.id(), "client-job-1");
    let done = job.result(Duration::from_secs(30)).await.unwrap();
    assert_eq!(done.results.len(), 1);
    assert_eq!(
        done.results["ETH/USDT"].last_close,
        reply.results["ETH/USDT"].last_close
    );
    // A retry with the same id is deduplicated by JetStream: it still gets the result, the
    // first job's.
    let retried = client.analysis_job(&req, "client-job-1").await.unwrap();
    let again = retried.result(Duration::from_secs(30)).await.unwrap();
    assert_eq!(again, done);
    // A retry while the first still runs waits for its answer; both get the same one.
    let slow = AnalysisRequest {
        symbols: vec!["BTC/USDT".into(), "SOL/USDT".into()],
        ..req.clone()
    };
    let first = client.analysis_job(&slow, "client-job-2").await.unwrap();
    let second = client.analysis_job(&slow, "client-job-2").await.unwrap();
    let (a, b) = tokio::join!(
        first.result(Duration::from_secs(30)),
        second.result(Duration::from_secs(30))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.results.len(), 2, "{a:?}");
    assert_eq!(a, b);
    // An id nobody queued: a typed timeout, not a hang.
    let never = client
        .analysis_result("no-such-job", Duration::from_millis(300))
        .await;
    assert_eq!(never.unwrap_err().code(), Some(ErrorCode::Timeout));

    let whole = client
        .analyze(&AnalysisRequest {
            exchange: "nope".into(),
            ..req.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(whole.code(), Some(ErrorCode::UnknownExchange), "{whole}");
}

#[tokio::test]
async fn live_candles_come_as_a_stream_with_their_event_time() {
    let mut stack = stack().await;
    // A short watch: it lapses unless the client renews it.
    stack.set("CANDLEPIPE_WATCH_TTL_MS", "3000");
    stack
        .sim
        .set_faults("binance", json!({"stream_tick_ms": 200}))
        .await;
    let worker = stack.worker(&["all"]).await;
    let client = Client::new(stack.client().await);
    let mut live = client.watch("binance", "LINK/USDT", "1m").await.unwrap();
    assert_eq!(
        live.subject(),
        "candlepipe.candles.live.binance.LINK-USDT.1m"
    );
    let first = tokio::time::timeout(Duration::from_secs(15), live.next())
        .await
        .expect("a live candle")
        .unwrap()
        .unwrap();
    assert!(first.event_ms.is_some(), "{first:?}");
    // Well past the watch's 3 s: still live, because the client renews it.
    tokio::time::sleep(Duration::from_secs(8)).await;
    while tokio::time::timeout(Duration::from_millis(50), live.next())
        .await
        .is_ok()
    {}
    let later = tokio::time::timeout(Duration::from_secs(5), live.next())
        .await
        .expect("still live after the first watch lapsed")
        .unwrap()
        .unwrap();
    assert!(later.candle.t >= first.candle.t);

    // No stream role answers any more: the stream ends with the renewal's error (before
    // the 3 s watch lapses), not in silence.
    drop(worker);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match live.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends within the watch's life");
    let error = ended.expect("an error before the end").unwrap_err();
    assert!(matches!(error, Error::NoResponders { .. }), "{error}");
    assert!(live.next().await.is_none(), "then the stream is over");
}
