//! Helpers shared by the end-to-end tests.

use std::time::Duration;

use bytes::Bytes;
pub use candlepipe_testkit::{eventually, Stack};
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_candlepipe");

pub async fn stack() -> Stack {
    Stack::start(BIN).await
}

/// Sends raw bytes on `candlepipe.candles.get` and decodes the JSON reply.
pub async fn request_raw(client: &async_nats::Client, payload: Vec<u8>) -> Value {
    request_within(client, payload, Duration::from_secs(20)).await
}

pub async fn request_within(
    client: &async_nats::Client,
    payload: Vec<u8>,
    timeout: Duration,
) -> Value {
    let req = async_nats::Request::new()
        .payload(Bytes::from(payload))
        .timeout(Some(timeout));
    let msg = client
        .send_request("candlepipe.candles.get", req)
        .await
        .expect("a reply, never a silent timeout");
    serde_json::from_slice(&msg.payload).expect("reply is JSON")
}

pub async fn get(client: &async_nats::Client, request: Value) -> Value {
    request_raw(client, serde_json::to_vec(&request).expect("json")).await
}

/// `get` with request headers (a `traceparent`, say).
pub async fn get_with_headers(
    client: &async_nats::Client,
    headers: async_nats::HeaderMap,
    request: Value,
) -> Value {
    let req = async_nats::Request::new()
        .headers(headers)
        .payload(Bytes::from(serde_json::to_vec(&request).expect("json")));
    let msg = client
        .send_request("candlepipe.candles.get", req)
        .await
        .expect("reply");
    serde_json::from_slice(&msg.payload).expect("reply is JSON")
}

pub fn req(exchange: &str, symbol: &str, interval: &str, limit: i64) -> Value {
    json!({"exchange": exchange, "symbol": symbol, "interval": interval, "limit": limit})
}

pub fn ok(reply: &Value) -> &Vec<Value> {
    assert_eq!(reply["ok"], true, "expected success, got {reply}");
    reply["candles"].as_array().expect("candles")
}

pub fn source(reply: &Value) -> &str {
    reply["source"]
        .as_str()
        .unwrap_or_else(|| panic!("no source in {reply}"))
}

pub fn code(reply: &Value) -> &str {
    assert_eq!(reply["ok"], false, "expected an error, got {reply}");
    reply["error"]["code"].as_str().expect("error code")
}

/// The host's time in ms (the sim's clock).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Waits until the clock is `from_s..to_s` seconds into a minute; returns the time then.
pub async fn into_minute(from_s: i64, to_s: i64) -> i64 {
    loop {
        let now = now_ms();
        if (from_s..to_s).contains(&(now.rem_euclid(60_000) / 1000)) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An hour ago's open time, aligned to `step_ms`, for windows of closed candles.
pub fn closed_end(step_ms: i64) -> i64 {
    (now_ms() - 3_600_000).div_euclid(step_ms) * step_ms
}

/// The sim's own answer, in the exchange's format.
pub async fn sim_raw(stack: &Stack, path_and_query: &str) -> Vec<u8> {
    reqwest::get(format!("{}{}", stack.sim.url, path_and_query))
        .await
        .expect("sim")
        .bytes()
        .await
        .expect("sim body")
        .to_vec()
}

/// The value of `key=` in a query string.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

/// Runs `candlepipe <args>` against the stack; returns its exit code and stdout.
pub async fn cli(stack: &Stack, args: &[&str]) -> (Option<i32>, String) {
    let (status, stdout, _) = cli_output(stack, args).await;
    (status, stdout)
}

/// Like [`cli`], with stderr too.
pub async fn cli_output(stack: &Stack, args: &[&str]) -> (Option<i32>, String, String) {
    cli_in(stack, &[], args).await
}

/// Like [`cli_output`], with the stack's environment changed by `env`.
pub async fn cli_in(
    stack: &Stack,
    env: &[(&str, String)],
    args: &[&str],
) -> (Option<i32>, String, String) {
    let mut vars = stack.worker_env();
    vars.retain(|(k, _)| !env.iter().any(|(e, _)| e == k));
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(vars)
        .output()
        .await
        .expect("run candlepipe");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends an analysis request on `candlepipe.analysis.run` and decodes the JSON reply.
pub async fn analyze(client: &async_nats::Client, request: Value) -> Value {
    let req = async_nats::Request::new()
        .payload(Bytes::from(serde_json::to_vec(&request).expect("json")))
        .timeout(Some(Duration::from_secs(60)));
    let msg = client
        .send_request("candlepipe.analysis.run", req)
        .await
        .expect("an analysis reply");
    serde_json::from_slice(&msg.payload).expect("reply is JSON")
}

/// Connects with `options`, with the server's events (errors, permission violations) as
/// lines on the receiver.
pub async fn connect_watching(
    url: String,
    options: async_nats::ConnectOptions,
) -> (
    async_nats::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = options
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e.to_string());
            }
        })
        .connect(url)
        .await
        .unwrap();
    (client, rx)
}

/// The next permissions violation the server reported on a connection.
pub async fn refusal(events: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let e = events.recv().await.unwrap();
            if e.to_lowercase().contains("permissions violation") {
                return e;
            }
        }
    })
    .await
    .expect("the server refuses and says why")
}

/// A stack whose nats-server runs `nats/<file>` of the repository as shipped (port,
/// monitoring port and store dir are the harness's), the passwords of its users from the
/// server's environment (`passwords`, besides the workers' `w-pass` and the gateway's
/// `g-pass`), the workers logged in
/// as `candlepipe`. Returns the stack and the server's port.
pub async fn stack_on_nats_config(file: &str, passwords: &[(&str, &str)]) -> (Stack, u16) {
    let config = format!("{}/nats/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut env = vec![
        ("CANDLEPIPE_NATS_WORKER_PASSWORD", "w-pass"),
        ("CANDLEPIPE_NATS_GATEWAY_PASSWORD", "g-pass"),
    ];
    env.extend_from_slice(passwords);
    let nats = candlepipe_testkit::NatsServer::start_with_env(&["-c", &config, "-m", "-1"], &env);
    let port = nats.port;
    let mut stack = Stack::start_with(BIN, nats, candlepipe_testkit::RedisServer::start()).await;
    stack.set(
        "CANDLEPIPE_NATS_URL",
        format!("nats://candlepipe:w-pass@127.0.0.1:{port}"),
    );
    (stack, port)
}

/// An HTTP GET's status and body.
pub async fn body(url: &str) -> (u16, Vec<u8>) {
    let r = reqwest::get(url).await.expect("gateway answers");
    let status = r.status().as_u16();
    (status, r.bytes().await.expect("body").to_vec())
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a Python script with the test script's packages; its stdout as JSON.
pub async fn python(script: &str) -> Value {
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args(["-c", script]);
    if let Ok(path) = std::env::var("CANDLEPIPE_PYTHONPATH") {
        cmd.env("PYTHONPATH", path);
    }
    let out = cmd.output().await.expect("python3 runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Waits until the gateway at `gw` knows Binance's market list (an unlisted symbol is then
/// Binance's "Invalid symbol", not "unavailable").
pub async fn binance_list_at_hand(gw: &str) {
    eventually(
        Duration::from_secs(10),
        "Binance's list at hand",
        || async {
            let url = format!("{gw}/binance/api/v3/klines?symbol=NOPEUSDT&interval=1m");
            (body(&url).await.0 == 400).then_some(())
        },
    )
    .await;
}

/// The most requests the simulator had from `exchange` in one wall-clock second, from its
/// `/sim/stats`.
pub fn busiest_second(stats: &Value, exchange: &str) -> u64 {
    stats[exchange]["per_second"]
        .as_object()
        .map(|seconds| {
            seconds
                .values()
                .filter_map(Value::as_u64)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// The sum of the samples whose lines start with `series` (name and labels, in order) in a
/// Prometheus scrape.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of counter `name` for label `outcome` in a Prometheus scrape (0 if absent).
pub fn outcome(text: &str, name: &str, outcome: &str) -> f64 {
    sample(text, &format!("{name}{{outcome=\"{outcome}\"}}"))
}

/// A worker's `/metrics` text.
pub async fn scrape(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text")
}
