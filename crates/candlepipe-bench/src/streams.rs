//! `candlepipe bench --scenario streams`: watched series (by default 100 each on Binance,
//! Kraken and Coinbase, 1m; `--mix`; the watches renewed every 30 s) asked for every second
//! with `max_age_ms` 2000 (`--max-age-ms`, or `default`). The stream role keeps them live,
//! so after the first loads REST is called only for
//! confirmations (Coinbase's candles are built from trades: each closed one is confirmed
//! by REST, one call per series a minute) and gap back-fills. Reports, for a warm-up phase
//! and the steady phase after it, the answers by source, those not fresh (newest candle
//! older than the current minute's), errors, the REST calls the simulator served, and the
//! most confirmations the steady phase could need. With `--sim-url`, every answer is also
//! checked against the simulator's record (`/sim/trades`): its candle for the minute
//! `max_age_ms` + 1 s before the request must hold every trade up to then, and only trades
//! that happened (answers that do not are counted as `not_holding`, the first few shown).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use candlepipe_core::freshness::STREAMED_MAX_AGE_MS;
use candlepipe_core::{now_ms, Interval, Millis};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::sim_log::{calls_between, sim_calls};

/// The first seconds: initial loads, and the stream taking the series up.
const WARMUP: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(5);
/// How far past `max_age_ms` an answer may lag the trades (delivery and the store write).
const HOLD_SLACK_MS: Millis = 1_000;
/// Answers not holding the trades shown in the report, per phase.
const EXAMPLES: usize = 5;

#[derive(Default)]
struct Phase {
    requests: u64,
    outcomes: BTreeMap<String, u64>,
    not_fresh: u64,
    /// Answers checked against the simulator's trades, and those that did not hold them.
    checked: u64,
    not_holding: u64,
    examples: Vec<String>,
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
               "checked": self.checked, "not_holding": self.not_holding,
               "not_holding_examples": self.examples,
               "p50_ms": p(0.5), "p99_ms": p(0.99), "rest_calls": rest_calls})
    }
}

/// One request's outcome (source, or error code), whether its newest candle is the current
/// minute's (or, just after a boundary, the one before), its latency, and the reply with
/// the time it was asked (ms).
struct Asked {
    outcome: String,
    fresh: bool,
    ms: f64,
    reply: Option<(Value, Millis)>,
}

async fn ask(client: &async_nats::Client, subject: &str, body: &Value) -> Asked {
    let asked_at = now_ms();
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
        return Asked {
            outcome: "no_reply".into(),
            fresh: false,
            ms,
            reply: None,
        };
    };
    if reply["ok"] != true {
        let outcome = reply["error"]["code"].as_str().unwrap_or("?").to_string();
        return Asked {
            outcome,
            fresh: false,
            ms,
            reply: None,
        };
    }
    let newest = reply["candles"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|c| c["t"].as_i64())
        .unwrap_or(0);
    let current = Interval::M1.open_of(now_ms());
    let fresh = newest >= current - Interval::M1.millis();
    let outcome = match reply["stale"] == true {
        true => "stale".to_string(),
        false => reply["source"].as_str().unwrap_or("?").to_string(),
    };
    Asked {
        outcome,
        fresh,
        ms,
        reply: Some((reply, asked_at)),
    }
}

/// Whether `reply`, asked at `asked_at`, holds the trades up to `max_age_ms` +
/// [`HOLD_SLACK_MS`] before it, by the simulator's record of that minute. `Err` when the
/// record could not be read; the inner `Err` says how the answer differs.
async fn holds_trades(
    http: &reqwest::Client,
    sim_url: &str,
    reply: &Value,
    asked_at: Millis,
    max_age_ms: Millis,
) -> anyhow::Result<Result<(), String>> {
    let due = asked_at - max_age_ms - HOLD_SLACK_MS;
    let t = Interval::M1.open_of(due);
    let (exchange, symbol) = (
        reply["exchange"].as_str().unwrap_or_default(),
        reply["symbol"].as_str().unwrap_or_default(),
    );
    let record: Value = http
        .get(format!(
            "{}/sim/trades/{exchange}",
            sim_url.trim_end_matches('/')
        ))
        .query(&[("symbol", symbol.to_string()), ("t", t.to_string())])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let candle = reply["candles"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["t"].as_i64() == Some(t)));
    Ok(judge(candle, &record, due).map_err(|how| format!("{exchange} {symbol} {t}: {how}")))
}

/// Whether `candle` (the answer's for the minute holding `due`, if it has one) holds that
/// minute's trades up to `due` and only trades that happened: it is the aggregate of the
/// record's first trades up to some moment at or after `due`. A minute without trades
/// (`"quiet"`) is answered by no candle or one without volume.
fn judge(candle: Option<&Value>, record: &Value, due: Millis) -> Result<(), String> {
    let decimal = |v: &Value| v.as_str().and_then(|s| s.parse::<Decimal>().ok());
    let quiet = record["quiet"] == true;
    let Some(candle) = candle else {
        return match quiet {
            true => Ok(()),
            false => Err("no candle".into()),
        };
    };
    let got: Vec<Option<Decimal>> = ["o", "h", "l", "c", "v"]
        .iter()
        .map(|k| decimal(&candle[k]))
        .collect();
    if quiet {
        return match got[4] == Some(Decimal::ZERO) {
            true => Ok(()),
            false => Err("volume in a minute without trades".into()),
        };
    }
    let trades: Vec<(Millis, Decimal, Decimal)> = record["trades"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tr| {
            Some((
                tr["t"].as_i64()?,
                decimal(&tr["price"])?,
                decimal(&tr["size"])?,
            ))
        })
        .collect();
    let at_least = trades.iter().filter(|(at, _, _)| *at <= due).count().max(1);
    let mut so_far: Option<[Decimal; 5]> = None;
    for (n, (_, price, size)) in trades.iter().enumerate() {
        let [o, h, l, _, v] = so_far.unwrap_or([*price, *price, *price, *price, Decimal::ZERO]);
        let now = [o, h.max(*price), l.min(*price), *price, v + size];
        so_far = Some(now);
        if n + 1 >= at_least && now.iter().map(|d| Some(*d)).eq(got.iter().copied()) {
            return Ok(());
        }
    }
    Err(format!(
        "{} (o h l c v) is not its first {at_least}+ of {} trades",
        ["o", "h", "l", "c", "v"]
            .iter()
            .map(|k| candle[k].as_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(" "),
        trades.len()
    ))
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

/// How the streams scenario asks: series per exchange (Binance, Kraken, Coinbase) and the
/// requests' `max_age_ms` (`None`: the service's default).
#[derive(Debug, Clone)]
pub struct StreamsOptions {
    pub mix: [usize; 3],
    pub max_age_ms: Option<i64>,
    /// `candlepipe.candles.watch`.
    pub watch_subject: String,
}

/// How often the watches are renewed (they last 90 s by default).
const RENEW: Duration = Duration::from_secs(30);

pub async fn run(
    client: &async_nats::Client,
    subject: &str,
    seconds: f64,
    sim_url: Option<&str>,
    options: StreamsOptions,
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
    let max_age = options.max_age_ms.unwrap_or(STREAMED_MAX_AGE_MS);
    let http = reqwest::Client::new();
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
            let (http, sim_url) = (http.clone(), sim_url.map(str::to_string));
            tasks.spawn(async move {
                let asked = ask(&client, &subject, &body).await;
                let held = match (&asked.reply, sim_url) {
                    (Some((reply, at)), Some(url)) => {
                        Some(holds_trades(&http, &url, reply, *at, max_age).await)
                    }
                    _ => None,
                };
                (asked, held)
            });
        }
        let phase = if in_warmup { &mut warmup } else { &mut steady };
        for (asked, held) in tasks.join_all().await {
            phase.requests += 1;
            phase.not_fresh += u64::from(!asked.fresh);
            phase.latencies_ms.push(asked.ms);
            *phase.outcomes.entry(asked.outcome).or_default() += 1;
            match held {
                Some(Ok(held)) => {
                    phase.checked += 1;
                    if let Err(how) = held {
                        phase.not_holding += 1;
                        if phase.examples.len() < EXAMPLES {
                            phase.examples.push(how);
                        }
                    }
                }
                Some(Err(e)) => anyhow::bail!("checking an answer against the simulator: {e:#}"),
                None => {}
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Value {
        json!({"quiet": false, "trades": [
            {"t": 0, "price": "10", "size": "1"},
            {"t": 10_000, "price": "12", "size": "2"},
            {"t": 20_000, "price": "9", "size": "0.5"},
        ]})
    }

    fn candle(o: &str, h: &str, l: &str, c: &str, v: &str) -> Value {
        json!({"t": 0, "o": o, "h": h, "l": l, "c": c, "v": v})
    }

    #[test]
    fn an_answer_holds_the_trades_up_to_due_and_only_those() {
        let two = candle("10", "12", "10", "12", "3");
        let three = candle("10.0", "12", "9", "9", "3.50");
        // Due after the second trade: two or three trades hold, one does not.
        assert_eq!(judge(Some(&two), &record(), 15_000), Ok(()));
        assert_eq!(judge(Some(&three), &record(), 15_000), Ok(()));
        assert!(judge(
            Some(&candle("10", "10", "10", "10", "1")),
            &record(),
            15_000
        )
        .is_err());
        // Due after the third: two trades are too few.
        assert!(judge(Some(&two), &record(), 25_000).is_err());
        // A volume no prefix of trades has (a trade counted twice).
        assert!(judge(
            Some(&candle("10", "12", "10", "12", "5")),
            &record(),
            15_000
        )
        .is_err());
        assert!(judge(None, &record(), 15_000).is_err());
    }

    #[test]
    fn a_minute_without_trades_is_answered_by_no_candle_or_no_volume() {
        let quiet = json!({"quiet": true, "trades": []});
        assert_eq!(judge(None, &quiet, 5_000), Ok(()));
        assert_eq!(
            judge(
                Some(&candle("7", "7", "7", "7", "0.00000000")),
                &quiet,
                5_000
            ),
            Ok(())
        );
        assert!(judge(Some(&candle("7", "7", "7", "7", "1")), &quiet, 5_000).is_err());
    }
}
