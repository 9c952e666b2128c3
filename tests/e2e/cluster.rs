//! Beyond one machine: `nats/cluster.conf` on three nodes of a current nats-server (the
//! workers create R3 streams on it, and candles still flow after a node dies), and a Redis
//! Cluster of three masters holding everything candlepipe keeps in Redis.

use std::time::Duration;

use candlepipe_testkit::{current_nats_server, NatsCluster, RedisCluster};
use serde_json::{json, Value};

use crate::support::*;

const CONFIG: &str = include_str!("../../nats/cluster.conf");

/// A successful `candles.get` through any node, once the workers' subscriptions have
/// reached it across the routes (and, after a node dies, once they are back).
async fn get_through(client: &async_nats::Client, request: Value) -> Value {
    eventually(
        Duration::from_secs(20),
        "an answer through the cluster",
        || {
            let (client, request) = (client.clone(), request.clone());
            async move {
                let req = async_nats::Request::new()
                    .payload(serde_json::to_vec(&request).unwrap().into())
                    .timeout(Some(Duration::from_secs(10)));
                let msg = client
                    .send_request("candlepipe.candles.get", req)
                    .await
                    .ok()?;
                let reply: Value = serde_json::from_slice(&msg.payload).unwrap();
                (reply["ok"] == true).then_some(reply)
            }
        },
    )
    .await
}

#[tokio::test]
async fn the_cluster_config_runs_r3_streams_and_survives_a_node() {
    // Debian's 2.9.10 rejects the config (sync_interval needs 2.10+); the current one takes it.
    let check = std::process::Command::new(current_nats_server())
        .args([
            "-t",
            "-c",
            concat!(env!("CARGO_MANIFEST_DIR"), "/nats/cluster.conf"),
        ])
        .env("NATS_SERVER_NAME", "nats-1")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let mut cluster = NatsCluster::start(CONFIG).await;
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_STREAM_REPLICAS", 3);
    stack.set("CANDLEPIPE_NATS_URL", cluster.urls());
    let _ingest = stack.worker(&["ingest", "analyze"]).await;
    let _fill = stack.worker(&["fill"]).await;
    let client = async_nats::connect(cluster.url(2)).await.unwrap();

    let js = async_nats::jetstream::new(client.clone());
    for name in ["CANDLEPIPE_JOBS", "CANDLEPIPE_DLQ"] {
        let info = js
            .get_stream(name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone();
        assert_eq!(info.config.num_replicas, 3, "{name}");
        let c = info.cluster.expect("clustered stream");
        assert_eq!(c.replicas.len(), 2, "{name}: a leader and two replicas");
    }
    let r = json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":5});
    assert_eq!(source(&get_through(&client, r.clone()).await), "exchange");
    assert_eq!(ok(&get_through(&client, r).await).len(), 5);

    // One node down: the other two are a quorum; workers on it reconnect to the others.
    cluster.stop(0);
    let r = json!({"exchange":"binance","symbol":"ETH/USDT","interval":"1m","limit":5});
    let reply = get_through(&client, r).await;
    assert_eq!(source(&reply), "exchange");
    assert_eq!(ok(&reply).len(), 5);
}

#[tokio::test]
async fn a_redis_cluster_holds_series_stats_llm_spend_and_results() {
    let redis = RedisCluster::start();
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_REDIS_URL", redis.url());
    stack.set("CANDLEPIPE_STATS_FLUSH_MS", 200);
    let sim = stack.sim.url.clone();
    stack.set("CANDLEPIPE_LLM_URL", sim);
    stack.set("CANDLEPIPE_LLM_MODEL", "sim-small");
    let mut first = stack.worker(&["all"]).await;
    let client = stack.client().await;

    // Fresh for a minute: the later read must not depend on how long the first worker drains.
    let r = json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":5,"max_age_ms":60_000});
    assert_eq!(source(&get(&client, r.clone()).await), "exchange");
    let request =
        json!({"exchange":"kraken","symbols":["BTC/USD","ETH/USD"],"interval":"1h","llm":true});
    let reply = analyze(&client, request.clone()).await;
    assert_eq!(
        reply["results"].as_object().map(|r| r.len()),
        Some(2),
        "{reply}"
    );
    assert!(
        reply["results"]["ETH/USD"]["commentary"].is_string(),
        "{reply}"
    );
    assert!(reply["usage"]["cost_usd"].as_f64().unwrap() > 0.0);
    let again = analyze(&client, request).await;
    assert_eq!(
        again["results"]["ETH/USD"]["llm"]["cached"], true,
        "{again}"
    );

    // A fresh process (empty L1) finds the series in the cluster. The first one stops
    // gracefully, adding its last counts to the cluster totals.
    first.child.signal("TERM");
    assert_eq!(
        first.child.wait_exit(Duration::from_secs(20)).await,
        Some(0)
    );
    let _second = stack.worker(&["ingest"]).await;
    let reply = get(&client, r).await;
    assert_eq!(source(&reply), "redis", "{reply}");
    assert_eq!(ok(&reply).len(), 5);

    let stats = eventually(Duration::from_secs(10), "cluster totals", || async {
        let (_, out) = cli(&stack, &["stats", "--json"]).await;
        let v: Value = serde_json::from_str(&out).ok()?;
        (v["requests"]["redis"] == 1).then_some(v)
    })
    .await;
    // Candle requests, and each exchange's market list loaded once (Kraken's with its
    // Assets, for the gateway).
    assert_eq!(stats["exchange_calls"]["binance"], 1 + 1, "{stats}");
    assert_eq!(stats["exchange_calls"]["kraken"], 2 + 2, "{stats}");
    assert_eq!(stats["requests"]["exchange"], 3, "{stats}");
    assert_eq!(stats["llm"]["primary/sim-small"]["requests"], 2, "{stats}");
    assert!(
        stats["llm_spent_today_usd"].as_f64().unwrap() > 0.0,
        "{stats}"
    );

    // The keys are spread over the masters, as their slots say.
    let holding = redis
        .nodes
        .iter()
        .filter(|n| {
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &n.port.to_string(), "dbsize"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
                > 0
        })
        .count();
    assert!(holding >= 2, "keys on {holding} of 3 masters");
}
