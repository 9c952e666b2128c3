//! `candlepipe export`: a range of closed candles through the cache to CSV and Parquet, with
//! the exchange's exact decimals; the Parquet file read back by pyarrow.

use serde_json::{json, Value};

use crate::support::*;

const H: i64 = 3_600_000;

/// What `get` answers for the 48 hours ending at `end`, as strings.
/// `candlepipe export binance SOL/USDT 1h --since SINCE --until END --format F --out OUT`.
async fn export(
    stack: &Stack,
    since: &str,
    end: i64,
    format: &str,
    out: &std::path::Path,
) -> (Option<i32>, String) {
    let end = end.to_string();
    let out = out.to_str().unwrap();
    let args = [
        "export", "binance", "SOL/USDT", "1h", "--since", since, "--until", &end, "--format",
        format, "--out", out,
    ];
    cli(stack, &args).await
}

async fn from_get(stack: &Stack, symbol: &str, end: i64) -> Vec<[String; 7]> {
    let client = stack.client().await;
    let reply = get(
        &client,
        json!({"exchange":"binance","symbol":symbol,"interval":"1h","limit":48,"end":end}),
    )
    .await;
    ok(&reply)
        .iter()
        .map(|c| {
            [
                c["t"].as_i64().unwrap().to_string(),
                c["o"].as_str().unwrap().into(),
                c["h"].as_str().unwrap().into(),
                c["l"].as_str().unwrap().into(),
                c["c"].as_str().unwrap().into(),
                c["v"].as_str().unwrap().into(),
                c["closed"].as_bool().unwrap().to_string(),
            ]
        })
        .collect()
}

#[tokio::test]
async fn csv_and_parquet_exports_equal_what_get_answers() {
    let stack = stack().await;
    let _worker = stack.worker(&["ingest", "fill"]).await;
    let end = closed_end(H);
    let since = (end - 47 * H).to_string();
    let dir = tempfile::tempdir().unwrap();

    let csv = dir.path().join("sol.csv");
    let (status, out) = export(&stack, &since, end, "csv", &csv).await;
    assert_eq!(status, Some(0), "{out}");
    assert!(out.contains("exported 48 candles"), "{out}");
    let calls = stack.sim.requests("binance").await;
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("open_time_ms,open_time,open,high,low,close,volume,closed")
    );
    let rows: Vec<[String; 7]> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            [f[0], f[2], f[3], f[4], f[5], f[6], f[7]].map(String::from)
        })
        .collect();
    // Through the cache: the same window from `get` is a hit, with the same digits.
    assert_eq!(rows, from_get(&stack, "SOL/USDT", end).await);
    assert_eq!(
        stack.sim.requests("binance").await,
        calls,
        "get was served from cache"
    );

    let parquet = dir.path().join("sol.parquet");
    let (status, out) = export(&stack, &since, end, "parquet", &parquet).await;
    assert_eq!(status, Some(0), "{out}");
    assert_eq!(
        stack.sim.requests("binance").await,
        calls,
        "all from the cache"
    );
    let read = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
cols = t.to_pydict()
ms = [int(x.timestamp() * 1000) for x in cols["open_time"]]
print(json.dumps({"type": str(t.schema.field("open_time").type), "rows": [
    [str(ms[i]), cols["open"][i], cols["high"][i], cols["low"][i], cols["close"][i],
     cols["volume"][i], str(cols["closed"][i]).lower()] for i in range(t.num_rows)]}))
"#;
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args(["-c", read, parquet.to_str().unwrap()]);
    // scripts/test.sh installs pyarrow under .tools/python and says where.
    if let Ok(path) = std::env::var("CANDLEPIPE_PYTHONPATH") {
        cmd.env("PYTHONPATH", path);
    }
    let py = cmd.output().await.unwrap();
    assert!(
        py.status.success(),
        "pyarrow reads it (scripts/test.sh installs pyarrow): {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let back: Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(back["type"], "timestamp[ms, tz=UTC]");
    let rows: Vec<[String; 7]> = serde_json::from_value(back["rows"].clone()).unwrap();
    assert_eq!(rows, from_get(&stack, "SOL/USDT", end).await);
}

#[tokio::test]
async fn an_export_never_writes_a_short_file() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_HISTORY_CAP", "1000");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("long.csv");
    let m = 60_000;
    let end = closed_end(m);
    // `export EXCHANGE SYMBOL 1m` of the `n` minutes up to `end`: it fails, and says what.
    let refused = |exchange: &'static str, symbol: &'static str, n: i64| {
        let (since, until) = ((end - (n - 1) * m).to_string(), end.to_string());
        let (stack, out) = (&stack, out.to_str().unwrap().to_string());
        async move {
            let args = [
                "export", exchange, symbol, "1m", "--since", &since, "--until", &until, "--format",
                "csv", "--out", &out,
            ];
            let (status, _, text) = cli_output(stack, &args).await;
            assert_ne!(status, Some(0), "{text}");
            text
        }
    };
    // Longer than the store keeps: refused up front, naming the cap; no exchange call.
    let text = refused("binance", "ETH/USDT", 1_500).await;
    assert!(
        text.contains("1500 candles") && text.contains("CANDLEPIPE_HISTORY_CAP=1000"),
        "{text}"
    );
    assert!(!out.exists());
    assert_eq!(stack.sim.stats().await["binance"]["requests"], 0);
}
