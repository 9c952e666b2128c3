//! `candlepipe bench --scenario NAME`: how candlepipe spends an exchange's budget under
//! pressure. Each scenario drives candles requests against running workers (meant for the
//! default budgets: Binance 20, Kraken 1 request a second) and prints one JSON object.
//! With `--sim-url`, exchange calls are read from the simulator's request log.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use candlepipe_core::{now_ms, Interval, Subjects};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use crate::setup::Setup;
use crate::sim_log::{calls_between, sim_calls};
use crate::streams::{self, StreamsOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Cold Binance requests at 5/s, alone and then while 40 cold Kraken series wait for
    /// Kraken's budget: one exchange's backlog must not delay another.
    Lanes,
    /// 300 cold Binance series at once, willing to wait 60 s; then 300 more with the
    /// default wait: every one answered before its deadline.
    Burst,
    /// 32 producers over 120 symbols × {1m, 5m, 1h} with Zipf popularity and limits
    /// {50, 100, 200, 500}, closed windows: exchange calls against distinct series.
    ZipfSeries,
    /// Cold Binance requests at 5/s, alone and then while a backfill of 100,000 1m
    /// candles runs: bulk work must not raise live latency.
    Backfill,
    /// 1,000 requests over 10 symbols Binance does not list: exchange calls.
    Unknown,
    /// 300 hot series (Binance and Kraken) asked every second with max_age_ms 2000: after
    /// the first loads the stream keeps them fresh; REST calls and freshness per phase.
    Streams,
}

/// Live load of the lanes and backfill scenarios, requests a second (under Binance's 20).
const LIVE_RATE: u64 = 5;

/// How one request went.
#[derive(Debug, Clone)]
struct Answer {
    /// `l1`, `redis`, `exchange`, `stale`, an error code, or `no_reply`.
    outcome: String,
    latency: Duration,
    retry_after_ms: Option<u64>,
}

/// Sends one candles request and waits up to `wait` for its reply.
async fn ask(client: &async_nats::Client, subject: &str, body: Value, wait: Duration) -> Answer {
    let started = Instant::now();
    let request = async_nats::Request::new()
        .payload(Bytes::from(body.to_string()))
        .timeout(Some(wait));
    let reply = client
        .send_request(subject.to_string(), request)
        .await
        .ok()
        .and_then(|m| serde_json::from_slice::<Value>(&m.payload).ok());
    let latency = started.elapsed();
    let Some(reply) = reply else {
        return Answer {
            outcome: "no_reply".into(),
            latency,
            retry_after_ms: None,
        };
    };
    let outcome = match (&reply["ok"], &reply["stale"]) {
        (Value::Bool(true), Value::Bool(true)) => "stale".to_string(),
        (Value::Bool(true), _) => reply["source"].as_str().unwrap_or("?").to_string(),
        _ => reply["error"]["code"].as_str().unwrap_or("?").to_string(),
    };
    Answer {
        outcome,
        latency,
        retry_after_ms: reply["error"]["retry_after_ms"].as_u64(),
    }
}

/// Latency and outcomes of a set of answers.
fn summary(answers: &[Answer]) -> Value {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds");
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    for a in answers {
        let _ = hist.record(a.latency.as_micros() as u64);
        *outcomes.entry(a.outcome.as_str()).or_default() += 1;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    json!({
        "requests": answers.len(),
        "outcomes": outcomes,
        "p50_ms": ms(hist.value_at_quantile(0.5)),
        "p99_ms": ms(hist.value_at_quantile(0.99)),
        "max_ms": ms(hist.max()),
        "with_retry_after": answers.iter().filter(|a| a.retry_after_ms.is_some()).count(),
    })
}

/// Runs `make(i)` for `n` requests spaced evenly at `rate` a second (open loop: a slow
/// answer does not delay the next request).
async fn paced<F, Fut>(rate: u64, n: u64, make: F) -> Vec<Answer>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        tick.tick().await;
        tasks.spawn(make(i));
    }
    tasks.join_all().await
}

/// Sends all `bodies` at once; their answers.
async fn at_once(
    client: &async_nats::Client,
    subject: &str,
    bodies: Vec<Value>,
    wait: Duration,
) -> Vec<Answer> {
    let mut tasks = tokio::task::JoinSet::new();
    for body in bodies {
        let (client, subject) = (client.clone(), subject.to_string());
        tasks.spawn(async move { ask(&client, &subject, body, wait).await });
    }
    tasks.join_all().await
}

/// A cold Binance request: 100 closed 1m candles of a listed series, a window nobody asked
/// for (`k` picks it; `salt` keeps runs apart; windows of a series are a page apart, beyond
/// any widening).
fn cold_binance(k: u64, salt: u64) -> Value {
    let k = k + salt;
    let iv = Interval::M1;
    let end = iv.open_of(now_ms()) - (k / 2000 % 100 + 2) as i64 * 1000 * iv.millis();
    json!({"exchange":"binance","symbol":format!("TEST{}/USDT", k % 2000),
           "interval":iv.as_str(),"limit":100,"end":end})
}

pub async fn run(
    setup: &Setup,
    scenario: Scenario,
    seconds: f64,
    sim_url: Option<&str>,
    streams: StreamsOptions,
) -> anyhow::Result<Value> {
    let client = setup
        .nats("candlepipe-bench-scenario", Duration::ZERO)
        .await?;
    let subject = Subjects::new(&setup.prefix).candles_get();
    let salt = rand::rngs::StdRng::from_os_rng().random_range(0..200_000u64);
    let live_n = (seconds.max(1.0) * LIVE_RATE as f64) as u64;
    let wait = Duration::from_secs(120);
    let before = sim_calls(sim_url).await?;
    let live = |offset: u64| {
        let (client, subject) = (client.clone(), subject.clone());
        paced(LIVE_RATE, live_n, move |i| {
            let (client, subject) = (client.clone(), subject.clone());
            async move { ask(&client, &subject, cold_binance(offset + i, salt), wait).await }
        })
    };
    let mut report = match scenario {
        Scenario::Lanes => {
            eprintln!("lanes: cold Binance at {LIVE_RATE}/s for {seconds} s, alone");
            let alone = live(0).await;
            eprintln!("lanes: 40 cold Kraken series queued (1 a second), cold Binance again");
            let kraken: Vec<Value> = (0..40)
                .map(|i| {
                    json!({"exchange":"kraken","symbol":format!("TEST{}/USD", (salt + i) % 2000),
                               "interval":"1m","limit":5,"timeout_ms":60_000})
                })
                .collect();
            let queued = {
                let (client, subject) = (client.clone(), subject.clone());
                tokio::spawn(async move { at_once(&client, &subject, kraken, wait).await })
            };
            tokio::time::sleep(Duration::from_millis(500)).await;
            let beside = live(10_000).await;
            let kraken = queued.await?;
            json!({"alone": summary(&alone), "beside_kraken_backlog": summary(&beside),
                   "kraken": summary(&kraken)})
        }
        Scenario::Burst => {
            let bodies = |from: u64, timeout: Option<u64>| -> Vec<Value> {
                (from..from + 300)
                    .map(|k| {
                        let mut b = cold_binance(k, salt);
                        if let Some(t) = timeout {
                            b["timeout_ms"] = t.into();
                        }
                        b
                    })
                    .collect()
            };
            eprintln!("burst: 300 cold series at once, willing to wait 60 s");
            let patient = at_once(&client, &subject, bodies(0, Some(60_000)), wait).await;
            eprintln!("burst: 300 more with the default wait");
            let default = at_once(&client, &subject, bodies(300, None), wait).await;
            let fill_wait = setup.fill_wait;
            let late = default.iter().filter(|a| a.latency > fill_wait).count();
            json!({"timeout_60s": summary(&patient), "default_timeout": summary(&default),
                   "default_timeout_ms": fill_wait.as_millis() as u64,
                   "answered_after_deadline": late})
        }
        Scenario::ZipfSeries => zipf_series(&client, &subject, seconds, salt).await,
        Scenario::Backfill => {
            eprintln!("backfill: cold Binance at {LIVE_RATE}/s for {seconds} s, alone");
            let alone = live(0).await;
            let since = Interval::M1.open_of(now_ms()) - 100_000 * 60_000;
            eprintln!("backfill: 100,000 1m candles of BTC/USDT, and cold Binance again");
            let mut backfill = tokio::process::Command::new(std::env::current_exe()?)
                .args([
                    "backfill",
                    "binance",
                    "BTC/USDT",
                    "1m",
                    "--since",
                    &since.to_string(),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("starting the backfill")?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let beside = live(10_000).await;
            let still_running = backfill.try_wait()?.is_none();
            let status = backfill.wait().await?;
            json!({"alone": summary(&alone), "beside_backfill": summary(&beside),
                   "backfill_still_running_after": still_running,
                   "backfill_ok": status.success()})
        }
        Scenario::Unknown => {
            let mut answers = Vec::new();
            for wave in 0..10u64 {
                let bodies = (0..100)
                    .map(|i| json!({"exchange":"binance","symbol":format!("NOPE{}/USDT", (wave * 100 + i) % 10),
                                    "interval":"1m","limit":5}))
                    .collect();
                answers.extend(at_once(&client, &subject, bodies, wait).await);
            }
            json!({"requests": summary(&answers)})
        }
        Scenario::Streams => streams::run(&client, &subject, seconds, sim_url, streams).await?,
    };
    let after = sim_calls(sim_url).await?;
    report["scenario"] = json!(scenario);
    report["exchange_calls"] = calls_between(&before, &after);
    Ok(report)
}

/// The zipf-series scenario: producers ask for closed windows ending at the run's start, so
/// every call the exchange sees is one a cache could have saved or not.
async fn zipf_series(client: &async_nats::Client, subject: &str, seconds: f64, salt: u64) -> Value {
    const SYMBOLS: u64 = 120;
    const INTERVALS: [Interval; 3] = [Interval::M1, Interval::M5, Interval::H1];
    const LIMITS: [u32; 4] = [50, 100, 200, 500];
    let series = SYMBOLS as usize * INTERVALS.len();
    let mut cdf = Vec::with_capacity(series);
    let mut total = 0.0;
    for k in 1..=series {
        total += 1.0 / (k as f64).powf(1.1);
        cdf.push(total);
    }
    cdf.iter_mut().for_each(|c| *c /= total);
    let started = now_ms();
    let first = salt % (2000 - SYMBOLS);
    let until = Instant::now() + Duration::from_secs_f64(seconds.max(1.0));
    eprintln!("zipf-series: 32 producers over {series} series for {seconds} s");
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..32u64 {
        let (client, subject, cdf) = (client.clone(), subject.to_string(), cdf.clone());
        tasks.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(salt ^ p);
            let mut answers = Vec::new();
            let mut asked = BTreeSet::new();
            while Instant::now() < until {
                let s = cdf.partition_point(|c| *c < rng.random::<f64>());
                let (sym, iv) = (first + s as u64 / 3, INTERVALS[s % 3]);
                let limit = LIMITS[rng.random_range(0..LIMITS.len())];
                let end = iv.open_of(started) - iv.millis();
                asked.insert(s);
                let body = json!({"exchange":"binance","symbol":format!("TEST{sym}/USDT"),
                                  "interval":iv.as_str(),"limit":limit,"end":end});
                answers.push(ask(&client, &subject, body, Duration::from_secs(30)).await);
            }
            (answers, asked)
        });
    }
    let mut answers = Vec::new();
    let mut asked = BTreeSet::new();
    for (a, s) in tasks.join_all().await {
        answers.extend(a);
        asked.extend(s);
    }
    let failed = answers
        .iter()
        .filter(|a| !["l1", "redis", "exchange"].contains(&a.outcome.as_str()))
        .count();
    json!({"producers": 32, "seconds": seconds, "series": series, "series_asked": asked.len(),
           "failed": failed, "requests": summary(&answers)})
}
