//! Deep history: Kraken's candles older than the 720 its OHLC keeps, built from its trades
//! exactly as its OHLC writes them, within its budget.

use std::time::Duration;

use candlepipe_sim::market::{Habits, Series};
use serde_json::{json, Value};

use crate::support::*;

const M: i64 = 60_000;
const QUIET_ONE_IN: u32 = 5;

/// The simulator's Kraken 1m record of `BASE/USD` at `t`, as Kraken's OHLC writes it:
/// `[o, h, l, c, v, vwap, trades]`.
fn kraken_record(base: &str, t: i64) -> [String; 7] {
    let series = Series::new("kraken", base, "USD", M);
    let habits = Habits {
        quiet_one_in: Some(QUIET_ONE_IN),
        ..Default::default()
    };
    let c = series.kraken_row(t, now_ms(), habits).unwrap();
    let vwap = c.kraken_vwap();
    [
        c.o.to_string(),
        c.h.to_string(),
        c.l.to_string(),
        c.c.to_string(),
        c.v.to_string(),
        vwap.to_string(),
        c.trades.to_string(),
    ]
}

fn reply_values(c: &Value) -> [String; 7] {
    ["o", "h", "l", "c", "v", "vwap", "trades"].map(|k| c[k].as_str().unwrap().to_string())
}

#[tokio::test]
async fn kraken_minutes_past_its_ohlc_are_built_from_its_trades_equal_to_its_record() {
    const RPS: u64 = 10;
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_KRAKEN_RPS", RPS);
    stack
        .sim
        .set_faults("kraken", json!({"quiet_one_in": QUIET_ONE_IN}))
        .await;
    let mut worker = stack
        .worker_with(&["all"], &["--metrics-addr", "127.0.0.1:0"])
        .await;
    let metrics = worker.metrics_url().await;
    let client = stack.client().await;

    // Across the oldest row OHLC keeps: the older candles from trades, the rest from OHLC,
    // one window without a gap.
    let now = now_ms();
    let oldest = now - now.rem_euclid(M) - 720 * M;
    let end = oldest + 20 * M;
    let window =
        json!({"exchange":"kraken","symbol":"XRP/USD","interval":"1m","limit":100,"end":end});
    let reply = get(&client, window.clone()).await;
    let candles = ok(&reply);
    assert_eq!(reply["complete"], true, "{reply}");
    assert_eq!(reply["missing"], json!([]));
    assert_eq!(candles.len(), 100);
    assert_eq!(candles[0]["t"], end - 99 * M);
    for c in candles {
        let t = c["t"].as_i64().unwrap();
        assert_eq!(reply_values(c), kraken_record("XRP", t), "minute {t}");
        if t < oldest - M {
            assert_eq!(c["built_from"], "trades", "minute {t}");
        }
        if t > oldest + M {
            assert!(c.get("built_from").is_none(), "minute {t} is OHLC's");
        }
    }
    assert!(candles.iter().any(|c| c["trades"] == "0"), "quiet minutes");
    let calls = stack.sim.requests("kraken").await;
    let again = get(&client, window).await;
    assert_eq!(again["candles"], reply["candles"]);
    assert_eq!(stack.sim.requests("kraken").await, calls, "all kept");

    // Three days back: older than OHLC keeps of 1m and 5m, so no OHLC call; every minute
    // there.
    let end = now - now.rem_euclid(M) - 3 * 1440 * M;
    let reply = get(
        &client,
        json!({"exchange":"kraken","symbol":"ETH/USD","interval":"1m","limit":1000,"end":end}),
    )
    .await;
    let candles = ok(&reply);
    assert_eq!(candles.len(), 1000, "{}", reply["missing"]);
    assert_eq!(reply["complete"], true);
    for c in candles {
        let t = c["t"].as_i64().unwrap();
        assert_eq!(c["built_from"], "trades");
        assert_eq!(reply_values(c), kraken_record("ETH", t), "minute {t}");
    }
    // 5m from the same trades: its volume, count and close those of its five minutes.
    let five_end = (end - 100 * M).div_euclid(5 * M) * 5 * M;
    let five = get(
        &client,
        json!({"exchange":"kraken","symbol":"ETH/USD","interval":"5m","limit":3,"end":five_end}),
    )
    .await;
    assert_eq!(ok(&five).len(), 3, "{five}");
    for c in ok(&five) {
        assert_eq!(c["built_from"], "trades", "{five}");
        let t = c["t"].as_i64().unwrap();
        let minutes: Vec<&Value> = candles
            .iter()
            .filter(|m| (t..t + 5 * M).contains(&m["t"].as_i64().unwrap()))
            .collect();
        assert_eq!(minutes.len(), 5);
        let sum = |k: &str| -> rust_decimal::Decimal {
            minutes
                .iter()
                .map(|m| {
                    m[k].as_str()
                        .unwrap()
                        .parse::<rust_decimal::Decimal>()
                        .unwrap()
                })
                .sum()
        };
        assert_eq!(
            c["v"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap(),
            sum("v")
        );
        assert_eq!(
            c["trades"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap(),
            sum("trades")
        );
        assert_eq!(c["c"], minutes[4]["c"]);
    }
    let busiest = busiest_second(&stack.sim.stats().await, "kraken");
    assert!(busiest <= RPS, "{busiest} Kraken calls in a second");

    // Those three fills paged trades on the bulk lane; a recent window is a live job.
    let recent = get(&client, req("kraken", "XRP/USD", "1m", 5)).await;
    assert_eq!(ok(&recent).len(), 5, "{recent}");
    let text = scrape(&metrics).await;
    let jobs = |lane: &str| {
        sample(
            &text,
            &format!(r#"candlepipe_jobs_total{{disposition="ack",lane="{lane}"}}"#),
        )
    };
    assert_eq!(jobs("live"), 1.0, "{text}");
    assert!(jobs("bulk") >= 3.0, "{text}");
}

#[tokio::test]
async fn a_week_of_kraken_minutes_exports_from_trades_within_the_budget_and_resumes() {
    const RPS: u64 = 10;
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_KRAKEN_RPS", RPS);
    stack.set("CANDLEPIPE_HISTORY_CAP", 20_000);
    stack
        .sim
        .set_faults("kraken", json!({"quiet_one_in": QUIET_ONE_IN}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("week.csv");
    let until = closed_end(M);
    let since = until - (7 * 1440 - 1) * M;
    let (since_ms, until_ms) = (since.to_string(), until.to_string());
    let args = [
        "export",
        "kraken",
        "XBT/USD",
        "1m",
        "--since",
        &since_ms,
        "--until",
        &until_ms,
        "--format",
        "csv",
        "--out",
        out.to_str().unwrap(),
    ];
    let (status, stdout, stderr) = cli_output(&stack, &args).await;
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("exported 10080 candles"), "{stdout}");
    assert!(
        stdout.contains("route: kraken candles REST and trades"),
        "{stdout}"
    );
    let progress = stderr
        .lines()
        .filter(|l| l.starts_with("backfill: "))
        .count();
    assert_eq!(progress, 11, "a line per 1,000 slots: {stderr}");

    let csv = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 10_080);
    let mut trades = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let t: i64 = row[0].parse().unwrap();
        assert_eq!(t, since + i as i64 * M, "every minute, in order");
        let want = kraken_record("BTC", t);
        assert_eq!(row[2..7], want[..5], "minute {t}");
        trades.push(want[6].parse::<u64>().unwrap());
    }
    // About one Trades page per 1,000 trades, not a call per minute: at least the pages of
    // the minutes older than OHLC's 720, at most those of the whole week and a few more
    // (the OHLC call, the look back for the first close, the pages' overlaps).
    let pages = |n: u64| n.div_ceil(1000);
    let older: u64 = trades[..trades.len() - 720].iter().sum();
    let all: u64 = trades.iter().sum();
    let calls = stack.sim.requests("kraken").await;
    assert!(
        (pages(older)..=pages(all) + 12).contains(&calls),
        "{calls} Kraken calls for {older} older trades, {all} in all"
    );
    let busiest = busiest_second(&stack.sim.stats().await, "kraken");
    assert!(busiest <= RPS, "{busiest} Kraken calls in a second");

    // Again: all kept, nothing asked.
    let (status, stdout, stderr) = cli_output(&stack, &args).await;
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    assert_eq!(stack.sim.requests("kraken").await, calls);
}

/// `YYYY-MM-DD` of a time in ms.
fn day_label(t: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(t / 1000)
        .unwrap()
        .date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The simulator's REST klines of BTCUSDT 1m ending at `end` (1,000; one REST call), and
/// candlepipe's answer for the same window (from its cache): equal, field by field, as
/// text.
async fn equal_to_rest(stack: &Stack, client: &async_nats::Client, end: i64) {
    let rest: Vec<Vec<Value>> = serde_json::from_slice(
        &sim_raw(
            stack,
            &format!(
                "/api/v3/klines?symbol=BTCUSDT&interval=1m&endTime={end}&startTime={}&limit=1000",
                end - 999 * M
            ),
        )
        .await,
    )
    .unwrap();
    let reply = get(
        client,
        json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":1000,"end":end}),
    )
    .await;
    assert_eq!(source(&reply), "redis", "{}", reply["error"]);
    let got = ok(&reply);
    assert_eq!(got.len(), rest.len());
    let keys = [
        "",
        "o",
        "h",
        "l",
        "c",
        "v",
        "",
        "quote_volume",
        "trades",
        "taker_buy_base",
        "taker_buy_quote",
    ];
    for (c, row) in got.iter().zip(&rest) {
        assert_eq!(c["t"], row[0]);
        for (i, k) in keys.iter().enumerate().filter(|(_, k)| !k.is_empty()) {
            let want = match &row[i] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(c[*k].as_str().unwrap(), want, "{k} at {}", c["t"]);
        }
    }
}

#[tokio::test]
async fn a_binance_backfill_reads_the_archive_first_and_rest_only_for_what_it_lacks() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_HISTORY_CAP", 200_000);
    let now = now_ms();
    let until = closed_end(M);
    // The range's last day: today, or yesterday in the first hour of a UTC day (the newest
    // closed candle asked for is an hour old).
    let last_day = until - until.rem_euclid(1440 * M);
    // From 70 days back: a few days, at least one whole month, the days since, and the last day.
    let mut since = last_day - 70 * 1440 * M;
    if day_label(since).ends_with("-01") {
        since += 1440 * M;
    }
    let (d1, d2) = (since + 1440 * M, since + 2 * 1440 * M);
    // The whole month in the range is not published: its days' files instead.
    let month_start = {
        let d = time::OffsetDateTime::from_unix_timestamp(last_day / 1000)
            .unwrap()
            .date()
            .replace_day(1)
            .unwrap();
        let first = d.midnight().assume_utc().unix_timestamp() * 1000;
        // The month before the last day's.
        let prev = time::OffsetDateTime::from_unix_timestamp(first / 1000 - 86_400)
            .unwrap()
            .date()
            .replace_day(1)
            .unwrap();
        prev.midnight().assume_utc().unix_timestamp() * 1000
    };
    let month_label = &day_label(month_start)[..7];
    // The day before the last one is not published yet, the days before it are: files are
    // this much late (the day before the last ended at `last_day`; half a day of margin on
    // either side, whatever the hour).
    let late_ms = now - last_day + 720 * M;
    stack
        .sim
        .set_faults(
            "binance_archive",
            json!({
                "missing": [format!("BTCUSDT-1m-{month_label}"), format!("BTCUSDT-1m-{}", day_label(d1))],
                "bad_checksum": [format!("BTCUSDT-1m-{}", day_label(d2))],
                "late_ms": late_ms,
            }),
        )
        .await;
    let (since_ms, until_ms) = (since.to_string(), until.to_string());
    let args = [
        "backfill", "binance", "BTC/USDT", "1m", "--since", &since_ms, "--until", &until_ms,
    ];
    let (status, stdout, stderr) = cli_output(&stack, &args).await;
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    let slots = (until - since) / M + 1;
    assert!(
        stdout.contains(&format!("{slots} candle slots"))
            && stdout.contains("route: binance archive"),
        "{stdout}"
    );
    assert!(
        stdout.contains("4 not at hand"),
        "month, missing day, bad checksum, the day before the last: {stdout}"
    );
    // REST only for the missing day and the day after it failing its checksum (one run of
    // pages), and for the last two days (another).
    let last_day_minutes = (until - last_day) / M + 1;
    let rest_calls = 3 + (1440 + last_day_minutes + 999) / 1000;
    assert_eq!(
        stack.sim.requests("binance").await as i64,
        rest_calls,
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{rest_calls} binance calls")),
        "{stdout}"
    );

    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    for end in [
        d1 + 1200 * M,
        d2 + 1439 * M,
        since + 5 * 1440 * M,
        month_start + 3000 * M,
        // The day before the last, from REST.
        last_day - 300 * M,
    ] {
        equal_to_rest(&stack, &client, end).await;
    }
    // Five REST calls more: the comparisons' own.
    assert_eq!(
        stack.sim.requests("binance").await as i64,
        rest_calls + 5,
        "answered from the cache"
    );
}

#[tokio::test]
async fn archived_days_in_milliseconds_and_in_microseconds_read_alike() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_HISTORY_CAP", 200_000);
    // 2024-12-31 is written in ms, 2025-01-01 in µs.
    let since = 1_735_603_200_000;
    let until = since + 2 * 1440 * M - M;
    let (since_ms, until_ms) = (since.to_string(), until.to_string());
    let args = [
        "backfill", "binance", "BTC/USDT", "1m", "--since", &since_ms, "--until", &until_ms,
    ];
    let (status, stdout, stderr) = cli_output(&stack, &args).await;
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("2 archive files"), "{stdout}");
    assert_eq!(stack.sim.requests("binance").await, 0, "no klines call");
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    equal_to_rest(&stack, &client, since + 1200 * M).await;
    equal_to_rest(&stack, &client, until).await;
    // The two REST calls are the comparisons' own.
    assert_eq!(
        stack.sim.requests("binance").await,
        2,
        "answered from the cache"
    );
}

/// Binance's archive is another host than its REST API (data.binance.vision): while the
/// simulator builds archive files (a month of 1m klines written, deflated and hashed), its
/// REST API still answers at once. Were the files built on the runtime's workers, a backfill
/// would hold up every cold request beside it, and the benchmark of live requests beside a
/// backfill would measure the simulator.
#[tokio::test]
async fn the_simulator_answers_rest_while_it_builds_archive_files() {
    let sim = candlepipe_testkit::Sim::start(BIN).await;
    let http = reqwest::Client::new();
    // More months at once than the simulator's runtime has workers on this machine.
    let building: Vec<_> = ["2025-09", "2025-10", "2025-11", "2025-12"]
        .into_iter()
        .map(|month| {
            let url = format!(
                "{}/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-{month}.zip",
                sim.url
            );
            let http = http.clone();
            tokio::spawn(async move {
                let reply = http.get(url).send().await.expect("archive");
                assert_eq!(reply.status(), 200);
                reply.bytes().await.expect("archive body").len()
            })
        })
        .collect();
    // The four requests are in the simulator before the REST one.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let klines = http
        .get(format!(
            "{}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=5",
            sim.url
        ))
        .send()
        .await
        .expect("klines");
    assert_eq!(klines.status(), 200);
    let rows: Vec<Value> = klines.json().await.expect("klines body");
    assert_eq!(rows.len(), 5);
    let unfinished = building.iter().filter(|b| !b.is_finished()).count();
    assert_eq!(unfinished, 4, "REST waited for archive files to be built");
    for b in building {
        assert!(b.await.expect("archive task") > 100_000, "a month's zip");
    }
}
