//! Trust boundaries (issue #22): no producer can steer where a worker publishes.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;

use crate::support::*;

/// Subjects a producer might name as its reply subject to make a worker publish there.
const INJECTED: [&str; 6] = [
    "candlepipe.jobs.fill.binance",
    "candlepipe.jobs.analyze",
    "candlepipe.control.llm.route",
    "candlepipe.candles.ready.binance.BTC-USDT.1m",
    "orders.new",
    "_INBOX_other.x",
];

/// Messages ever published to the jobs stream (acked jobs leave it).
async fn jobs_in_stream(js: &async_nats::jetstream::Context) -> u64 {
    js.get_stream("CANDLEPIPE_JOBS")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .last_sequence
}

#[tokio::test]
async fn workers_answer_only_on_inboxes() {
    let stack = stack().await;
    let mut worker = stack
        .worker_with(&["all"], &["--metrics-addr", "127.0.0.1:0"])
        .await;
    let metrics = worker.metrics_url().await;
    let client = stack.client().await;
    let js = async_nats::jetstream::new(client.clone());
    let mut seen = Vec::new();
    for subject in INJECTED {
        seen.push(client.subscribe(subject).await.unwrap());
    }
    client.flush().await.unwrap();
    let jobs_before = jobs_in_stream(&js).await;

    let valid = |subject: &str| -> Bytes {
        let body = match subject {
            "candlepipe.analysis.run" => {
                json!({"exchange":"binance","symbols":["BTC/USDT"],"interval":"1h","lookback":60})
            }
            "candlepipe.candles.get" => {
                json!({"exchange":"binance","symbol":"ETH/USDT","interval":"1m","limit":3})
            }
            _ => json!({"exchange":"binance","symbol":"ETH/USDT","interval":"1m"}),
        };
        Bytes::from(body.to_string())
    };
    let requests = [
        "candlepipe.candles.get",
        "candlepipe.candles.watch",
        "candlepipe.candles.unwatch",
        "candlepipe.analysis.run",
    ];
    let mut attempts = 0;
    for request in requests {
        for reply in INJECTED {
            for body in [valid(request), Bytes::from_static(b"{oops")] {
                client
                    .publish_with_reply(request, reply.to_string(), body)
                    .await
                    .unwrap();
                attempts += 1;
            }
        }
    }
    // The async form: a job whose `Candlepipe-Reply` is not an inbox.
    for (i, reply) in INJECTED.iter().enumerate() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Candlepipe-Reply", *reply);
        headers.insert("Nats-Msg-Id", format!("injected-{i}").as_str());
        js.publish_with_headers(
            "candlepipe.jobs.analyze",
            headers,
            valid("candlepipe.analysis.run"),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    client.flush().await.unwrap();

    // Every refusal is counted, by reason.
    let refused = eventually(Duration::from_secs(20), "every refusal counted", || async {
        let text = reqwest::get(format!("{metrics}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let n: f64 = text
            .lines()
            .filter(|l| l.starts_with("candlepipe_refused_replies_total{reason=\"not_inbox\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (n as usize >= attempts + INJECTED.len()).then_some(n)
    })
    .await;
    assert_eq!(refused as usize, attempts + INJECTED.len());
    for mut sub in seen {
        // Our own injected jobs pass `candlepipe.jobs.analyze`; nothing else may.
        while let Ok(got) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
            let ours = got
                .as_ref()
                .and_then(|m| m.headers.as_ref())
                .is_some_and(|h| {
                    h.get("Nats-Msg-Id")
                        .is_some_and(|id| id.as_str().starts_with("injected-"))
                });
            assert!(ours, "a worker published on an injected subject: {got:?}");
        }
    }
    // The injected jobs are in the stream (producers may queue analyses); nothing else is:
    // no reply became a job, no request queued a fill for a reply it would not get.
    assert_eq!(
        jobs_in_stream(&js).await,
        jobs_before + INJECTED.len() as u64
    );
    // An inbox is still answered.
    let reply = get(&client, req("binance", "BTC/USDT", "1m", 2)).await;
    assert_eq!(ok(&reply).len(), 2);
    // Each injected job was refused as a bad request, kept under its id.
    let (_, dlq) = cli(&stack, &["dlq", "list", "--json"]).await;
    assert!(dlq.contains("not an inbox"), "{dlq}");
}

#[tokio::test]
async fn two_tenants_cannot_read_each_others_replies() {
    let (mut stack, port) = stack_on_nats_config(
        "tenants.conf",
        &[
            ("CANDLEPIPE_NATS_DESK1_PASSWORD", "d1-pass"),
            ("CANDLEPIPE_NATS_DESK2_PASSWORD", "d2-pass"),
            ("CANDLEPIPE_NATS_OPERATOR_PASSWORD", "o-pass"),
        ],
    )
    .await;
    stack.set("CANDLEPIPE_REPLY_PREFIXES", "_INBOX_desk1.,_INBOX_desk2.");
    let _worker = stack.worker(&["all"]).await;
    let url = format!("nats://127.0.0.1:{port}");
    // Desk 1 as the client crate connects a tenant; desk 2 with its server events watched.
    let desk1 = candlepipe_client::Client::connect_with(
        &url,
        async_nats::ConnectOptions::with_user_and_password("desk1".into(), "d1-pass".into())
            .custom_inbox_prefix("_INBOX_desk1"),
    )
    .await
    .unwrap();
    let (desk2, mut desk2_events) = connect_watching(
        url.clone(),
        async_nats::ConnectOptions::with_user_and_password("desk2".into(), "d2-pass".into())
            .custom_inbox_prefix("_INBOX_desk2"),
    )
    .await;
    let desk2 = candlepipe_client::Client::new(desk2);
    // Each desk is answered on its own inboxes.
    let req = candlepipe_core::CandlesRequest::latest("binance", "BTC/USDT", "1h", 3);
    assert_eq!(desk1.candles(&req).await.unwrap().candles.len(), 3);
    assert_eq!(desk2.candles(&req).await.unwrap().candles.len(), 3);
    // Neither can read the other's replies, nor the default inboxes.
    for subject in ["_INBOX_desk1.>", "_INBOX.>", ">"] {
        let _sub = desk2.nats().subscribe(subject).await.unwrap();
        desk2.nats().flush().await.unwrap();
        let refused = refusal(&mut desk2_events).await;
        assert!(refused.contains(subject), "{refused}");
    }
    // The CLI takes the desk's inbox prefix.
    let out = tokio::process::Command::new(BIN)
        .args(["get", "binance", "ETH/USDT", "1h", "--limit", "2", "--json"])
        .env_clear()
        .envs(stack.worker_env())
        .env(
            "CANDLEPIPE_NATS_URL",
            format!("nats://desk1:d1-pass@127.0.0.1:{port}"),
        )
        .env("CANDLEPIPE_NATS_INBOX_PREFIX", "_INBOX_desk1")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        reply["candles"].as_array().map(Vec::len),
        Some(2),
        "{reply}"
    );
}
