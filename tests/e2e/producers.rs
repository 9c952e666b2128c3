//! The Python producer example (`examples/python/producer.py`, nats-py) against a real
//! stack: candles equal to what a Rust producer gets, an analysis, and error codes handled.

use serde_json::{json, Value};

use crate::support::*;

/// Runs the example with `args`; its exit code and the JSON object it printed per answer.
async fn producer(stack: &Stack, args: &[&str]) -> (Option<i32>, Vec<Value>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/producer.py");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(script)
        .args(["--nats", &stack.nats.url(), "--json"])
        .args(args);
    // scripts/test.sh installs nats-py under .tools/python and says where.
    if let Ok(path) = std::env::var("CANDLEPIPE_PYTHONPATH") {
        cmd.env("PYTHONPATH", path);
    }
    let out = cmd.output().await.expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "nats-py is missing (scripts/test.sh installs it): {stderr}"
    );
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("a JSON line: {l}\n{stderr}")))
        .collect();
    (out.status.code(), lines)
}

#[tokio::test]
async fn the_python_producer_gets_candles_and_an_analysis_and_handles_errors() {
    let stack = stack().await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;

    let (status, answers) = producer(
        &stack,
        &[
            "--exchange",
            "binance",
            "--symbol",
            "SOL/USDT",
            "--interval",
            "1h",
            "--limit",
            "5",
            "--analyze",
            "ETH/USDT",
            "NOPE/USDT",
        ],
    )
    .await;
    assert_eq!(status, Some(0), "{answers:?}");
    assert_eq!(answers.len(), 2, "{answers:?}");
    let candles = &answers[0];
    assert_eq!(candles["what"], "candles");
    // What a Rust producer gets for the same request, now from the cache.
    let rust = get(
        &client,
        json!({"exchange":"binance","symbol":"SOL/USDT","interval":"1h","limit":5}),
    )
    .await;
    let closed = |reply: &Value| -> Vec<Value> {
        ok(reply)
            .iter()
            .filter(|c| c["closed"] == true)
            .cloned()
            .collect()
    };
    assert_eq!(ok(candles).len(), 5, "{candles}");
    assert_eq!(closed(candles), closed(&rust));
    let analysis = &answers[1];
    assert_eq!(analysis["what"], "analysis");
    assert!(
        analysis["results"]["ETH/USDT"]["rsi14"].is_number(),
        "{analysis}"
    );
    assert_eq!(analysis["errors"]["NOPE/USDT"]["code"], "unknown_symbol");

    // An input error is reported with its code, not retried, and the exit code says so.
    let calls = stack.sim.requests("binance").await;
    let (status, answers) = producer(&stack, &["--symbol", "BTC.USDT"]).await;
    assert_eq!(status, Some(1));
    assert_eq!(answers[0]["error"]["code"], "invalid_symbol", "{answers:?}");
    let (_, answers) = producer(&stack, &["--symbol", "NOPE/USDT"]).await;
    assert_eq!(answers[0]["error"]["code"], "unknown_symbol", "{answers:?}");
    assert_eq!(
        stack.sim.requests("binance").await,
        calls,
        "asked once each, not again"
    );
}

#[tokio::test]
async fn the_python_producer_says_when_nobody_serves() {
    let stack = stack().await;
    let (status, answers) = producer(&stack, &[]).await;
    assert_eq!(status, Some(1));
    assert_eq!(answers[0]["error"]["code"], "unavailable", "{answers:?}");
}
