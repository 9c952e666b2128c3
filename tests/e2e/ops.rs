//! Operations files: the Prometheus rules are valid and use only metrics a worker exports.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ops/prometheus/rules.yml");
const RULES_TEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ops/prometheus/rules_test.yml");
const PROMETHEUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ops/prometheus/prometheus.yml");
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/ops/grafana/dashboards/candlepipe.json"
);

/// The PromQL of every panel of the Grafana dashboard.
fn dashboard_queries() -> Vec<String> {
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).expect("dashboard JSON");
    dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("expr").to_string())
        .collect()
}

/// `candlepipe_*` metric names in a PromQL text (recording-rule names use `:` and are skipped).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("candlepipe_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let preceded =
            start > 0 && (bytes[start - 1] == b':' || bytes[start - 1].is_ascii_alphanumeric());
        let recording_rule = end < bytes.len() && bytes[end] == b':';
        if !(preceded || recording_rule) {
            let name = &text[start..end];
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
            names.insert(base.to_string());
        }
        i = end;
    }
    names
}

#[tokio::test]
async fn prometheus_rules_and_dashboard_are_valid_and_every_metric_they_use_is_exported() {
    let out = std::process::Command::new("promtool")
        .args(["check", "rules", RULES])
        .output()
        .expect("promtool is missing: apt-get install -y prometheus (scripts/test.sh does)");
    let ok = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    ok(&out);
    // Each alert fires on what should raise it and stays quiet otherwise.
    let out = std::process::Command::new("promtool")
        .args(["test", "rules", RULES_TEST])
        .output()
        .unwrap();
    ok(&out);
    // The scrape config, with its rule file pointed at the repository's copy.
    let config = std::fs::read_to_string(PROMETHEUS)
        .unwrap()
        .replace("/etc/prometheus/rules.yml", RULES);
    let tmp =
        std::env::temp_dir().join(format!("candlepipe-prometheus-{}.yml", std::process::id()));
    std::fs::write(&tmp, config).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "config"])
        .arg(&tmp)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&tmp);
    ok(&out);
    // Every recording rule the dashboard uses is defined.
    let rules = std::fs::read_to_string(RULES).unwrap();
    for q in dashboard_queries() {
        for word in q.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
            if word.starts_with("candlepipe:") {
                assert!(
                    rules.contains(&format!("record: {word}")),
                    "dashboard uses undefined {word}"
                );
            }
        }
    }

    let mut stack = stack().await;
    stack.set("CANDLEPIPE_RETRY_BASE_MS", "10");
    stack.set("CANDLEPIPE_RETRY_MAX_MS", "20");
    let sim = stack.sim.url.clone();
    stack.set("CANDLEPIPE_LLM_URL", sim);
    stack.set("CANDLEPIPE_LLM_MODEL", "sim-small");
    let mut worker = stack
        .worker_with(&["all"], &["--metrics-addr", "127.0.0.1:0"])
        .await;
    let url = worker.metrics_url().await;
    // Before any traffic, every metric the rules read is there (at zero).
    let scrape = || async {
        reqwest::get(format!("{url}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let at_start = scrape().await;
    let for_rules = metric_names(&std::fs::read_to_string(RULES).unwrap());
    let absent: Vec<&String> = for_rules
        .iter()
        .filter(|m| !at_start.contains(&format!("# TYPE {m} ")))
        .collect();
    assert!(absent.is_empty(), "not exported at start: {absent:?}");
    let client = stack.client().await;
    // Traffic that touches every metric: a miss, a hit, an error, a dead letter.
    let r = json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1h","limit":5,"max_age_ms":600_000});
    get(&client, r.clone()).await;
    get(&client, r).await;
    get(&client, req("ftx", "BTC/USDT", "1h", 5)).await;
    stack
        .sim
        .set_faults(
            "binance",
            json!({"fault": {"mode": "status", "status": 500, "symbol": "ETHUSDT"}}),
        )
        .await;
    assert_eq!(
        code(&get(&client, req("binance", "ETH/USDT", "1h", 5)).await),
        "upstream_error"
    );
    // An analysis with LLM commentary, for the LLM metrics.
    let reply = analyze(
        &client,
        json!({"exchange":"binance","symbols":["BTC/USDT"],"llm":true}),
    )
    .await;
    assert!(
        reply["results"]["BTC/USDT"]["commentary"].is_string(),
        "{reply}"
    );

    let mut wanted = metric_names(&std::fs::read_to_string(RULES).unwrap());
    wanted.extend(dashboard_queries().iter().flat_map(|q| metric_names(q)));
    assert!(wanted.len() >= 5, "{wanted:?}");
    let missing = eventually(
        Duration::from_secs(15),
        "every metric of the rules",
        || async {
            let text = reqwest::get(format!("{url}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let missing: Vec<&String> = wanted
                .iter()
                .filter(|m| !text.contains(&format!("# TYPE {m} ")))
                .collect();
            missing.is_empty().then_some(missing.len())
        },
    )
    .await;
    assert_eq!(missing, 0);
}
