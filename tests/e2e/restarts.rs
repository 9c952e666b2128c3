//! Processes and servers dying under load: nothing is lost, everything recovers by itself.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

async fn jobs_left(client: &async_nats::Client) -> u64 {
    let js = async_nats::jetstream::new(client.clone());
    let stream = js.get_stream("CANDLEPIPE_JOBS").await.expect("jobs stream");
    stream.get_info().await.expect("stream info").state.messages
}

#[tokio::test]
async fn killing_a_fill_worker_mid_job_loses_nothing() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_ACK_WAIT_MS", "2000");
    stack.set("CANDLEPIPE_FILL_WAIT_MS", "20000");
    stack
        .sim
        .set_faults("binance", json!({"latency_ms": 1000}))
        .await;
    let doomed = stack.worker(&["fill"]).await;
    let _survivor = stack.worker(&["fill"]).await;
    let _ingest = stack.worker(&["ingest"]).await;
    let client = stack.client().await;

    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let client = client.clone();
        set.spawn(async move {
            let body =
                serde_json::to_vec(&req("binance", &format!("TEST{i}/USDT"), "5m", 10)).unwrap();
            request_within(&client, body, Duration::from_secs(30)).await
        });
    }
    // Both workers are now waiting on the exchange with jobs in hand.
    tokio::time::sleep(Duration::from_millis(400)).await;
    doomed.child.signal("KILL");
    let mut answered = 0;
    while let Some(reply) = set.join_next().await {
        assert_eq!(ok(&reply.expect("task")).len(), 10);
        answered += 1;
    }
    assert_eq!(answered, 20);
    assert!(
        stack.sim.requests("binance").await > 20,
        "the killed worker had jobs in flight, which were done again"
    );
    eventually(Duration::from_secs(10), "an empty job stream", || async {
        (jobs_left(&client).await == 0).then_some(())
    })
    .await;
}

/// Asks once with a deadline; returns the reply, or "no_reply" if the client got none.
async fn ask(client: &async_nats::Client, request: &Value) -> Value {
    let req = async_nats::Request::new()
        .payload(serde_json::to_vec(request).unwrap().into())
        .timeout(Some(Duration::from_secs(10)));
    match client.send_request("candlepipe.candles.get", req).await {
        Ok(msg) => serde_json::from_slice(&msg.payload)
            .unwrap_or(json!({"ok": false, "error": {"code": "undecodable"}})),
        Err(e) => json!({"ok": false, "error": {"code": "no_reply", "message": e.to_string()}}),
    }
}

#[tokio::test]
async fn workers_ride_out_redis_and_nats_restarts() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_FILL_WAIT_MS", "3000");
    let mut worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let warm = json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1d","limit":10,"max_age_ms":3_600_000});
    assert_eq!(ok(&ask(&client, &warm).await).len(), 10);

    // Redis down: warm series from L1, cold ones a typed error, each within the timeout.
    stack.redis.stop();
    for i in 0..5 {
        let started = std::time::Instant::now();
        assert_eq!(ok(&ask(&client, &warm).await).len(), 10);
        let cold = ask(&client, &req("binance", &format!("TEST{i}/USDT"), "1m", 5)).await;
        assert_eq!(code(&cold), "unavailable", "{cold}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "answered in {:?}",
            started.elapsed()
        );
    }
    stack.redis.restart();
    let recovered = eventually(
        Duration::from_secs(20),
        "a cold fill after Redis came back",
        || async {
            let r = ask(&client, &req("binance", "ETH/USDT", "1m", 5)).await;
            (r["ok"] == true).then_some(r)
        },
    )
    .await;
    assert_eq!(ok(&recovered).len(), 5);

    // NATS down and back (same port, same JetStream store): everyone reconnects.
    stack.nats.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.nats.restart();
    let recovered = eventually(
        Duration::from_secs(30),
        "a cold fill after NATS came back",
        || async {
            let r = ask(&client, &req("kraken", "ETH/USD", "1m", 5)).await;
            (r["ok"] == true).then_some(r)
        },
    )
    .await;
    assert_eq!(ok(&recovered).len(), 5);
    assert_eq!(ok(&ask(&client, &warm).await).len(), 10);

    worker.child.signal("TERM");
    assert_eq!(
        worker.child.wait_exit(Duration::from_secs(15)).await,
        Some(0),
        "no panic, clean exit"
    );
    assert!(!worker.child.output().iter().any(|l| l.contains("panicked")));
}

#[tokio::test]
async fn sigterm_drains_a_fill_worker_it_finishes_its_jobs_and_exits_0() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_FILL_WAIT_MS", "20000");
    stack
        .sim
        .set_faults("binance", json!({"latency_ms": 1000}))
        .await;
    let mut fill = stack.worker(&["fill"]).await;
    let _ingest = stack.worker(&["ingest"]).await;
    let client = stack.client().await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..5 {
        let client = client.clone();
        set.spawn(
            async move { get(&client, req("binance", &format!("TEST{i}/USDT"), "1h", 5)).await },
        );
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    fill.child.signal("TERM");
    while let Some(reply) = set.join_next().await {
        assert_eq!(
            ok(&reply.expect("task")).len(),
            5,
            "jobs in hand are finished, not dropped"
        );
    }
    assert_eq!(fill.child.wait_exit(Duration::from_secs(15)).await, Some(0));
    assert_eq!(stack.sim.requests("binance").await, 5, "each job done once");
    assert_eq!(jobs_left(&client).await, 0);
}

#[tokio::test]
async fn a_job_longer_than_ack_wait_stays_with_its_worker() {
    let mut stack = stack().await;
    // The exchange takes 2.5 s; JetStream would redeliver after 1 s without progress acks.
    stack.set("CANDLEPIPE_ACK_WAIT_MS", "1000");
    stack.set("CANDLEPIPE_FILL_WAIT_MS", "10000");
    stack
        .sim
        .set_faults("binance", json!({"latency_ms": 2500}))
        .await;
    let _fills = [stack.worker(&["fill"]).await, stack.worker(&["fill"]).await];
    let _ingest = stack.worker(&["ingest"]).await;
    let client = stack.client().await;
    assert_eq!(
        ok(&get(&client, req("binance", "SOL/USDT", "4h", 5)).await).len(),
        5
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        stack.sim.requests("binance").await,
        1,
        "in-progress acks kept the job from being redelivered"
    );
}

#[tokio::test]
async fn a_worker_killed_on_a_jobs_last_delivery_leaves_it_in_the_dlq() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_MAX_DELIVER", 1);
    stack.set("CANDLEPIPE_ACK_WAIT_MS", 1_500);
    stack.set("CANDLEPIPE_STATS_FLUSH_MS", 100);
    // The exchange never answers for this symbol: the job hangs in its only delivery.
    stack
        .sim
        .set_faults(
            "binance",
            json!({"fault": {"mode": "timeout", "symbol": "LINKUSDT"}}),
        )
        .await;
    let mut doomed = stack.worker(&["fill"]).await;
    let _ingest = stack.worker(&["ingest"]).await;
    let client = stack.client().await;
    let asking = {
        let client = client.clone();
        tokio::spawn(async move {
            get(&client, json!({"exchange":"binance","symbol":"LINK/USDT","interval":"1m","limit":5,"timeout_ms":2_000})).await
        })
    };
    eventually(
        Duration::from_secs(10),
        "the job to reach the exchange",
        || async { (stack.sim.requests("binance").await == 1).then_some(()) },
    )
    .await;
    doomed.child.signal("KILL");
    doomed.child.wait_exit(Duration::from_secs(5)).await;
    let _next = stack.worker(&["fill"]).await;
    assert_eq!(code(&asking.await.unwrap()), "timeout");

    let letters: Value = eventually(Duration::from_secs(15), "the job in the DLQ", || async {
        let (_, out) = cli(&stack, &["dlq", "list", "--json"]).await;
        let v: Value = serde_json::from_str(&out).ok()?;
        (v.as_array()?.len() == 1).then_some(v)
    })
    .await;
    let l = &letters[0];
    assert_eq!(l["subject"], "candlepipe.jobs.fill.binance", "{l}");
    assert_eq!(l["code"], "unavailable", "{l}");
    assert_eq!(l["deliveries"], 1, "{l}");
    assert_eq!(jobs_left(&client).await, 0, "taken out of the jobs stream");
    let stats = eventually(Duration::from_secs(10), "the count in stats", || async {
        let (_, out) = cli(&stack, &["stats", "--json"]).await;
        let v: Value = serde_json::from_str(&out).ok()?;
        (v["dead_letters_total"] == 1).then_some(v)
    })
    .await;
    assert_eq!(stats["dlq_depth"], 1, "{stats}");
}

#[tokio::test]
async fn a_crashed_fill_worker_costs_its_producers_seconds_not_their_deadline() {
    let stack = stack().await;
    // Each exchange answer takes a second, so every worker holds jobs when one is killed.
    stack
        .sim
        .set_faults("binance", json!({"latency_ms": 1000}))
        .await;
    let doomed = stack.worker(&["fill"]).await;
    let _others = [stack.worker(&["fill"]).await, stack.worker(&["fill"]).await];
    let _ingest = stack.worker(&["ingest"]).await;
    let client = stack.client().await;
    // Producers that wait the default time (8 s).
    let mut set = tokio::task::JoinSet::new();
    for i in 0..30 {
        let client = client.clone();
        set.spawn(
            async move { get(&client, req("binance", &format!("TEST{i}/USDT"), "15m", 5)).await },
        );
    }
    eventually(
        Duration::from_secs(5),
        "jobs in every worker's hands",
        || async { (stack.sim.requests("binance").await >= 20).then_some(()) },
    )
    .await;
    doomed.child.signal("KILL");
    while let Some(reply) = set.join_next().await {
        let reply = reply.expect("task");
        assert_eq!(ok(&reply).len(), 5, "{reply}");
    }
    assert!(
        stack.sim.requests("binance").await > 30,
        "the killed worker's jobs were done again by the others"
    );
}

#[tokio::test]
async fn a_long_job_keeps_its_series_locked_and_the_next_one_waits_for_its_ready() {
    let mut stack = stack().await;
    // The exchange takes 2.5 s; the lock would lapse after 1 s unless renewed.
    stack.set("CANDLEPIPE_ACK_WAIT_MS", "1000");
    stack
        .sim
        .set_faults("binance", json!({"latency_ms": 2500}))
        .await;
    let _fills = [stack.worker(&["fill"]).await, stack.worker(&["fill"]).await];
    let _ingest = stack.worker(&["ingest"]).await;
    let client = stack.client().await;
    let wide = {
        let client = client.clone();
        tokio::spawn(async move { get(&client, req("binance", "ADA/USDT", "4h", 10)).await })
    };
    eventually(
        Duration::from_secs(5),
        "the first job at the exchange",
        || async { (stack.sim.requests("binance").await == 1).then_some(()) },
    )
    .await;
    // A narrower window of the same series: another job, for the other worker.
    let narrow = get(&client, req("binance", "ADA/USDT", "4h", 5)).await;
    assert_eq!(ok(&narrow).len(), 5, "{narrow}");
    assert_eq!(ok(&wide.await.unwrap()).len(), 10);
    assert_eq!(
        stack.sim.requests("binance").await,
        1,
        "the second job waited for the first one's data"
    );
}

#[tokio::test]
async fn jobs_waiting_for_a_free_slot_do_not_age_in_a_buffer() {
    let mut stack = stack().await;
    // Four jobs at a time per worker, each longer than the ack wait: a job pulled ahead of
    // a free slot would run out its ack wait unworked and be delivered again.
    stack.set("CANDLEPIPE_FILL_CONCURRENCY", 4);
    stack.set("CANDLEPIPE_ACK_WAIT_MS", 1_000);
    stack
        .sim
        .set_faults("binance", json!({"latency_ms": 1_500}))
        .await;
    let _fills = [stack.worker(&["fill"]).await, stack.worker(&["fill"]).await];
    let _ingest = stack.worker(&["ingest"]).await;
    let client = stack.client().await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..24 {
        let client = client.clone();
        set.spawn(async move {
            let r = json!({"exchange":"binance","symbol":format!("TEST{i}/USDT"),"interval":"1h","limit":5,"timeout_ms":20_000});
            get(&client, r).await
        });
    }
    while let Some(reply) = set.join_next().await {
        assert_eq!(ok(&reply.expect("task")).len(), 5);
    }
    let js = async_nats::jetstream::new(client.clone());
    let jobs = js.get_stream("CANDLEPIPE_JOBS").await.unwrap();
    let info = jobs.consumer_info("fill-binance").await.unwrap();
    assert_eq!(info.num_redelivered, 0, "{info:?}");
    assert_eq!(stack.sim.requests("binance").await, 24);
}
