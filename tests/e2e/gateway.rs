//! The gateway: the exchanges' own HTTP endpoints served from the cache. A client of the
//! exchange, pointed at candlepipe, gets exactly what the exchange (here the simulator)
//! would have given it.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

async fn body(url: &str) -> (u16, Vec<u8>) {
    let r = reqwest::get(url).await.expect("gateway answers");
    let status = r.status().as_u16();
    (status, r.bytes().await.expect("body").to_vec())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn binance_klines_are_the_exchanges_bytes() {
    let stack = stack().await;
    let mut worker = stack.worker(&["all"]).await;
    let gw = format!("{}/binance", worker.gateway_url().await);
    let h = 3_600_000;
    let end = closed_end(h);
    let start = end - 9 * h;

    // Closed windows: byte for byte what Binance's endpoint gives.
    for query in [
        format!(
            "symbol=BTCUSDT&interval=1h&startTime={start}&endTime={}",
            end + h - 1
        ),
        format!("symbol=ETHUSDT&interval=1h&endTime={end}&limit=5"),
        format!("symbol=BTCUSDT&interval=1h&startTime={}&limit=3", start + 1),
        format!("symbol=SOLUSDT&interval=15m&startTime={start}&endTime={end}"),
    ] {
        let ours = body(&format!("{gw}/api/v3/klines?{query}")).await;
        let theirs = sim_raw(&stack, &format!("/api/v3/klines?{query}")).await;
        assert_eq!(ours.0, 200, "{query}: {}", text(&ours.1));
        assert_eq!(text(&ours.1), text(&theirs), "{query}");
        assert!(ours.1.len() > 100, "{query}: {}", text(&ours.1));
    }

    // The latest candles: the closed ones identical, the forming one last.
    let (status, ours) = body(&format!(
        "{gw}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=4"
    ))
    .await;
    assert_eq!(status, 200, "{}", text(&ours));
    let ours: Vec<Value> = serde_json::from_slice(&ours).unwrap();
    let theirs: Vec<Value> = serde_json::from_slice(
        &sim_raw(&stack, "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=4").await,
    )
    .unwrap();
    assert_eq!(ours.len(), 4);
    let forming = now_ms() - now_ms() % 60_000;
    assert!(ours[3][0].as_i64().unwrap() >= forming - 60_000, "{ours:?}");
    assert_eq!(ours[..2], theirs[..2]);

    // Errors as Binance writes them.
    for (query, status, want) in [
        (
            "symbol=NOPEUSDT&interval=1m",
            400,
            r#"{"code":-1121,"msg":"Invalid symbol."}"#,
        ),
        (
            "symbol=BTCUSDT&interval=7m",
            400,
            r#"{"code":-1120,"msg":"Invalid interval."}"#,
        ),
        (
            "interval=1m",
            400,
            r#"{"code":-1102,"msg":"Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}"#,
        ),
    ] {
        let (got_status, got) = body(&format!("{gw}/api/v3/klines?{query}")).await;
        assert_eq!((got_status, text(&got).as_str()), (status, want), "{query}");
    }
    let theirs = sim_raw(&stack, "/api/v3/klines?symbol=NOPEUSDT&interval=1m").await;
    assert_eq!(text(&theirs), r#"{"code":-1121,"msg":"Invalid symbol."}"#);
    assert_eq!(
        body(&format!("{gw}/api/v3/ping")).await,
        (200, b"{}".to_vec())
    );
    let (_, time) = body(&format!("{gw}/api/v3/time")).await;
    let server: Value = serde_json::from_slice(&time).unwrap();
    assert!(
        (server["serverTime"].as_i64().unwrap() - now_ms()).abs() < 5_000,
        "{server}"
    );

    // Binance's own Python connector, unchanged but for its base URL.
    let script = format!(
        "import json\nfrom binance.spot import Spot\n\
         c = Spot(base_url={gw:?})\n\
         print(json.dumps(c.klines('ETHUSDT', '1h', startTime={start}, endTime={end})))"
    );
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args(["-c", &script]);
    if let Ok(path) = std::env::var("CANDLEPIPE_PYTHONPATH") {
        cmd.env("PYTHONPATH", path);
    }
    let out = cmd.output().await.expect("python3 runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).expect("json");
    let theirs: Value = serde_json::from_slice(
        &sim_raw(
            &stack,
            &format!("/api/v3/klines?symbol=ETHUSDT&interval=1h&startTime={start}&endTime={end}"),
        )
        .await,
    )
    .unwrap();
    assert_eq!(got, theirs);
    assert_eq!(got.as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn concurrent_cold_http_requests_for_one_series_make_one_exchange_call() {
    let stack = stack().await;
    let mut worker = stack.worker(&["all"]).await;
    let gw = format!("{}/binance", worker.gateway_url().await);
    // The market list is loaded (one call of its own) before the measurement.
    eventually(
        Duration::from_secs(10),
        "the gateway knows Binance's pairs",
        || async {
            let (status, _) =
                body(&format!("{gw}/api/v3/klines?symbol=NOPEUSDT&interval=1m")).await;
            (status == 400).then_some(())
        },
    )
    .await;
    let before = stack.sim.requests("binance").await;
    let end = closed_end(60_000);
    let url = format!("{gw}/api/v3/klines?symbol=LINKUSDT&interval=1m&endTime={end}&limit=100");
    let http = reqwest::Client::new();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..300 {
        let (http, url) = (http.clone(), url.clone());
        set.spawn(async move {
            let r = http.get(&url).send().await.expect("answer");
            (r.status().as_u16(), r.bytes().await.expect("body").to_vec())
        });
    }
    let mut bodies = std::collections::BTreeSet::new();
    while let Some(done) = set.join_next().await {
        let (status, body) = done.unwrap();
        assert_eq!(status, 200, "{}", text(&body));
        bodies.insert(body);
    }
    assert_eq!(bodies.len(), 1, "every client got the same klines");
    assert_eq!(
        stack.sim.requests("binance").await - before,
        1,
        "one exchange call for 300 clients"
    );
}
