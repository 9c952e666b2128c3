//! `candlepipe bench --scenario streams`: watched series (by default 100 each on Binance,
//! Kraken and Coinbase, 1m; `--mix`; the watches renewed every 30 s) asked for every second
//! with `max_age_ms` 2000 (`--max-age-ms`, or `default`). The stream role keeps them live,
//! so after the first loads REST is called only for
//! confirmations (Coinbase's candles are built from trades: each closed one is confirmed
//! by REST, one call per series a minute) and gap back-fills. Reports, for a warm-up phase
//! and the steady phase after it, the answers by source, those not fresh (newest candle
//! older than the current minute's), errors, the REST calls the simulator served, and the
//! most confirmations the steady phase could need.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use candlepipe_core::{now_ms, Interval};
use serde_json::{json, Value};

use super::scenarios::{calls_between, sim_calls};

/// The first seconds: initial loads, and the stream taking the series up.
const WARMUP: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Phase {
    requests: u64,
    outcomes: BTreeMap<String, u64>,
    not_fresh: u64,
    latencies_ms: Vec<f64>,
}

impl Phase {
    fn report(&mut self, rest_calls: Value) -> Value {
        self.latencies_ms.sort_by(f64::total_cmp);
        let p = |q: f64| {
            self.latencies_ms
                .get(
                    ((self.latencies_ms.len() as f64 * q) as usize)
                        .min(self.latencies_ms.len().saturating_sub(1)),
                )
                .copied()
                .unwrap_or(0.0)
        };
        json!({"requests": self.requests, "outcomes": self.outcomes, "not_fresh": self.not_fresh,
               "p50_ms": p(0.5), "p99_ms": p(0.99), "rest_calls": rest_calls})
    }
}

/// One request; its outcome (source, or error code) and whether its newest candle is the
/// current minute's (or, just after a boundary, the one before).
async fn ask(client: &async_nats::Client, subject: &str, body: &Value) -> (String, bool, f64) {
    let started = Instant::now();
    let reply = tokio::time::timeout(
        WAIT,
        client.request(subject.to_string(), Bytes::from(body.to_string())),
    )
    .await
    .ok()
    .and_then(|r| r.ok())
    .and_then(|m| serde_json::from_slice::<Value>(&m.payload).ok());
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let Some(reply) = reply else {
        return ("no_reply".into(), false, ms);
    };
    if reply["ok"] != true {
        let code = reply["error"]["code"].as_str().unwrap_or("?").to_string();
        return (code, false, ms);
    }
    let newest = reply["candles"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|c| c["t"].as_i64())
        .unwrap_or(0);
    let current = Interval::M1.open_of(now_ms());
    let fresh = newest >= current - Interval::M1.millis();
    let source = match reply["stale"] == true {
        true => "stale".to_string(),
        false => reply["source"].as_str().unwrap_or("?").to_string(),
    };
    (source, fresh, ms)
}

/// Asks the stream role to keep each series live, now and every [`RENEW`] (a series nobody
/// watches still becomes hot from the requests alone).
fn keep_watching(
    client: &async_nats::Client,
    watch_subject: &str,
    series: &[Value],
) -> tokio::task::JoinHandle<()> {
    let watches: Vec<Bytes> = series
        .iter()
        .map(|b| {
            Bytes::from(
                json!({"exchange":b["exchange"],"symbol":b["symbol"],"interval":b["interval"]})
                    .to_string(),
            )
        })
        .collect();
    let (client, subject) = (client.clone(), watch_subject.to_string());
    tokio::spawn(async move {
        loop {
            let mut refused = 0;
            for w in &watches {
                let answered = client.request(subject.clone(), w.clone()).await;
                let ok = answered
                    .ok()
                    .and_then(|m| serde_json::from_slice::<Value>(&m.payload).ok())
                    .is_some_and(|v| v["ok"] == true);
                refused += usize::from(!ok);
            }
            if refused > 0 {
                eprintln!("streams: {refused} watches not taken (is a stream worker running?)");
            }
            tokio::time::sleep(RENEW).await;
        }
    })
}

/// How often the watches are renewed (they last 90 s by default).
const RENEW: Duration = Duration::from_secs(30);

pub async fn run(
    client: &async_nats::Client,
    subject: &str,
    seconds: f64,
    sim_url: Option<&str>,
    options: super::scenarios::StreamsOptions,
) -> anyhow::Result<Value> {
    let [binance, kraken, coinbase] = options.mix;
    let series: Vec<Value> = (0..binance)
        .map(|i| ("binance", format!("TEST{i}/USDT")))
        .chain((0..kraken).map(|i| ("kraken", format!("TEST{i}/USD"))))
        .chain((0..coinbase).map(|i| ("coinbase", format!("TEST{i}/USD"))))
        .map(|(ex, sym)| {
            let mut body = json!({"exchange":ex,"symbol":sym,"interval":"1m","limit":10,"timeout_ms":WAIT.as_millis() as u64});
            if let Some(ms) = options.max_age_ms {
                body["max_age_ms"] = json!(ms);
            }
            body
        })
        .collect();
    let total = WARMUP + Duration::from_secs_f64(seconds.max(1.0));
    eprintln!(
        "streams: {} series asked every second, {} s warm-up then {seconds} s measured",
        series.len(),
        WARMUP.as_secs()
    );
    let watching = keep_watching(client, &options.watch_subject, &series);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (mut warmup, mut steady) = (Phase::default(), Phase::default());
    let at_start = sim_calls(sim_url).await?;
    let mut at_steady = None;
    while started.elapsed() < total {
        tick.tick().await;
        let in_warmup = started.elapsed() < WARMUP;
        if !in_warmup && at_steady.is_none() {
            at_steady = Some(sim_calls(sim_url).await?);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for body in &series {
            let (client, subject, body) = (client.clone(), subject.to_string(), body.clone());
            tasks.spawn(async move { ask(&client, &subject, &body).await });
        }
        let phase = if in_warmup { &mut warmup } else { &mut steady };
        for (outcome, fresh, ms) in tasks.join_all().await {
            phase.requests += 1;
            phase.not_fresh += u64::from(!fresh);
            phase.latencies_ms.push(ms);
            *phase.outcomes.entry(outcome).or_default() += 1;
        }
        eprint!("\r{:>6.1}s", started.elapsed().as_secs_f64());
    }
    eprintln!();
    watching.abort();
    let at_end = sim_calls(sim_url).await?;
    let at_steady = at_steady.unwrap_or_else(|| at_end.clone());
    // Every minute that closes in the steady phase, and the one closing as it starts.
    let minutes_closing = (seconds / 60.0).ceil() as usize + 1;
    // The bound on REST calls: initial loads, confirmations and repairs, over the
    // whole run.
    let minutes = (total.as_secs_f64() / 60.0).ceil() as usize;
    // Once streaming, REST is asked only to confirm closes and repair gaps: its calls per
    // series and hour in the steady phase.
    let steady_calls = calls_between(&at_steady, &at_end);
    let hours = seconds.max(1.0) / 3600.0;
    let per_series_hour = |ex: &str, n: usize| {
        let calls = steady_calls[ex].as_u64().unwrap_or(0) as f64;
        (n > 0).then(|| (calls / n as f64 / hours * 10.0).round() / 10.0)
    };
    Ok(json!({
        "series": series.len(),
        "mix": {"binance": binance, "kraken": kraken, "coinbase": coinbase},
        "max_age_ms": options.max_age_ms,
        "confirmations_at_most": {
            "kraken": kraken * minutes_closing,
            "coinbase": coinbase * minutes_closing,
        },
        "rest_calls_at_most": {
            "binance": binance * (2 + minutes),
            "kraken": kraken * (2 + minutes),
            "coinbase": coinbase * (2 + minutes),
        },
        "rest_calls_per_series_hour": {
            "binance": per_series_hour("binance", binance),
            "kraken": per_series_hour("kraken", kraken),
            "coinbase": per_series_hour("coinbase", coinbase),
        },
        "warmup": warmup.report(calls_between(&at_start, &at_steady)),
        "steady": steady.report(steady_calls),
    }))
}
