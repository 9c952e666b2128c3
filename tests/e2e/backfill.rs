//! `candlepipe backfill`: pages history in within the budget, resumably.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn backfill_of_ten_thousand_candles_respects_the_budget_and_serves_later_windows() {
    const RPS: u64 = 4;
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_BINANCE_RPS", RPS);
    let client = stack.client().await;
    // 10,000 one-minute candles ending two hours ago: 10 pages of 1,000 (REST only: not
    // from Binance's archive, see history.rs).
    let until = closed_end(60_000) - 3_600_000;
    let since = until - 9_999 * 60_000;
    let (since_ms, until_ms) = (since.to_string(), until.to_string());
    let args = [
        "backfill",
        "binance",
        "BTC/USDT",
        "1m",
        "--since",
        &since_ms,
        "--until",
        &until_ms,
        "--rest-only",
    ];
    let (status, stdout, stderr) = cli_output(&stack, &args).await;
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("10000 candle slots") && stdout.contains("10000 candles fetched"),
        "{stdout}"
    );
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("backfill: "))
        .collect();
    assert_eq!(progress.len(), 10, "a progress line per page: {stderr}");
    assert!(progress[9].contains("10000/10000"));

    let stats = stack.sim.stats().await;
    assert_eq!(stats["binance"]["requests"], 10);
    let busiest = busiest_second(&stats, "binance");
    assert!(
        busiest <= RPS,
        "{busiest} requests in one second with a budget of {RPS}"
    );

    // Run again: everything is covered, nothing is fetched.
    let (status, again) = cli(&stack, &args).await;
    assert_eq!(status, Some(0));
    assert!(
        again.contains("0 candles fetched, 10000 already cached"),
        "{again}"
    );

    // Windows inside the range are answered from the cache.
    let _worker = stack.worker(&["all"]).await;
    let reply = get(&client, json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":1000,"end": since + 5_000 * 60_000})).await;
    assert_eq!(ok(&reply).len(), 1000);
    assert_eq!(source(&reply), "redis");
    assert_eq!(stack.sim.requests("binance").await, 10);
}
