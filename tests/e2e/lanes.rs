//! Spending each exchange's budget where producers wait: lanes per exchange, deadlines,
//! admission, live work before bulk work.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

/// A cold request for a series nobody asked for yet, willing to wait `timeout_ms`.
fn cold(exchange: &str, n: usize, timeout_ms: u64) -> Value {
    let quote = if exchange == "binance" { "USDT" } else { "USD" };
    json!({"exchange": exchange, "symbol": format!("TEST{n}/{quote}"), "interval": "1m",
           "limit": 5, "timeout_ms": timeout_ms})
}

/// Sends `requests` at once; the replies in order. The NATS request gives up only a second
/// after each request's own `timeout_ms`, so a missing reply fails the test.
async fn all_at_once(client: &async_nats::Client, requests: Vec<Value>) -> Vec<Value> {
    let mut set = tokio::task::JoinSet::new();
    for (i, r) in requests.into_iter().enumerate() {
        let client = client.clone();
        let wait = Duration::from_millis(r["timeout_ms"].as_u64().unwrap_or(8_000) + 1_000);
        set.spawn(async move {
            let body = serde_json::to_vec(&r).unwrap();
            (i, request_within(&client, body, wait).await)
        });
    }
    let mut replies = vec![Value::Null; set.len()];
    while let Some(done) = set.join_next().await {
        let (i, reply) = done.expect("task");
        replies[i] = reply;
    }
    replies
}

/// Cold requests for series `TEST<n>` (`n` in `ns`) of `exchange`, all at once.
async fn cold_burst(
    client: &async_nats::Client,
    exchange: &str,
    ns: std::ops::Range<usize>,
    timeout_ms: u64,
) -> Vec<Value> {
    all_at_once(client, ns.map(|i| cold(exchange, i, timeout_ms)).collect()).await
}

/// The jobs stream as earlier versions made it: no size limits.
async fn earlier_jobs_stream(
    js: &async_nats::jetstream::Context,
) -> async_nats::jetstream::stream::Stream {
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "CANDLEPIPE_JOBS".into(),
        subjects: vec!["candlepipe.jobs.>".into()],
        retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn count(replies: &[Value], what: &str) -> usize {
    replies
        .iter()
        .filter(|r| match what {
            "ok" => r["ok"] == true,
            code => r["ok"] == false && r["error"]["code"] == code,
        })
        .count()
}

#[tokio::test]
async fn a_slow_exchange_backlog_holds_no_capacity_another_exchange_needs() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_KRAKEN_RPS", 1);
    let _worker = stack.worker(&["ingest", "fill"]).await;
    let client = stack.client().await;

    // 40 Kraken series, each willing to wait a minute: far more than one fill process's
    // 16 slots, all of them waiting for Kraken's one request a second.
    let kraken = {
        let client = client.clone();
        tokio::spawn(async move { cold_burst(&client, "kraken", 0..40, 60_000).await })
    };
    eventually(
        Duration::from_secs(10),
        "Kraken's queue to fill up",
        || async { (stack.sim.requests("kraken").await >= 2).then_some(()) },
    )
    .await;

    // Binance requests that wait only 3 s are all answered, from Binance.
    let binance = cold_burst(&client, "binance", 0..10, 3_000).await;
    for reply in &binance {
        assert_eq!(ok(reply).len(), 5, "{reply}");
        assert_eq!(source(reply), "exchange");
    }
    let kraken_calls = stack.sim.requests("kraken").await;
    assert!(
        kraken_calls < 40,
        "Kraken's backlog was still queued while Binance was served ({kraken_calls} calls)"
    );
    kraken.abort();
}

#[tokio::test]
async fn a_burst_past_the_budget_is_answered_before_every_deadline() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_BINANCE_RPS", 10);
    let _worker = stack.worker(&["ingest", "fill"]).await;
    let client = stack.client().await;
    // Loading Binance's market list at start took a second of this budget (its weight).
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    // 40 cold series that wait 2 s each, at 10 requests a second: about 15 fit (their turn
    // plus the 500 ms admission margin before the deadline); the rest are told at once.
    let replies = cold_burst(&client, "binance", 0..40, 2_000).await;
    let (served, refused) = (count(&replies, "ok"), count(&replies, "rate_limited"));
    assert_eq!(served + refused, 40, "only ok or rate_limited: {replies:?}");
    assert!(served >= 8, "{served} served");
    assert!(refused >= 15, "{refused} refused");
    for r in replies.iter().filter(|r| r["ok"] == false) {
        let after = r["error"]["retry_after_ms"].as_u64();
        assert!(
            after.is_some_and(|ms| ms > 0),
            "rate_limited says when: {r}"
        );
    }
    // Refused requests cost the exchange nothing.
    assert_eq!(stack.sim.requests("binance").await, served as u64);

    // The same burst from producers willing to wait 60 s: every one is served.
    let replies = cold_burst(&client, "binance", 100..140, 60_000).await;
    assert_eq!(count(&replies, "ok"), 40, "{replies:?}");
}

#[tokio::test]
async fn producers_who_wait_are_served_before_jobs_whose_producers_left() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_BINANCE_RPS", 20);
    let _worker = stack.worker(&["ingest", "fill"]).await;
    let client = stack.client().await;
    // The first request is answered 429 with a 3 s Retry-After.
    stack
        .sim
        .set_faults(
            "binance",
            json!({"fault": {"mode": "status", "status": 429, "retry_after_s": 3, "times": 1}}),
        )
        .await;

    // A burst of producers who wait 1.5 s: the pause outlasts them all.
    let left = cold_burst(&client, "binance", 0..12, 1_500).await;
    for r in &left {
        assert_eq!(
            code(r),
            "rate_limited",
            "told at once, not left to time out: {r}"
        );
        assert!(r["error"]["retry_after_ms"].as_u64().is_some(), "{r}");
    }
    // New producers during the pause, who wait 8 s.
    let waiting = cold_burst(&client, "binance", 50..55, 8_000).await;
    for r in &waiting {
        assert_eq!(ok(r).len(), 5, "{r}");
    }
    // After the 429, the exchange saw the waiting producers' series first; the abandoned
    // jobs run afterwards, on budget nobody waiting needs.
    let symbols: Vec<String> = eventually(
        Duration::from_secs(20),
        "the abandoned jobs to run",
        || async {
            let queries = stack.sim.queries("binance").await;
            (queries.len() >= 1 + 5 + 11).then_some(queries)
        },
    )
    .await
    .iter()
    .skip(1)
    .map(|q| query_param(q, "symbol").unwrap_or_default())
    .collect();
    let new: Vec<&String> = symbols[..5].iter().collect();
    for s in &new {
        let n: usize = s
            .trim_start_matches("TEST")
            .trim_end_matches("USDT")
            .parse()
            .unwrap();
        assert!(
            (50..55).contains(&n),
            "served before the waiting producers: {symbols:?}"
        );
    }
    assert_eq!(stack.sim.stats().await["binance"]["rate_limited"], 1);
}

#[tokio::test]
async fn an_analysis_asks_for_its_candles_with_its_own_time() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_KRAKEN_RPS", 10);
    // A candles request that does not say waits only 1 s by default.
    stack.set("CANDLEPIPE_FILL_WAIT_MS", 1_000);
    let _worker = stack.worker(&["ingest", "fill", "analyze"]).await;
    let client = stack.client().await;
    let symbols: Vec<String> = (0..30).map(|i| format!("TEST{i}/USD")).collect();
    let reply = analyze(
        &client,
        json!({"exchange":"kraken","symbols":symbols,"interval":"1h","lookback":60,"timeout_ms":30_000}),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["errors"], json!({}), "{reply}");
    assert_eq!(reply["results"].as_object().unwrap().len(), 30);
}

#[tokio::test]
async fn a_permanent_rejection_is_asked_once() {
    let stack = stack().await;
    let _worker = stack.worker(&["ingest", "fill"]).await;
    let client = stack.client().await;
    stack
        .sim
        .set_faults(
            "binance",
            json!({"fault": {"mode": "status", "status": 403, "symbol": "TEST7USDT"}}),
        )
        .await;
    let reply = get(&client, cold("binance", 7, 8_000)).await;
    assert_eq!(code(&reply), "upstream_error", "{reply}");
    assert!(
        reply["error"]["message"].as_str().unwrap().contains("403"),
        "{reply}"
    );
    assert_eq!(stack.sim.requests("binance").await, 1, "no retries");
    let (_, out) = cli(&stack, &["dlq", "list", "--json"]).await;
    assert_eq!(out.trim(), "[]", "terminated, not dead-lettered");
}

#[tokio::test]
async fn a_fill_worker_replaces_the_single_consumer_of_earlier_versions() {
    use async_nats::jetstream::consumer;
    let stack = stack().await;
    let client = stack.client().await;
    let js = async_nats::jetstream::new(client.clone());
    // The stream and the one fill consumer (on every fill job) as earlier versions made them.
    let jobs = earlier_jobs_stream(&js).await;
    jobs.create_consumer(consumer::pull::Config {
        durable_name: Some("fill".into()),
        filter_subject: "candlepipe.jobs.fill.>".into(),
        ..Default::default()
    })
    .await
    .unwrap();

    let _worker = stack.worker(&["ingest", "fill"]).await;
    assert!(
        jobs.consumer_info("fill").await.is_err(),
        "the old consumer is gone"
    );
    let mut jobs = js.get_stream("CANDLEPIPE_JOBS").await.unwrap();
    let limits = jobs.info().await.unwrap().config.clone();
    assert!(
        limits.max_messages > 0 && limits.max_bytes > 0 && limits.max_messages_per_subject > 0,
        "the unlimited stream got size limits: {limits:?}"
    );
    for name in ["fill-binance", "fill-coinbase-bulk", "fill-kraken"] {
        let info = jobs.consumer_info(name).await.unwrap();
        assert!(info
            .config
            .filter_subject
            .starts_with("candlepipe.jobs.fill."));
    }
    let client = stack.client().await;
    assert_eq!(ok(&get(&client, cold("binance", 1, 8_000)).await).len(), 5);
}

#[tokio::test]
async fn a_series_asked_for_50_then_500_candles_costs_one_call() {
    let stack = stack().await;
    let _worker = stack.worker(&["ingest", "fill"]).await;
    let client = stack.client().await;
    let ask = |symbol: &str, limit: i64| json!({"exchange":"binance","symbol":symbol,"interval":"5m","limit":limit,"max_age_ms":600_000});
    // Someone asks for 500 candles of a series: 500 is remembered for binance 5m.
    assert_eq!(ok(&get(&client, ask("TEST1/USDT", 500)).await).len(), 500);
    // A new series asked for 50 is fetched 500 wide, in the same one call...
    let first = get(&client, ask("TEST2/USDT", 50)).await;
    assert_eq!((ok(&first).len(), source(&first)), (50, "exchange"));
    // ...so 500 of it are already there.
    let wide = get(&client, ask("TEST2/USDT", 500)).await;
    assert_eq!(ok(&wide).len(), 500);
    assert_ne!(source(&wide), "exchange");
    assert_eq!(stack.sim.requests("binance").await, 2);
}

#[tokio::test]
async fn a_consumer_with_other_settings_is_brought_to_the_configured_ones_or_refused() {
    use async_nats::jetstream::consumer;
    let stack = stack().await;
    let client = stack.client().await;
    let js = async_nats::jetstream::new(client.clone());
    let jobs = earlier_jobs_stream(&js).await;
    // As an earlier version (or an operator) left it: 30 s ack wait, 9 deliveries.
    jobs.create_consumer(consumer::pull::Config {
        durable_name: Some("fill-binance".into()),
        filter_subject: "candlepipe.jobs.fill.binance".into(),
        ack_wait: Duration::from_secs(30),
        max_deliver: 9,
        ..Default::default()
    })
    .await
    .unwrap();
    let worker = stack.worker(&["fill"]).await;
    let held = jobs.consumer_info("fill-binance").await.unwrap().config;
    assert_eq!(
        (held.ack_wait, held.max_deliver),
        (Duration::from_secs(2), 5)
    );
    drop(worker);

    // One whose replay policy the server will not change: the worker says so and stops.
    jobs.delete_consumer("fill-kraken").await.unwrap();
    jobs.create_consumer(consumer::pull::Config {
        durable_name: Some("fill-kraken".into()),
        filter_subject: "candlepipe.jobs.fill.kraken".into(),
        replay_policy: consumer::ReplayPolicy::Original,
        ..Default::default()
    })
    .await
    .unwrap();
    let run = tokio::process::Command::new(BIN)
        .args(["run", "fill"])
        .env_clear()
        .envs(stack.worker_env())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the worker refuses to start, it does not run")
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("consumer fill-kraken") && err.contains("nats consumer rm"),
        "{err}"
    );
}
