//! The gateway's own HTTP API (`/v1`), its page (`/`) in a real browser, fairness between
//! HTTP clients, and one exchange budget for HTTP and NATS producers together.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn v1_candles_is_the_nats_reply_with_http_statuses() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_BINANCE_RPS", 25);
    stack.set("CANDLEPIPE_STATS_FLUSH_MS", 100);
    let mut worker = stack.worker(&["all"]).await;
    let gw = worker.gateway_url().await;
    let client = stack.client().await;

    // A closed window: the same candles over HTTP (JSON and MessagePack) as over NATS.
    let end = closed_end(60_000);
    let url =
        format!("{gw}/v1/candles?exchange=binance&symbol=BTC/USDT&interval=1m&limit=50&end={end}");
    let (status, http) = body(&url).await;
    assert_eq!(status, 200, "{}", text(&http));
    let http: Value = serde_json::from_slice(&http).unwrap();
    let nats = get(
        &client,
        json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":50,"end":end}),
    )
    .await;
    let without_source = |mut v: Value| {
        v.as_object_mut().unwrap().remove("source");
        v
    };
    assert_eq!(without_source(http.clone()), without_source(nats));
    assert_eq!(ok(&http).len(), 50);
    let packed = reqwest::Client::new()
        .get(&url)
        .header("Accept", "application/msgpack")
        .send()
        .await
        .unwrap();
    assert_eq!(packed.status(), 200);
    assert_eq!(
        packed.headers()["content-type"].to_str().unwrap(),
        "application/msgpack"
    );
    let packed: Value = rmp_serde::from_slice(&packed.bytes().await.unwrap()).unwrap();
    assert_eq!(without_source(packed), without_source(http));

    // Errors: the NATS error reply, with the HTTP status of its code.
    let v1 = format!("{gw}/v1/candles?exchange=binance&interval=1m");
    for (query, status, code) in [
        ("&symbol=NOPE/USDT", 404, "unknown_symbol"),
        ("&symbol=BTC/USDT&limit=0", 400, "limit_out_of_range"),
        ("&symbol=BTCUSDT", 400, "invalid_symbol"),
        ("&symbol=BTC/USDT&limit=ten", 400, "bad_request"),
        ("&symbol=BTC/USDT&lmit=10", 400, "bad_request"),
    ] {
        let (got, reply) = body(&format!("{v1}{query}")).await;
        let reply: Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!((got, code_of(&reply)), (status, code), "{query}: {reply}");
    }
    let (_, reply) = body(&format!("{v1}&symbol=BTC/USDT&lmit=10")).await;
    assert!(
        text(&reply).contains("unknown parameter lmit"),
        "{}",
        text(&reply)
    );

    // The description is served, and names what it describes.
    let (status, doc) = body(&format!("{gw}/v1/openapi.json")).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&doc).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/candles",
        "/v1/live",
        "/v1/stats",
        "/binance/api/v3/klines",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    // The cluster's totals (flushed every 100 ms here) and budgets.
    let stats = eventually(Duration::from_secs(5), "the requests counted", || async {
        let (_, stats) = body(&format!("{gw}/v1/stats")).await;
        let stats: Value = serde_json::from_slice(&stats).unwrap();
        let counted = stats["requests"]["exchange"].as_u64() >= Some(1)
            && stats["requests"]["l1"].as_u64() >= Some(1);
        counted.then_some(stats)
    })
    .await;
    let budgets = stats["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 3, "{stats}");
    assert_eq!(budgets[0]["exchange"], "binance");
    assert_eq!(budgets[0]["rps"], 25);
    assert_eq!(budgets[0]["paused_ms"], 0);
    assert!(budgets[0]["calls"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["hit_ratio"].as_f64().unwrap() > 0.0, "{stats}");
}

fn code_of(reply: &Value) -> &str {
    reply["error"]["code"].as_str().unwrap_or("")
}

/// The next Server-Sent Event (`event`, `data`) from `stream`.
async fn next_event(stream: &mut reqwest::Response, buf: &mut String) -> (String, String) {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let raw: String = buf.drain(..end + 2).collect();
            let field = |name: &str| {
                raw.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim_start().to_string())
                    .unwrap_or_default()
            };
            if raw.starts_with(':') {
                continue; // a keep-alive comment
            }
            return (field("event:"), field("data:"));
        }
        let chunk = tokio::time::timeout(Duration::from_secs(15), stream.chunk())
            .await
            .expect("an event within 15 s")
            .expect("bytes")
            .expect("the stream goes on");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn v1_live_sends_the_series_live_candles_as_server_sent_events() {
    let stack = stack().await;
    stack
        .sim
        .set_faults("binance", json!({"stream_tick_ms": 200}))
        .await;
    let mut worker = stack.worker(&["all"]).await;
    let gw = worker.gateway_url().await;

    let r = reqwest::get(format!(
        "{gw}/v1/live?exchange=binance&symbol=ETH/USDT&interval=1m"
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut stream = r;
    let mut buf = String::new();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let (event, data) = next_event(&mut stream, &mut buf).await;
        assert_eq!(event, "candle", "{data}");
        seen.push(serde_json::from_str::<Value>(&data).unwrap());
    }
    let minute = now_ms().div_euclid(60_000) * 60_000;
    let newest = seen.last().unwrap();
    assert!(
        (newest["t"].as_i64().unwrap() - minute).abs() <= 60_000,
        "{newest}"
    );
    for c in &seen {
        for field in ["o", "h", "l", "c", "v"] {
            assert!(c[field].as_str().unwrap().parse::<f64>().is_ok(), "{c}");
        }
    }
    // A watch refused up front is an HTTP error, not an event stream.
    let (status, reply) = body(&format!(
        "{gw}/v1/live?exchange=binance&symbol=ETH/USDT&interval=7m"
    ))
    .await;
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!((status, code_of(&reply)), (400, "unsupported_interval"));
}

/// Runs the page in headless Chromium and reports what it drew.
const PAGE_SCRIPT: &str = r#"
import json, os, sys
from playwright.sync_api import sync_playwright

url, wanted_updates = sys.argv[1], int(sys.argv[2])

def shown(page):
    # The chart's candles and each one's colour as drawn, read back from the canvas.
    return page.evaluate("""() => {
        const ctx = document.getElementById('chart').getContext('2d');
        return {
            candles: window.chart.candles.map(c => ({t: c.t, o: c.o, h: c.h, l: c.l, c: c.c, v: c.v, closed: c.closed, synthetic: !!c.synthetic})),
            drawn: window.chart.drawn,
            missing: window.chart.missing,
            updates: window.chart.updates,
            stale: document.getElementById('stale').classList.contains('on'),
            pixels: window.chart.geometry.map(g => {
                const d = ctx.getImageData(g.x + Math.floor(g.w / 2), g.y + Math.floor(g.h / 2), 1, 1).data;
                return {t: g.t, want: g.color, got: '#' + [d[0], d[1], d[2]].map(v => v.toString(16).padStart(2, '0')).join('')};
            }),
            hit_ratio: document.getElementById('hit-ratio').textContent,
            budgets: document.querySelectorAll('#budgets tbody tr').length,
        };
    }""")

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=os.environ['CANDLEPIPE_CHROMIUM'], args=['--no-sandbox'])
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function('window.chart.drawn > 0 && window.chart.reply !== null', timeout=20000)
    first = shown(page)
    out = {'first': first}
    if wanted_updates:
        # Live updates applied, and the newest candle changed by them (a trade, or the
        # next interval): within a minute and a bit.
        last = page.evaluate("() => { const c = window.chart.candles.at(-1); return [c.t, c.c, c.v]; }")
        page.wait_for_function("""([n, last]) => {
            const c = window.chart.candles.at(-1);
            return window.chart.updates >= n && (c.t !== last[0] || c.c !== last[1] || c.v !== last[2]);
        }""", arg=[wanted_updates, last], timeout=75000)
        out['after'] = shown(page)
    page.wait_for_function("document.querySelectorAll('#budgets tbody tr').length === 3", timeout=10000)
    out['cluster'] = shown(page)
    browser.close()
print(json.dumps(out))
"#;

async fn run_page(url: &str, updates: u32) -> Value {
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args(["-c", PAGE_SCRIPT, url, &updates.to_string()]);
    if let Ok(path) = std::env::var("CANDLEPIPE_PYTHONPATH") {
        cmd.env("PYTHONPATH", path);
    }
    if std::env::var("CANDLEPIPE_CHROMIUM").is_err() {
        cmd.env("CANDLEPIPE_CHROMIUM", "/usr/bin/chromium");
    }
    let out = cmd.output().await.expect("python3 runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Every candle drawn in the colour it should have.
fn drawn_as_meant(shown: &Value) {
    let pixels = shown["pixels"].as_array().unwrap();
    assert_eq!(pixels.len(), shown["candles"].as_array().unwrap().len());
    for p in pixels {
        assert_eq!(p["got"], p["want"], "candle {}", p["t"]);
    }
}

#[tokio::test]
async fn the_page_draws_the_candles_the_api_returns_and_moves_with_live_updates() {
    let stack = stack().await;
    stack
        .sim
        .set_faults("binance", json!({"stream_tick_ms": 200}))
        .await;
    // Coinbase: one minute in four without trades (left out, as Coinbase does).
    stack
        .sim
        .set_faults("coinbase", json!({"quiet_one_in": 4}))
        .await;
    let mut worker = stack.worker(&["all"]).await;
    let gw = worker.gateway_url().await;

    // Binance, live: the chart holds what /v1/candles returns, then moves with the stream.
    let got = run_page(
        &format!("{gw}/?exchange=binance&symbol=SOL/USDT&interval=1m&limit=60"),
        3,
    )
    .await;
    let first = &got["first"];
    let candles = first["candles"].as_array().unwrap();
    assert_eq!(candles.len(), 60);
    assert_eq!(first["drawn"], 60);
    drawn_as_meant(first);
    let (_, api) = body(&format!(
        "{gw}/v1/candles?exchange=binance&symbol=SOL/USDT&interval=1m&limit=60"
    ))
    .await;
    let api: Value = serde_json::from_slice(&api).unwrap();
    let closed_of = |cs: &[Value]| -> Vec<Value> {
        cs.iter()
            .filter(|c| c["closed"] == true)
            .map(|c| json!([c["t"], c["o"], c["h"], c["l"], c["c"]]))
            .collect()
    };
    let page_closed = closed_of(candles);
    let api_closed = closed_of(ok(&api));
    // The API was asked a moment later: its window may have moved on by a minute.
    let shared: Vec<&Value> = page_closed
        .iter()
        .filter(|c| api_closed.iter().any(|a| a[0] == c[0]))
        .collect();
    assert!(
        shared.len() >= 58,
        "{} closed candles in common",
        shared.len()
    );
    for c in shared {
        assert!(
            api_closed.contains(c),
            "the page drew {c}, the API says otherwise"
        );
    }
    let after = &got["after"];
    assert!(after["updates"].as_u64().unwrap() >= 3);
    drawn_as_meant(after);
    let last = |s: &Value| s["candles"].as_array().unwrap().last().unwrap().clone();
    assert!(last(after)["t"].as_i64() >= last(first)["t"].as_i64());
    let moving = |c: Value| (c["t"].clone(), c["c"].clone(), c["v"].clone());
    assert_ne!(
        moving(last(after)),
        moving(last(first)),
        "the newest candle moved"
    );
    let cluster = &got["cluster"];
    assert_eq!(cluster["budgets"], 3);
    assert!(cluster["hit_ratio"].as_str().unwrap().ends_with('%'));

    // Coinbase with gaps: missing minutes marked, and with fill_gaps synthetic candles grey.
    let end = closed_end(60_000);
    let gaps = run_page(
        &format!("{gw}/?exchange=coinbase&symbol=BTC/USD&interval=1m&limit=40&end={end}"),
        0,
    )
    .await;
    assert!(!gaps["first"]["missing"].as_array().unwrap().is_empty());
    drawn_as_meant(&gaps["first"]);
    let filled = run_page(
        &format!(
            "{gw}/?exchange=coinbase&symbol=BTC/USD&interval=1m&limit=40&end={end}&fill_gaps=previous"
        ),
        0,
    )
    .await;
    let filled = &filled["first"];
    let synthetic: Vec<&Value> = filled["pixels"]
        .as_array()
        .unwrap()
        .iter()
        .zip(filled["candles"].as_array().unwrap())
        .filter(|(_, c)| c["synthetic"] == true)
        .map(|(p, _)| p)
        .collect();
    assert!(!synthetic.is_empty(), "{filled}");
    for p in synthetic {
        assert_eq!(p["got"], "#8b949e", "a synthetic candle is grey");
    }
    drawn_as_meant(filled);
}

#[tokio::test]
async fn one_http_client_cannot_starve_another() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_GATEWAY_CLIENT_CONCURRENCY", 2);
    stack.set("CANDLEPIPE_GATEWAY_CLIENT_QUEUE", 3);
    stack.set("CANDLEPIPE_GATEWAY_CLIENT_HEADER", "X-Forwarded-For");
    let mut worker = stack.worker(&["all"]).await;
    let gw = worker.gateway_url().await;
    binance_list_at_hand(&gw).await;
    // Every exchange call now takes 1.5 s.
    stack
        .sim
        .set_faults("binance", json!({"latency_ms": 1500}))
        .await;

    let http = reqwest::Client::new();
    let ask = |client: &'static str, symbol: String| {
        let (http, url) = (
            http.clone(),
            format!("{gw}/binance/api/v3/klines?symbol={symbol}&interval=1m&limit=5"),
        );
        async move {
            let r = http
                .get(&url)
                .header("X-Forwarded-For", client)
                .send()
                .await
                .unwrap();
            let retry_after = r.headers().get("retry-after").cloned();
            let status = r.status().as_u16();
            (status, retry_after, r.text().await.unwrap(), Instant::now())
        }
    };
    let started = Instant::now();
    let mut greedy = tokio::task::JoinSet::new();
    for i in 0..10 {
        greedy.spawn(ask("10.0.0.1", format!("TEST{i}USDT")));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another client, while the first one's turns are all taken and its queue is full.
    let (status, _, reply, done) = ask("10.0.0.2", "TEST100USDT".into()).await;
    assert_eq!(status, 200, "{reply}");
    let other_took = done - started;

    let (mut served, mut refused, mut last_served) = (0, 0, Duration::ZERO);
    while let Some(r) = greedy.join_next().await {
        let (status, retry_after, reply, done) = r.unwrap();
        match status {
            200 => {
                served += 1;
                last_served = last_served.max(done - started);
            }
            429 => {
                refused += 1;
                assert_eq!(retry_after.unwrap(), "1");
                let reply: Value = serde_json::from_str(&reply).unwrap();
                assert_eq!(reply["code"], -1003, "Binance's own refusal");
            }
            other => panic!("{other}: {reply}"),
        }
    }
    // Two at a time and three waiting: the other five refused at once.
    assert_eq!((served, refused), (5, 5));
    // Three rounds of 1.5 s for the first client; one for the other.
    assert!(
        other_took + Duration::from_millis(1000) < last_served,
        "the other client waited {other_took:?}, the first one's last {last_served:?}"
    );
    // Refused at /v1 as candlepipe refuses: rate_limited.
    let mut greedy = tokio::task::JoinSet::new();
    for i in 0..6 {
        greedy.spawn(ask("10.0.0.1", format!("TEST{}USDT", 200 + i)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = http
        .get(format!(
            "{gw}/v1/candles?exchange=binance&symbol=TEST300/USDT&interval=1m"
        ))
        .header("X-Forwarded-For", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let reply: Value = r.json().await.unwrap();
    assert_eq!(code_of(&reply), "rate_limited");
    while greedy.join_next().await.is_some() {}
}

#[tokio::test]
async fn http_and_nats_producers_share_one_exchange_budget() {
    const RPS: u64 = 20;
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_BINANCE_RPS", RPS);
    stack.set("CANDLEPIPE_FILL_WAIT_MS", "60000");
    // The exchange punishes anything over budget + burst (1) with a 429.
    stack
        .sim
        .set_faults(
            "binance",
            json!({"rate_limit": {"rps": RPS + 1, "retry_after_s": 1}}),
        )
        .await;
    let mut worker = stack.worker(&["all"]).await;
    let gw = worker.gateway_url().await;
    let client = stack.client().await;
    binance_list_at_hand(&gw).await;
    let before = stack.sim.requests("binance").await;

    let mut set = tokio::task::JoinSet::new();
    for i in 0..60 {
        let client = client.clone();
        set.spawn(async move {
            let reply = get(&client, req("binance", &format!("TEST{i}/USDT"), "1m", 10)).await;
            (reply["ok"] == true, reply.to_string())
        });
        let url = format!(
            "{gw}/binance/api/v3/klines?symbol=TEST{}USDT&interval=1m&limit=10",
            100 + i
        );
        set.spawn(async move {
            let (status, reply) = body(&url).await;
            (status == 200, text(&reply))
        });
    }
    while let Some(r) = set.join_next().await {
        let (fine, reply) = r.unwrap();
        assert!(fine, "{reply}");
    }
    let stats = stack.sim.stats().await;
    assert_eq!(
        stats["binance"]["rate_limited"], 0,
        "the exchange never answered 429"
    );
    assert_eq!(stack.sim.requests("binance").await - before, 120);
    let busiest = busiest_second(&stats, "binance");
    assert!(busiest <= RPS + 1, "a second saw {busiest} requests");
}

#[tokio::test]
async fn bad_input_gets_the_exchanges_own_error_never_a_500() {
    let stack = stack().await;
    let mut worker = stack.worker(&["all"]).await;
    let gw = worker.gateway_url().await;
    binance_list_at_hand(&gw).await;
    let long = "x".repeat(3000);
    assert_eq!(
        body(&format!("{gw}/binance/api/v3/klines?symbol={long}"))
            .await
            .0,
        414,
        "a query string past 2 KiB"
    );
    for path in [
        "/binance/api/v3/klines",
        "/binance/api/v3/klines?symbol=%FF%FE&interval=1m",
        "/binance/api/v3/klines?symbol=BTCUSDT&interval=",
        "/binance/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=abc",
        "/binance/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=-5",
        "/binance/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=9&endTime=1",
        "/binance/api/v3/klines?symbol=BTCUSDT&interval=1m&endTime=99999999999999999999",
        "/binance/api/v3/exchangeInfo?symbols=[\"BTC",
        "/kraken/0/public/OHLC",
        "/kraken/0/public/OHLC?pair=XBTUSD&interval=abc",
        "/kraken/0/public/OHLC?pair=XBTUSD&since=-1e99",
        "/kraken/0/public/Assets?asset=,,,",
        "/coinbase/products/BTC-USD/candles?granularity=abc",
        "/coinbase/products/BTC-USD/candles?granularity=60&start=yesterday",
        "/coinbase/products/%00/candles",
        "/coinbase/currencies/%FF",
        "/v1/candles",
        "/v1/candles?exchange=binance&symbol=BTC/USDT&interval=1m&end=abc",
        "/v1/candles?exchange=nope&symbol=BTC/USDT&interval=1m",
        "/v1/candles?exchange=binance&symbol=BTC/USDT&interval=1m&fill_gaps=sometimes",
        "/v1/live",
        "/v1/echo?bytes=99999999999",
    ] {
        let (status, reply) = body(&format!("{gw}{path}")).await;
        assert!(status < 500, "{path}: {status} {}", text(&reply));
        assert!(
            serde_json::from_slice::<Value>(&reply).is_ok(),
            "{path}: {}",
            text(&reply)
        );
    }
}
