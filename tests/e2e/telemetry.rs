//! Every worker's `/metrics` and `/health`.

use serde_json::json;

use crate::support::*;

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
    assert_eq!(
        sum(r#"candlepipe_jobs_total{disposition="ack",lane="live"}"#),
        20.0
    );
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
    // A 4xx from the exchange ends the job at once: a failure, not refused input.
    stack
        .sim
        .set_faults(
            "binance",
            json!({"fault":{"mode":"status","status":400,"symbol":"TEST10USDT"}}),
        )
        .await;
    assert_eq!(
        code(&get(&client, req("binance", "TEST10/USDT", "1h", 5)).await),
        "upstream_error"
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
            let calls = &s["exchange_calls"]["binance"];
            (r["error"] == 2 && r["exchange"] == 10 && hits == 10 && calls == 12).then_some(s)
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
    assert_eq!((&r["refused"], &r["failed"]), (&json!(1), &json!(1)));
    assert_eq!(
        stats["errors_by_code"],
        json!({"unknown_exchange": 1, "upstream_error": 1})
    );
    // 11 candle requests and one load of the market list, for the whole cluster.
    assert_eq!(stats["exchange_calls"]["binance"], 12);
    assert_eq!(stats["dlq_depth"], 0);
    let (_, table) = cli(&stack, &["stats"]).await;
    assert!(table.contains("cache hit ratio   50.0%"), "{table}");
    assert!(
        table.contains(
            "stale / errors    0 / 2  (refused: unknown_exchange 1; failed: upstream_error 1)"
        ),
        "{table}"
    );
}

/// A producer's W3C `traceparent` is followed: the cold request's trace id is on every log
/// line of its work in the ingest and the fill worker (the exchange call among them), and
/// on the fill job's and the `ready` event's headers, as a span of the same trace.
#[tokio::test]
async fn a_cold_requests_trace_is_in_the_ingest_and_fill_logs_and_on_its_job() {
    use futures::StreamExt;
    let stack = stack().await;
    let ingest = stack.worker(&["ingest"]).await;
    let fill = stack.worker(&["fill"]).await;
    let client = stack.client().await;
    let mut jobs = client.subscribe("candlepipe.jobs.fill.>").await.unwrap();
    let mut ready = client
        .subscribe("candlepipe.candles.ready.>")
        .await
        .unwrap();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{trace}-00f067aa0ba902b7-01").as_str(),
    );
    let end = closed_end(3_600_000);
    let body =
        json!({"exchange":"binance","symbol":"DOT/USDT","interval":"1h","limit":5,"end":end});
    let reply = get_with_headers(&client, headers, body).await;
    assert_eq!(ok(&reply).len(), 5, "{reply}");

    let traceparent = |msg: &async_nats::Message| {
        msg.headers
            .as_ref()
            .and_then(|h| h.get("traceparent"))
            .map(|v| v.as_str().to_string())
            .unwrap_or_default()
    };
    let within = std::time::Duration::from_secs(5);
    let job = tokio::time::timeout(within, jobs.next())
        .await
        .unwrap()
        .unwrap();
    let on_job = traceparent(&job);
    assert!(
        on_job.starts_with(&format!("00-{trace}-")),
        "job: {on_job:?}"
    );
    assert!(
        !on_job.contains("00f067aa0ba902b7"),
        "a span of the ingest's own"
    );
    let event = tokio::time::timeout(within, ready.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        traceparent(&event).contains(trace),
        "ready: {:?}",
        traceparent(&event)
    );

    let lines_with = |w: &candlepipe_testkit::Worker| -> Vec<String> {
        w.child
            .output()
            .into_iter()
            .filter(|l| l.contains(trace))
            .collect()
    };
    let ingest_lines = lines_with(&ingest);
    assert!(
        ingest_lines.iter().any(|l| l.contains("fill job queued")),
        "ingest: {ingest_lines:?}"
    );
    let fill_lines = lines_with(&fill);
    for what in [":exchange_call{", "exchange request", "fetched"] {
        assert!(
            fill_lines.iter().any(|l| l.contains(what)),
            "fill logs {what:?} with the trace id: {fill_lines:?}"
        );
    }
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the spans of a traced request are exported over
/// OTLP/HTTP: the collector (a stub here) receives the producer's trace id, from the ingest
/// and from the fill worker.
#[tokio::test]
async fn spans_are_exported_over_otlp_when_an_endpoint_is_set() {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = collector.local_addr().unwrap().port();
    // (request line, body) of each request the collector got.
    type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let received: Received = Arc::default();
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = collector.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                loop {
                    // One request per connection read whole: headers, then Content-Length.
                    let Ok(n) = conn.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    buf.drain(..end + 4 + len);
                    store
                        .lock()
                        .unwrap()
                        .push((head.lines().next().unwrap_or("").to_string(), body));
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    let mut stack = stack().await;
    stack.set(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    );
    stack.set("OTEL_BSP_SCHEDULE_DELAY", "100");
    let _ingest = stack.worker(&["ingest"]).await;
    let _fill = stack.worker(&["fill"]).await;
    let client = stack.client().await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{trace}-b7ad6b7169203331-01").as_str(),
    );
    let body = json!({"exchange":"binance","symbol":"AVAX/USDT","interval":"1h","limit":3,"end":closed_end(3_600_000)});
    let reply = get_with_headers(&client, headers, body).await;
    assert_eq!(ok(&reply).len(), 3, "{reply}");
    let raw_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let exports = eventually(
        std::time::Duration::from_secs(10),
        "spans of the trace from two processes",
        || {
            let received = received.clone();
            let raw_id = raw_id.clone();
            async move {
                let got = received.lock().unwrap().clone();
                let with_trace = got
                    .iter()
                    .filter(|(line, body)| {
                        line.starts_with("POST /v1/traces")
                            && body.windows(16).any(|w| w == raw_id.as_slice())
                    })
                    .count();
                (with_trace >= 2).then_some(got)
            }
        },
    )
    .await;
    assert!(
        exports
            .iter()
            .any(|(_, b)| b.windows(7).any(|w| w == b"request"))
            && exports
                .iter()
                .any(|(_, b)| b.windows(4).any(|w| w == b"fill")),
        "an ingest `request` span and a `fill` span"
    );
}
