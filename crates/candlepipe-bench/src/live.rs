//! `candlepipe bench --workload live`: latency of live candles, from the (simulated)
//! exchange's event to a NATS subscriber. Watches `--series` Binance series, makes the
//! simulator send each an update every `series × 1000 / --rate` ms, and measures, for every
//! candle published on the live subjects, the time since the event time the exchange put
//! in it (`Candlepipe-Event-Ms`; the simulator runs on this host's clock).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;

use candlepipe_core::Subjects;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::setup::Setup;

/// Header the stream role puts on live candles (see `candlepipe_worker::stream`).
const EVENT_MS_HEADER: &str = "Candlepipe-Event-Ms";

pub async fn run(
    setup: &Setup,
    series: usize,
    rate: u64,
    duration: f64,
    sim_url: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let sim_url =
        sim_url.context("--workload live needs --sim-url (it sets the simulator's stream rate)")?;
    let series = series.clamp(1, 1000);
    let tick_ms = (series as u64 * 1000 / rate.max(1)).max(1);
    reqwest::Client::new()
        .post(format!(
            "{}/sim/faults/binance",
            sim_url.trim_end_matches('/')
        ))
        .json(&json!({"stream_tick_ms": tick_ms}))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .context("setting the simulator's stream rate")?;
    let nats = setup.nats("candlepipe-bench-live", Duration::ZERO).await?;
    let subjects = Subjects::new(&setup.prefix);
    let mut live = nats
        .subscribe(format!("{}.candles.live.binance.>", setup.prefix))
        .await?;
    for i in 0..series {
        let req = json!({"exchange":"binance","symbol":format!("TEST{i}/USDT"),"interval":"1m"});
        let reply = nats
            .request(subjects.candles_watch(), Bytes::from(req.to_string()))
            .await
            .context("no reply to a watch (is a stream worker running?)")?;
        let v: serde_json::Value = serde_json::from_slice(&reply.payload)?;
        anyhow::ensure!(v["ok"] == true, "watch refused: {v}");
    }
    eprintln!(
        "watching {series} series, an update each every {tick_ms} ms; waiting for them to flow"
    );
    // Until every series flows (leases, subscriptions), at most 30 s.
    let mut seen = std::collections::HashSet::new();
    let ready_by = Instant::now() + Duration::from_secs(30);
    while seen.len() < series && Instant::now() < ready_by {
        if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(1), live.next()).await {
            seen.insert(msg.subject.to_string());
        }
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let measure = Duration::from_secs_f64(duration.max(1.0));
    let started = Instant::now();
    let mut without_time = 0u64;
    let mut last_report = Instant::now();
    while started.elapsed() < measure {
        let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(1), live.next()).await else {
            continue;
        };
        let at = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(EVENT_MS_HEADER))
            .and_then(|v| v.as_str().parse::<i64>().ok());
        match at {
            // Received in µs; the event time has ms resolution, so this reads up to 1 ms
            // late, never early.
            Some(at) => {
                let _ = hist.record((host_us() - at * 1000).max(1) as u64);
            }
            None => without_time += 1,
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            eprint!(
                "\r{:>6.1}s  {:>9} live candles",
                started.elapsed().as_secs_f64(),
                hist.len()
            );
            last_report = Instant::now();
        }
    }
    eprintln!();
    let secs = measure.as_secs_f64();
    Ok(json!({
        "workload": "live",
        "series": series,
        "flowing": seen.len(),
        "tick_ms": tick_ms,
        "duration_s": secs,
        "updates": hist.len(),
        "updates_per_s": hist.len() as f64 / secs,
        "without_event_time": without_time,
        "p50_ms": hist.value_at_quantile(0.5) as f64 / 1000.0,
        "p99_ms": hist.value_at_quantile(0.99) as f64 / 1000.0,
        "p999_ms": hist.value_at_quantile(0.999) as f64 / 1000.0,
        "max_ms": hist.max() as f64 / 1000.0,
    }))
}

/// This host's clock in µs (the simulator stamps events with it, in ms).
fn host_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
