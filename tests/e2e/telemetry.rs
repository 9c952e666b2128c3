//! Every worker's `/metrics` and `/health`.

use serde_json::json;

use crate::support::*;

/// The value of the sample whose line starts with `series` (name and labels, in order).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn two_workers_expose_moving_counters_and_health() {
    let mut stack = stack().await;
    let mut a = stack
        .worker_with(&["all"], &["--metrics-addr", "127.0.0.1:0"])
        .await;
    let mut b = stack
        .worker_with(&["all"], &["--metrics-addr", "127.0.0.1:0"])
        .await;
    let (url_a, url_b) = (a.metrics_url().await, b.metrics_url().await);
    let client = stack.client().await;

    for i in 0..20 {
        let r = json!({"exchange":"binance","symbol":format!("TEST{i}/USDT"),"interval":"1h","limit":5,"max_age_ms":600_000});
        assert_eq!(ok(&get(&client, r.clone()).await).len(), 5);
        assert_eq!(ok(&get(&client, r).await).len(), 5);
    }
    assert_eq!(
        code(&get(&client, req("binance", "BTC.USDT", "1m", 5)).await),
        "invalid_symbol"
    );

    let texts = [scrape(&url_a).await, scrape(&url_b).await];
    let sum = |series: &str| texts.iter().map(|t| sample(t, series)).sum::<f64>();
    let requests = "candlepipe_requests_total{";
    assert_eq!(sum(requests), 41.0, "{}", texts[0]);
    assert_eq!(sum(r#"candlepipe_requests_total{source="exchange""#), 20.0);
    assert_eq!(
        sum(r#"candlepipe_requests_total{source="none",stale="false",code="invalid_symbol"}"#),
        1.0
    );
    // 20 candle requests and one load of Binance's market list (one worker loads it for both).
    assert_eq!(
        sum(r#"candlepipe_exchange_requests_total{exchange="binance",outcome="ok"}"#),
        21.0
    );
    assert_eq!(sum(r#"candlepipe_jobs_total{disposition="ack"}"#), 20.0);
    assert_eq!(
        sum(r#"candlepipe_request_duration_seconds_count{source="exchange"}"#),
        20.0
    );
    for t in &texts {
        assert!(
            sample(t, requests) > 0.0,
            "both workers took requests (queue group): {t}"
        );
        assert!(
            t.contains(r#"candlepipe_breaker_state{exchange="binance"} 0"#)
                || !t.contains("candlepipe_breaker_state")
        );
    }

    let health = reqwest::get(format!("{url_a}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    stack.redis.stop();
    let health = reqwest::get(format!("{url_b}/health")).await.unwrap();
    assert_eq!(health.status(), 503);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body, json!({"nats": "ok", "redis": "down"}));
}

#[tokio::test]
async fn stats_add_up_across_the_cluster() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_STATS_FLUSH_MS", "100");
    let _a = stack.worker(&["all"]).await;
    let _b = stack.worker(&["all"]).await;
    let client = stack.client().await;
    for i in 0..10 {
        let r = json!({"exchange":"binance","symbol":format!("TEST{i}/USDT"),"interval":"1h","limit":5,"max_age_ms":600_000});
        assert_eq!(source(&get(&client, r.clone()).await), "exchange");
        assert_ne!(source(&get(&client, r).await), "exchange");
    }
    assert_eq!(
        code(&get(&client, req("ftx", "BTC/USDT", "1m", 5)).await),
        "unknown_exchange"
    );

    let stats = eventually(
        std::time::Duration::from_secs(10),
        "the counts to reach Redis",
        || async {
            let (status, out) = cli(&stack, &["stats", "--json"]).await;
            assert_eq!(status, Some(0), "{out}");
            let s: serde_json::Value = serde_json::from_str(&out).expect("json");
            let r = &s["requests"];
            let hits = r["l1"].as_u64()? + r["redis"].as_u64()?;
            // Each worker adds its counts on its own schedule: wait for all of them.
            (r["error"] == 1 && r["exchange"] == 10 && hits == 10).then_some(s)
        },
    )
    .await;
    let r = &stats["requests"];
    assert_eq!(
        r["l1"].as_u64().unwrap() + r["redis"].as_u64().unwrap(),
        10,
        "{stats}"
    );
    assert_eq!(stats["hit_ratio"], 0.5);
    // 10 candle requests and one load of the market list, for the whole cluster.
    assert_eq!(stats["exchange_calls"]["binance"], 11);
    assert_eq!(stats["dlq_depth"], 0);
    let (_, table) = cli(&stack, &["stats"]).await;
    assert!(table.contains("cache hit ratio   50.0%"), "{table}");
}
