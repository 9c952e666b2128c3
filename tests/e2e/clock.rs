//! One clock: a fill worker whose host clock is 30 s behind or ahead (libfaketime) answers
//! exactly like one without skew, and no request waits out its deadline.

use std::time::{Duration, Instant};

use candlepipe_testkit::Worker;
use serde_json::{json, Value};

use crate::support::*;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const M: i64 = 60_000;
const TIMEOUT_MS: u64 = 5_000;

/// A stack whose ingest runs on the host's clock and whose fill worker runs `skew` off it
/// (`None`: no skew).
async fn skewed(skew: Option<&str>) -> (Stack, Worker, Worker) {
    let stack = stack().await;
    let ingest = stack.worker(&["ingest"]).await;
    let mut env = stack.worker_env();
    if let Some(skew) = skew {
        env.extend([
            ("LD_PRELOAD".to_string(), LIBFAKETIME.to_string()),
            ("FAKETIME".to_string(), skew.to_string()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".to_string(), "1".to_string()),
        ]);
    }
    let fill = Worker::start(BIN, &["fill"], &env).await;
    (stack, ingest, fill)
}

/// Asks and checks the answer came in time; returns it with the forming candle's values
/// left out (they move with the clock).
async fn ask(client: &async_nats::Client, request: &Value) -> Value {
    let mut request = request.clone();
    request["timeout_ms"] = json!(TIMEOUT_MS);
    let started = Instant::now();
    let mut reply = get(client, request.clone()).await;
    assert!(
        started.elapsed() < Duration::from_millis(TIMEOUT_MS),
        "{request} took {:?}",
        started.elapsed()
    );
    assert_eq!(reply["ok"], true, "{request}: {reply}");
    reply["source"] = json!(null);
    for c in reply["candles"].as_array_mut().unwrap() {
        if c["closed"] == false {
            *c = json!({"t": c["t"], "closed": false});
        }
    }
    reply
}

/// What one stack answers: latest windows (twice, the second a refresh), a closed window,
/// and an interval built from a smaller one.
async fn answers(stack: &Stack) -> Vec<Value> {
    let client = stack.client().await;
    let requests = [
        json!({"exchange":"binance","symbol":"ETH/USDT","interval":"1m","limit":10}),
        json!({"exchange":"kraken","symbol":"XRP/USD","interval":"1m","limit":5}),
        json!({"exchange":"coinbase","symbol":"ETH/USD","interval":"4h","limit":3}),
        json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":30,"end":closed_end(M)}),
    ];
    let mut out = Vec::new();
    for r in &requests {
        out.push(ask(&client, r).await);
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    out.push(ask(&client, &requests[0]).await);
    out
}

#[tokio::test]
async fn fill_workers_off_by_30_s_answer_as_one_on_time() {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: apt-get install faketime (scripts/test.sh does)"
    );
    let (plain, behind, ahead) =
        tokio::join!(skewed(None), skewed(Some("-30s")), skewed(Some("+30s")));
    // Late in a minute, when a clock 30 s ahead has already closed the forming candle.
    into_minute(33, 45).await;
    let (want, got_behind, got_ahead) =
        tokio::join!(answers(&plain.0), answers(&behind.0), answers(&ahead.0));
    for r in &want {
        let candles = r["candles"].as_array().unwrap();
        assert!(!candles.is_empty() && r["complete"] == true, "{r}");
    }
    assert_eq!(got_behind, want, "fill worker 30 s behind");
    assert_eq!(got_ahead, want, "fill worker 30 s ahead");

    // Next minute: the candle that was forming is closed, and the same everywhere.
    into_minute(5, 20).await;
    let (want, got_behind, got_ahead) =
        tokio::join!(answers(&plain.0), answers(&behind.0), answers(&ahead.0));
    assert_eq!(got_behind, want, "fill worker 30 s behind, next minute");
    assert_eq!(got_ahead, want, "fill worker 30 s ahead, next minute");
}
