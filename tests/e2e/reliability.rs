//! Reliability: the shared request budget, cluster-wide back-off.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

fn events(stats: &Value, exchange: &str) -> Vec<(i64, u64)> {
    stats[exchange]["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["t"].as_i64().unwrap(), e["status"].as_u64().unwrap()))
        .collect()
}

#[tokio::test]
async fn three_fill_workers_share_one_budget_and_never_exceed_it() {
    const RPS: u64 = 20;
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_BINANCE_RPS", RPS);
    stack.set("CANDLEPIPE_FILL_WAIT_MS", "60000");
    // The exchange would punish anything over budget + burst (1) with a 429.
    stack
        .sim
        .set_faults(
            "binance",
            json!({"rate_limit": {"rps": RPS + 1, "retry_after_s": 1}}),
        )
        .await;
    let _fills = [
        stack.worker(&["fill"]).await,
        stack.worker(&["fill"]).await,
        stack.worker(&["fill"]).await,
    ];
    let _ingest = stack.worker(&["ingest"]).await;
    let client = stack.client().await;

    let mut set = tokio::task::JoinSet::new();
    for i in 0..500 {
        let client = client.clone();
        set.spawn(async move {
            let body =
                serde_json::to_vec(&req("binance", &format!("TEST{i}/USDT"), "1m", 10)).unwrap();
            request_within(&client, body, Duration::from_secs(90)).await
        });
    }
    let mut answered = 0;
    while let Some(reply) = set.join_next().await {
        let reply = reply.expect("task");
        assert_eq!(ok(&reply).len(), 10, "{reply}");
        answered += 1;
    }
    assert_eq!(answered, 500);

    let stats = stack.sim.stats().await;
    assert_eq!(
        stats["binance"]["rate_limited"], 0,
        "the exchange never answered 429"
    );
    assert_eq!(stats["binance"]["requests"], 500);
    let per_second = stats["binance"]["per_second"].as_object().unwrap();
    let busiest = per_second.values().filter_map(Value::as_u64).max().unwrap();
    assert!(
        busiest <= RPS + 1,
        "a 1-second window saw {busiest} requests: {per_second:?}"
    );
    // Any 1-second window, not only aligned ones.
    let times: Vec<i64> = events(&stats, "binance").iter().map(|e| e.0).collect();
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u < t + 1000).count() as u64;
        assert!(
            in_window <= RPS + 1,
            "{in_window} requests in the second after {t}"
        );
    }
}

#[tokio::test]
async fn a_429_with_retry_after_holds_every_worker_off_the_exchange() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_BINANCE_RPS", "50");
    stack.set("CANDLEPIPE_FILL_WAIT_MS", "15000");
    let _fills = [stack.worker(&["fill"]).await, stack.worker(&["fill"]).await];
    let _ingest = stack.worker(&["ingest"]).await;
    let client = stack.client().await;
    stack
        .sim
        .set_faults(
            "binance",
            json!({"fault": {"mode": "status", "status": 429, "retry_after_s": 2, "times": 1}}),
        )
        .await;

    let mut set = tokio::task::JoinSet::new();
    for symbol in [
        "BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT",
    ] {
        let client = client.clone();
        set.spawn(async move { get(&client, req("binance", symbol, "1m", 5)).await });
    }
    while let Some(reply) = set.join_next().await {
        assert_eq!(ok(&reply.expect("task")).len(), 5);
    }
    let events = events(&stack.sim.stats().await, "binance");
    let limited: Vec<i64> = events.iter().filter(|e| e.1 == 429).map(|e| e.0).collect();
    assert_eq!(limited.len(), 1, "{events:?}");
    let after: Vec<i64> = events
        .iter()
        .filter(|e| e.0 > limited[0])
        .map(|e| e.0)
        .collect();
    assert!(!after.is_empty(), "the work resumed: {events:?}");
    assert!(
        after.iter().all(|t| *t >= limited[0] + 2000),
        "requests within 2 s of the 429: {:?}",
        after.iter().map(|t| t - limited[0]).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_job_failing_every_delivery_is_dead_lettered_and_replays_once_the_fault_is_gone() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_RETRY_BASE_MS", "20");
    stack.set("CANDLEPIPE_RETRY_MAX_MS", "100");
    stack.set("CANDLEPIPE_STATS_FLUSH_MS", "100");
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    stack
        .sim
        .set_faults(
            "binance",
            json!({"fault": {"mode": "status", "status": 500, "symbol": "LINKUSDT"}}),
        )
        .await;

    let reply = get(&client, req("binance", "LINK/USDT", "1m", 5)).await;
    assert_eq!(code(&reply), "upstream_error");
    assert_eq!(
        stack.sim.requests("binance").await,
        5,
        "one exchange request per delivery"
    );

    let (status, out) = cli(&stack, &["dlq", "list", "--json"]).await;
    assert_eq!(status, Some(0), "{out}");
    let letters: Value = serde_json::from_str(&out).expect("json");
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let l = &letters[0];
    assert_eq!(l["subject"], "candlepipe.jobs.fill.binance");
    assert_eq!(l["code"], "upstream_error");
    assert_eq!(l["deliveries"], 5);
    assert!(l["message"].as_str().unwrap().contains("500"), "{l}");
    let (first, last) = (
        l["first_failure"].as_i64().unwrap(),
        l["last_failure"].as_i64().unwrap(),
    );
    assert!(first > 0 && first <= last, "{l}");
    let series = l["series"].as_array().expect("series");
    assert_eq!(series.len(), 1, "{l}");
    assert!(
        series[0]
            .as_str()
            .is_some_and(|s| s.starts_with("binance LINK/USDT 1m ") && s.contains("..")),
        "the dead letter names its series and window: {l}"
    );
    eventually(
        Duration::from_secs(10),
        "the dead letter counted",
        || async {
            let (_, out) = cli(&stack, &["stats", "--json"]).await;
            let v: Value = serde_json::from_str(&out).ok()?;
            (v["dead_letters_total"] == 1).then_some(())
        },
    )
    .await;
    let (status, table) = cli(&stack, &["dlq", "list"]).await;
    assert_eq!(status, Some(0));
    assert!(
        table.contains("1 dead letter(s)")
            && table.contains("upstream_error")
            && table.contains("binance LINK/USDT 1m"),
        "{table}"
    );

    // Not a terminal (as from cron): a replay still says what it did.
    let (status, out, err) = cli_output(&stack, &["dlq", "replay", "99"]).await;
    assert_eq!(status, Some(1), "{out} {err}");
    assert_eq!(out.trim(), "0 replayed, 1 failed", "stderr: {err}");
    assert!(err.contains("seq 99:"), "{err}");

    stack.sim.set_faults("binance", json!({})).await;
    let (status, out) = cli(&stack, &["dlq", "replay", "--all"]).await;
    assert_eq!(status, Some(0), "{out}");
    assert_eq!(out.trim(), "1 replayed, 0 failed");
    // The replayed job's request first: a producer's miss sent while that job is still on
    // its way to a fill worker (its series not yet locked) may be filled by a job of its
    // own, whose first request goes out beside its lock (ARCHITECTURE.md, invariants).
    eventually(
        Duration::from_secs(10),
        "the replayed job's request",
        || async { (stack.sim.requests("binance").await == 6).then_some(()) },
    )
    .await;
    let filled = eventually(Duration::from_secs(10), "the replayed job to fill the series", || async {
        let reply = get(&client, json!({"exchange":"binance","symbol":"LINK/USDT","interval":"1m","limit":5,"max_age_ms":60_000})).await;
        (reply["ok"] == true && reply["source"] != "exchange").then_some(reply)
    })
    .await;
    assert_eq!(ok(&filled).len(), 5);
    assert_eq!(
        stack.sim.requests("binance").await,
        6,
        "the replay made the one extra request"
    );
    let (_, out) = cli(&stack, &["dlq", "list", "--json"]).await;
    assert_eq!(out.trim(), "[]");
}

#[tokio::test]
async fn the_circuit_opens_on_failures_serves_stale_and_closes_when_the_exchange_recovers() {
    let mut stack = stack().await;
    for (k, v) in [
        ("CANDLEPIPE_BREAKER_MIN_SAMPLES", "4"),
        ("CANDLEPIPE_BREAKER_COOL_DOWN_MS", "1500"),
        ("CANDLEPIPE_RETRY_BASE_MS", "20"),
        ("CANDLEPIPE_RETRY_MAX_MS", "50"),
        ("CANDLEPIPE_FILL_WAIT_MS", "3000"),
    ] {
        stack.set(k, v);
    }
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let warm = json!({"exchange":"binance","symbol":"ADA/USDT","interval":"1m","limit":5});
    assert_eq!(ok(&get(&client, warm.clone()).await).len(), 5);

    stack
        .sim
        .set_faults(
            "binance",
            json!({"fault": {"mode": "status", "status": 503}}),
        )
        .await;
    for symbol in ["TEST1/USDT", "TEST2/USDT", "TEST3/USDT"] {
        assert_eq!(
            code(&get(&client, req("binance", symbol, "1m", 5)).await),
            "upstream_error"
        );
    }
    // 3 jobs × 5 deliveries, but the exchange saw only the failures that opened the circuit
    // (2 of the 4 samples, the market list's and the warm-up's successes being the others),
    // plus at most a probe or two.
    let seen = stack.sim.requests("binance").await - 1;
    assert!(
        (2..=4).contains(&seen),
        "{seen} failing requests reached the exchange"
    );

    // Open circuit: a cached series is answered stale at once.
    let started = std::time::Instant::now();
    let stale = get(
        &client,
        json!({"exchange":"binance","symbol":"ADA/USDT","interval":"1m","limit":5,"max_age_ms":0}),
    )
    .await;
    assert_eq!(stale["stale"], true, "{stale}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    stack.sim.set_faults("binance", json!({})).await;
    let fresh = eventually(Duration::from_secs(10), "the circuit to close", || async {
        let r = get(&client, json!({"exchange":"binance","symbol":"ADA/USDT","interval":"1m","limit":5,"max_age_ms":0})).await;
        (r["ok"] == true && r["stale"] == false).then_some(r)
    })
    .await;
    assert_eq!(source(&fresh), "exchange");
}

#[tokio::test]
async fn dlq_list_pages_over_the_letters_that_exist() {
    let stack = stack().await;
    let _fill = stack.worker(&["fill"]).await;
    let client = stack.client().await;
    let js = async_nats::jetstream::new(client.clone());
    // Five undecodable jobs: each is dead-lettered on its first delivery.
    for i in 0..5 {
        js.publish(
            "candlepipe.jobs.fill.binance",
            format!("not a job {i}").into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let dlq = js.get_stream("CANDLEPIPE_DLQ").await.unwrap();
    eventually(Duration::from_secs(10), "five dead letters", || async {
        let mut s = js.get_stream("CANDLEPIPE_DLQ").await.ok()?;
        (s.info().await.ok()?.state.messages == 5).then_some(())
    })
    .await;
    // Letters 2 and 3 are gone (replayed, say): the list skips them.
    dlq.delete_message(2).await.unwrap();
    dlq.delete_message(3).await.unwrap();
    let seqs = |out: &str| -> Vec<u64> {
        serde_json::from_str::<Value>(out)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["seq"].as_u64().unwrap())
            .collect()
    };
    let (_, out) = cli(&stack, &["dlq", "list", "--json", "--limit", "2"]).await;
    assert_eq!(seqs(&out), [1, 4]);
    let (_, out) = cli(
        &stack,
        &["dlq", "list", "--json", "--limit", "2", "--from", "5"],
    )
    .await;
    assert_eq!(seqs(&out), [5]);
    let (_, out) = cli(&stack, &["dlq", "list", "--json", "--from", "6"]).await;
    assert_eq!(seqs(&out), Vec::<u64>::new());
    // The table says where the next page starts, when there is one.
    let (_, table) = cli(&stack, &["dlq", "list", "--limit", "2"]).await;
    assert!(
        table.contains("2 dead letter(s) shown; more from --from 5"),
        "{table}"
    );
    let (_, table) = cli(&stack, &["dlq", "list", "--from", "4"]).await;
    assert!(table.trim_end().ends_with("2 dead letter(s)"), "{table}");
    let (status, _, err) = cli_output(&stack, &["dlq", "list", "--limit", "0"]).await;
    assert_eq!(status, Some(2), "{err}");

    // Purging asks first; without a terminal it needs --yes, and deletes nothing.
    let (status, _, err) = cli_output(&stack, &["dlq", "purge"]).await;
    assert_eq!(status, Some(1), "{err}");
    assert!(
        err.contains("would delete 3 dead letter(s); add --yes"),
        "{err}"
    );
    let (status, out) = cli(&stack, &["dlq", "purge", "--code", "no_such_code", "--yes"]).await;
    assert_eq!(
        (status, out.trim()),
        (Some(0), "purged 0 dead letter(s): none matches")
    );
    let (status, out) = cli(
        &stack,
        &[
            "dlq",
            "purge",
            "--subject",
            "candlepipe.jobs.fill.binance",
            "--yes",
        ],
    )
    .await;
    assert_eq!((status, out.trim()), (Some(0), "purged 3 dead letter(s)"));
    let (_, out) = cli(&stack, &["dlq", "list", "--json"]).await;
    assert_eq!(seqs(&out), Vec::<u64>::new());
}

#[tokio::test]
async fn a_full_job_queue_answers_unavailable_and_keeps_what_it_holds() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_JOBS_MAX_PER_SUBJECT", 3);
    // A fill worker creates the streams, then goes: nothing takes jobs any more.
    drop(stack.worker(&["fill"]).await);
    let _ingest = stack.worker(&["ingest"]).await;
    let client = stack.client().await;
    let mut codes = Vec::new();
    for i in 0..6 {
        let r = json!({"exchange":"binance","symbol":format!("TEST{i}/USDT"),"interval":"1m","limit":5,"timeout_ms":700});
        codes.push(code(&get(&client, r).await).to_string());
    }
    assert_eq!(
        codes[..3],
        ["timeout", "timeout", "timeout"],
        "queued: {codes:?}"
    );
    assert_eq!(
        codes[3..],
        ["unavailable", "unavailable", "unavailable"],
        "refused: {codes:?}"
    );
    let js = async_nats::jetstream::new(client.clone());
    let mut jobs = js.get_stream("CANDLEPIPE_JOBS").await.unwrap();
    assert_eq!(jobs.info().await.unwrap().state.messages, 3);
    // A fill worker back: the queued jobs run.
    let _fill = stack.worker(&["fill"]).await;
    eventually(Duration::from_secs(10), "the queue to drain", || async {
        let mut s = js.get_stream("CANDLEPIPE_JOBS").await.ok()?;
        (s.info().await.ok()?.state.messages == 0).then_some(())
    })
    .await;
}
