//! Live candles from the exchanges' WebSockets (the sim's streams): watched series are
//! published on their live subjects, answered from cache with `"source":"stream"`, and
//! cost no REST call after the first load but confirmations of candles built from trades
//! (Coinbase).

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use candlepipe_core::Interval;

use crate::support::*;

const M: i64 = 60_000;
const EXCHANGES: [&str; 3] = ["binance", "kraken", "coinbase"];

async fn request(client: &async_nats::Client, subject: &str, body: Value) -> Value {
    let msg = client
        .request(subject.to_string(), Bytes::from(body.to_string()))
        .await
        .expect("a reply");
    serde_json::from_slice(&msg.payload).expect("json")
}

async fn watch(
    client: &async_nats::Client,
    exchange: &str,
    symbol: &str,
    interval: &str,
) -> String {
    let reply = request(
        client,
        "candlepipe.candles.watch",
        json!({"exchange": exchange, "symbol": symbol, "interval": interval}),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    reply["subject"].as_str().unwrap().to_string()
}

async fn next_candle(live: &mut async_nats::Subscriber) -> Value {
    let msg = tokio::time::timeout(Duration::from_secs(15), live.next())
        .await
        .expect("a live candle in time")
        .expect("subscription open");
    serde_json::from_slice(&msg.payload).expect("candle json")
}

#[tokio::test]
async fn watched_series_are_live_and_served_from_the_stream_without_rest_calls() {
    let stack = stack().await;
    for ex in EXCHANGES {
        stack
            .sim
            .set_faults(ex, json!({"stream_tick_ms": 200}))
            .await;
    }
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;

    for (exchange, symbol) in [
        ("binance", "ETH/USDT"),
        ("kraken", "ETH/USD"),
        ("coinbase", "ETH/USD"),
    ] {
        let subject = watch(&client, exchange, symbol, "1m").await;
        assert_eq!(
            subject,
            format!(
                "candlepipe.candles.live.{exchange}.{}.1m",
                symbol.replace('/', "-")
            )
        );
        let mut live = client.subscribe(subject).await.unwrap();
        // Kraken's snapshot brings recent candles first; then the forming one comes.
        let forming = loop {
            let candle = next_candle(&mut live).await;
            assert!(
                candle["o"].is_string() && candle["closed"].is_boolean(),
                "{candle}"
            );
            if candle["closed"] == false {
                break candle;
            }
        };
        let now = now_ms();
        let t = forming["t"].as_i64().unwrap();
        assert!(
            t == now - now.rem_euclid(M) || t == now - now.rem_euclid(M) - M,
            "{forming}"
        );

        // The first request loads the window from REST; then the stream keeps it fresh.
        let latest = json!({"exchange": exchange, "symbol": symbol, "interval": "1m", "limit": 10, "max_age_ms": 2000});
        let first = get(&client, latest.clone()).await;
        assert_eq!(ok(&first).len(), 10, "{first}");
        // Away from a minute's close, which Coinbase's REST confirms.
        into_minute(10, 45).await;
        let calls = stack.sim.requests(exchange).await;
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let reply = get(&client, latest.clone()).await;
            assert_eq!(source(&reply), "stream", "{exchange}: {reply}");
            let candles = ok(&reply);
            let now = now_ms();
            let newest = candles.last().unwrap()["t"].as_i64().unwrap();
            assert!(now - newest < M + 3_000, "{exchange}: fresh: {reply}");
        }
        assert_eq!(
            stack.sim.requests(exchange).await,
            calls,
            "{exchange}: no REST call while the stream is healthy"
        );
    }

    // What cannot be streamed says so: an interval built from a smaller one.
    let refused = request(
        &client,
        "candlepipe.candles.watch",
        json!({"exchange":"coinbase","symbol":"BTC/USD","interval":"4h"}),
    )
    .await;
    assert_eq!(
        refused["error"]["code"], "unsupported_interval",
        "{refused}"
    );
    let refused = request(
        &client,
        "candlepipe.candles.watch",
        json!({"exchange":"binance","symbol":"NOPE/USDT","interval":"1m"}),
    )
    .await;
    assert_eq!(refused["error"]["code"], "unknown_symbol", "{refused}");
}

/// The series store as the workers read it.
async fn store(stack: &Stack) -> candlepipe_store::SeriesStore {
    let conn = redis::aio::ConnectionManager::new(redis::Client::open(stack.redis.url()).unwrap())
        .await
        .unwrap();
    candlepipe_store::SeriesStore::new(
        candlepipe_store::Redis::Single(conn),
        candlepipe_store::Keyring::new("k1", candlepipe_testkit::TEST_HMAC_KEY.as_bytes()),
        "cp:",
        10_000,
    )
}

/// The sim's REST candles of a window, parsed as candlepipe parses them.
async fn rest_candles(
    stack: &Stack,
    exchange: &str,
    symbol: &str,
    from: i64,
    to: i64,
) -> Vec<candlepipe_core::Candle> {
    let (base, quote) = symbol.split_once('/').unwrap();
    match exchange {
        "binance" => {
            let body = sim_raw(
                stack,
                &format!("/api/v3/klines?symbol={base}{quote}&interval=1m&startTime={from}&endTime={to}&limit=1000"),
            )
            .await;
            candlepipe_exchange::binance::parse(&body, i64::MAX).unwrap()
        }
        "coinbase" => {
            let body = sim_raw(
                stack,
                &format!(
                    "/products/{base}-{quote}/candles?granularity=60&start={}&end={}",
                    from / 1000,
                    to / 1000
                ),
            )
            .await;
            let mut candles = candlepipe_exchange::coinbase::parse(&body, i64::MAX).unwrap();
            candles.sort_by_key(|c| c.t);
            candles
        }
        _ => {
            let pair = format!("{base}{quote}");
            let body = sim_raw(
                stack,
                &format!(
                    "/0/public/OHLC?pair={pair}&interval=1&since={}",
                    from / 1000 - 1
                ),
            )
            .await;
            candlepipe_exchange::kraken::parse(&body, i64::MAX)
                .unwrap()
                .into_iter()
                .filter(|c| c.t >= from && c.t <= to)
                .collect()
        }
    }
}

fn text(c: &candlepipe_core::Candle) -> [String; 5] {
    [c.o, c.h, c.l, c.c, c.v].map(|d| d.to_string())
}

/// Streams a series on each exchange, breaks their connections with `fault` late in a
/// minute, and checks after the next minute's close: every candle the store holds for good
/// is the sim's REST candle, and a closed window is whole, in order, without duplicates.
async fn a_fault_leaves_no_hole_and_no_wrong_candle(fault: &str) {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_STREAM_SILENCE_MS", "2000");
    for ex in EXCHANGES {
        stack
            .sim
            .set_faults(ex, json!({"stream_tick_ms": 200}))
            .await;
    }
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let series = [
        ("binance", "SOL/USDT"),
        ("kraken", "SOL/USD"),
        ("coinbase", "SOL/USD"),
    ];
    for (ex, sym) in series {
        let subject = watch(&client, ex, sym, "1m").await;
        let mut live = client.subscribe(subject).await.unwrap();
        next_candle(&mut live).await;
        let first = get(
            &client,
            json!({"exchange": ex, "symbol": sym, "interval": "1m", "limit": 30}),
        )
        .await;
        assert_eq!(ok(&first).len(), 30, "{first}");
    }
    into_minute(35, 45).await;
    for ex in EXCHANGES {
        stack
            .sim
            .set_faults(ex, json!({"stream_tick_ms": 200, "stream_fault": fault}))
            .await;
    }
    // The minute closes while the fault lasts.
    into_minute(10, 25).await;
    let store = store(&stack).await;
    // Within seconds, and before the next minute closes, the store holds every window for
    // good by itself (nobody asks for it).
    let key = |ex: &str, sym: &str| {
        candlepipe_core::SeriesKey::new(
            candlepipe_core::Exchange::parse(ex).unwrap(),
            candlepipe_core::Symbol::parse(sym).unwrap(),
            candlepipe_core::Interval::M1,
        )
    };
    let window = || {
        let now = now_ms();
        let last_closed = now - now.rem_euclid(M) - M;
        (last_closed - 29 * M, last_closed)
    };
    eventually(
        Duration::from_secs(15),
        "the windows held for good",
        || async {
            let (from, to) = window();
            for (ex, sym) in series {
                let read = store.read(&key(ex, sym), from, to).await.ok()??;
                if !read.state.coverage.contains(from, to) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    for (ex, sym) in series {
        let s = candlepipe_core::SeriesKey::new(
            candlepipe_core::Exchange::parse(ex).unwrap(),
            candlepipe_core::Symbol::parse(sym).unwrap(),
            candlepipe_core::Interval::M1,
        );
        let now = now_ms();
        let last_closed = now - now.rem_euclid(M) - M;
        let from = last_closed - 29 * M;
        let rest = rest_candles(&stack, ex, sym, from, last_closed).await;
        let read = store.read(&s, from, last_closed).await.unwrap().unwrap();
        assert!(
            read.state.coverage.contains(from, last_closed),
            "{ex} {fault}: the store has the window for good before anyone asks: {:?}",
            read.state.coverage.ranges()
        );
        let times: Vec<i64> = read.candles.iter().map(|c| c.t).collect();
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "{ex} {fault}: ascending, no duplicates"
        );
        for c in &read.candles {
            if read.state.coverage.covers(c.t) {
                let want = rest
                    .iter()
                    .find(|r| r.t == c.t)
                    .unwrap_or_else(|| panic!("{ex} {fault}: {} not in REST", c.t));
                // REST's record as REST wrote it; a close only the stream confirmed (built
                // from Coinbase's trades, awaiting REST's confirmation) equal in value.
                let shown = |c: &candlepipe_core::Candle| match read.state.is_record(c.t) {
                    true => text(c),
                    false => text(c).map(|v| {
                        v.parse::<rust_decimal::Decimal>()
                            .unwrap()
                            .normalize()
                            .to_string()
                    }),
                };
                assert_eq!(
                    shown(c),
                    shown(want),
                    "{ex} {fault}: stored for good at {}",
                    c.t
                );
                assert!(c.closed, "{ex} {fault}: covered means closed at {}", c.t);
            }
        }
        // Asked as a producer would: whole, closed, exactly REST's.
        let window = get(
            &client,
            json!({"exchange": ex, "symbol": sym, "interval": "1m", "limit": 30, "end": last_closed}),
        )
        .await;
        let got = ok(&window);
        assert_eq!(got.len(), 30, "{ex} {fault}: {window}");
        assert_eq!(rest.len(), 30);
        for (c, r) in got.iter().zip(&rest) {
            assert_eq!(c["t"], r.t);
            assert_eq!(c["closed"], true, "{ex} {fault}: {c}");
            let values: [String; 5] =
                ["o", "h", "l", "c", "v"].map(|k| c[k].as_str().unwrap().to_string());
            assert_eq!(values, text(r), "{ex} {fault} at {}", r.t);
        }
    }
}

#[tokio::test]
async fn a_dropped_connection_leaves_no_hole_and_no_wrong_candle() {
    a_fault_leaves_no_hole_and_no_wrong_candle("drop").await;
}

#[tokio::test]
async fn a_silent_connection_leaves_no_hole_and_no_wrong_candle() {
    a_fault_leaves_no_hole_and_no_wrong_candle("silent").await;
}

#[tokio::test]
async fn a_skipped_closing_update_leaves_no_hole_and_no_wrong_candle() {
    a_fault_leaves_no_hole_and_no_wrong_candle("skip_close").await;
}

#[tokio::test]
async fn a_server_shutdown_leaves_no_hole_and_no_wrong_candle() {
    a_fault_leaves_no_hole_and_no_wrong_candle("server_shutdown").await;
}

#[tokio::test]
async fn lost_trades_leave_no_hole_and_no_wrong_candle() {
    a_fault_leaves_no_hole_and_no_wrong_candle("lose_trades").await;
}

/// Who holds each streamed series: member → holder.
async fn holders(stack: &Stack) -> std::collections::BTreeMap<String, String> {
    let mut conn = stack.redis_conn().await;
    let all: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg("cp:stream:{live}:leases")
        .query_async(&mut conn)
        .await
        .unwrap();
    all.into_iter()
        .map(|(k, v)| (k, v.split('|').next().unwrap_or_default().to_string()))
        .collect()
}

#[tokio::test]
async fn another_stream_worker_takes_over_within_10_s_and_the_gap_is_back_filled() {
    let stack = stack().await;
    for ex in EXCHANGES {
        stack
            .sim
            .set_faults(ex, json!({"stream_tick_ms": 200}))
            .await;
    }
    let _workers = stack.worker(&["ingest", "fill"]).await;
    let mut first = Some(stack.worker(&["stream"]).await);
    let second = stack.worker(&["stream"]).await;
    let client = stack.client().await;
    let series = [
        ("binance", "ADA/USDT"),
        ("kraken", "ADA/USD"),
        ("coinbase", "ADA/USD"),
    ];
    let mut lives = Vec::new();
    for (ex, sym) in series {
        let subject = watch(&client, ex, sym, "1m").await;
        let mut live = client.subscribe(subject).await.unwrap();
        next_candle(&mut live).await;
        let loaded = get(
            &client,
            json!({"exchange": ex, "symbol": sym, "interval": "1m", "limit": 20}),
        )
        .await;
        assert_eq!(ok(&loaded).len(), 20);
        lives.push(live);
    }
    // Kill the holder just before a minute ends, so that the close passes while nobody holds.
    let held = holders(&stack).await;
    assert_eq!(held.len(), 3, "{held:?}");
    let holder_pid = |holder: &str| holder.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
    let pids: Vec<u32> = held.values().filter_map(|h| holder_pid(h)).collect();
    let first_pid = first.as_ref().unwrap().child.pid();
    let (victim, survivor_pid) = if pids.contains(&first_pid) {
        (first.take().unwrap(), second.child.pid())
    } else {
        // The second holds them: the roles are symmetric, so kill the second instead.
        drop(first.take());
        (second, first_pid)
    };
    into_minute(55, 58).await;
    let killed_at = std::time::Instant::now();
    drop(victim); // SIGKILL
    for live in &mut lives {
        // Drain what came before the kill.
        while tokio::time::timeout(Duration::from_millis(50), live.next())
            .await
            .is_ok()
        {}
    }
    for (live, (ex, _)) in lives.iter_mut().zip(series) {
        next_candle(live).await;
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "{ex}: live again after {:?}",
            killed_at.elapsed()
        );
    }
    let held = holders(&stack).await;
    assert!(
        held.values().all(|h| holder_pid(h) == Some(survivor_pid)),
        "the survivor holds every series: {held:?}"
    );
    // The close that passed while nobody held is back-filled: the store is whole.
    into_minute(8, 20).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let store = store(&stack).await;
    for (ex, sym) in series {
        let s = candlepipe_core::SeriesKey::new(
            candlepipe_core::Exchange::parse(ex).unwrap(),
            candlepipe_core::Symbol::parse(sym).unwrap(),
            candlepipe_core::Interval::M1,
        );
        let now = now_ms();
        let last_closed = now - now.rem_euclid(M) - M;
        let read = store
            .read(&s, last_closed - 5 * M, last_closed)
            .await
            .unwrap()
            .unwrap();
        assert!(
            read.state
                .coverage
                .contains(last_closed - 5 * M, last_closed),
            "{ex}: whole after the takeover: {:?}",
            read.state.coverage.ranges()
        );
        let rest = rest_candles(&stack, ex, sym, last_closed - 5 * M, last_closed).await;
        assert_eq!(
            read.candles.iter().map(text).collect::<Vec<_>>(),
            rest.iter().map(text).collect::<Vec<_>>(),
            "{ex}"
        );
    }
}

#[tokio::test]
async fn three_hundred_hot_series_stay_fresh_from_the_streams_without_rest_calls() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_STREAM_HOT_PER_MINUTE", "3");
    let _worker = stack.worker(&["all"]).await;
    // A minute boundary falls in the measured minute: the hardest moment for freshness.
    let (status, out, err) = cli_output(
        &stack,
        &[
            "bench",
            "--scenario",
            "streams",
            "--duration",
            "60",
            "--sim-url",
            &stack.sim.url,
        ],
    )
    .await;
    assert_eq!(status, Some(0), "{err}");
    let report: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let steady = &report["steady"];
    let requests = steady["requests"].as_u64().unwrap();
    assert!(requests >= 300 * 60, "{report}");
    // From the stream, but for the minute each Coinbase series closed just before its
    // subscription: REST's record of it is final only a publishing delay (60 s) after its
    // close, when the stream no longer vouches for it, and a request then asks REST once.
    let outcomes = steady["outcomes"].as_object().unwrap();
    let from_rest = outcomes
        .get("exchange")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    assert_eq!(
        outcomes["stream"].as_u64().unwrap() + from_rest,
        requests,
        "{report}"
    );
    assert!(from_rest <= 2 * 100, "{report}");
    assert_eq!(steady["not_fresh"], 0, "{report}");
    // No REST call once streaming, but confirmations of the closes that are not the
    // exchange's own record (Kraken's, Coinbase's built from trades), in batches.
    let calls = &steady["rest_calls"];
    assert_eq!(calls["binance"], 0, "{report}");
    // (Coinbase: also the record of the minute before each subscription, above.)
    for (ex, before) in [("kraken", 0), ("coinbase", 100)] {
        let confirmations = calls[ex].as_u64().unwrap();
        let most = report["confirmations_at_most"][ex].as_u64().unwrap();
        assert!(confirmations <= most + before, "{ex}: {report}");
    }
    // The warm-up loads each series from REST once or twice before the stream takes it.
    let warm = &report["warmup"]["rest_calls"];
    assert!(warm["binance"].as_u64().unwrap() <= 3 * 100, "{report}");
    assert_eq!(report["warmup"]["not_fresh"], 0, "{report}");
}

/// The sim's Coinbase candle opening at `t` as REST has it now (`None`: no trade yet).
/// Values compared as numbers (REST trims the volume's zeros, a sum of trades keeps them).
async fn coinbase_rest_candle(stack: &Stack, symbol: &str, t: i64) -> Option<[String; 5]> {
    rest_candles(stack, "coinbase", symbol, t, t)
        .await
        .first()
        .map(|c| [c.o, c.h, c.l, c.c, c.v].map(|d| d.normalize().to_string()))
}

fn reply_text(c: &Value) -> [String; 5] {
    ["o", "h", "l", "c", "v"].map(|k| {
        let d: rust_decimal::Decimal = c[k].as_str().unwrap().parse().unwrap();
        d.normalize().to_string()
    })
}

/// Coinbase's candles are built from its trades: the minute a watch starts in is REST's
/// forming candle merged with the trades after it, and after lost trades (a `trade_id`
/// jump the heartbeat reveals) the forming candle is seeded again. Checked between two of
/// the sim's trades (every 10 s), when REST's forming candle is exactly what traded.
#[tokio::test]
async fn coinbase_candles_from_trades_equal_rest_after_the_seed_and_after_lost_trades() {
    let stack = stack().await;
    stack
        .sim
        .set_faults("coinbase", json!({"stream_tick_ms": 200}))
        .await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let symbol = "XRP/USD";
    let latest = json!({"exchange": "coinbase", "symbol": symbol, "interval": "1m", "limit": 3, "max_age_ms": 2000});
    let forming = |reply: &Value| ok(reply).last().cloned().unwrap();

    into_minute(21, 25).await;
    let subject = watch(&client, "coinbase", symbol, "1m").await;
    let mut live = client.subscribe(subject).await.unwrap();
    // The seed hands on the minute before, whole, then the forming one.
    let first = loop {
        let c = next_candle(&mut live).await;
        if c["closed"] == false {
            break c;
        }
        assert_eq!(
            c["t"].as_i64().unwrap(),
            Interval::M1.open_of(now_ms()) - M,
            "{c}"
        );
    };
    let t = first["t"].as_i64().unwrap();
    assert_eq!(t, Interval::M1.open_of(now_ms()), "{first}");
    assert_eq!(
        Some(reply_text(&first)),
        coinbase_rest_candle(&stack, symbol, t).await,
        "seeded from REST: {first}"
    );
    // The window is loaded once; from then on the stream keeps it.
    assert_eq!(ok(&get(&client, latest.clone()).await).len(), 3);

    // The trades of the next 12 s are lost: the one at :10 at least.
    into_minute(4, 7).await;
    stack
        .sim
        .set_faults(
            "coinbase",
            json!({"stream_tick_ms": 200, "stream_fault": "lose_trades"}),
        )
        .await;
    into_minute(33, 38).await;
    let reply = get(&client, latest.clone()).await;
    assert_eq!(source(&reply), "stream", "{reply}");
    let now = now_ms();
    let c = forming(&reply);
    assert_eq!(c["t"], Interval::M1.open_of(now), "{reply}");
    assert_eq!(
        Some(reply_text(&c)),
        coinbase_rest_candle(&stack, symbol, Interval::M1.open_of(now)).await,
        "seeded again after the lost trades: {reply}"
    );
}

/// The minute a Coinbase watch starts in holds every trade once: the trades before the
/// feed's first come from REST's trades, up to the feed's `last_match`, not from REST's
/// forming candle, which lags Coinbase's trades (here by 15 s: a seed taken from it would
/// lose the trades between the lag and the subscription, or count twice those after).
#[tokio::test]
async fn the_first_coinbase_minute_of_a_watch_holds_every_trade_once() {
    let stack = stack().await;
    stack
        .sim
        .set_faults(
            "coinbase",
            json!({"stream_tick_ms": 200, "candles_lag_ms": 15000}),
        )
        .await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let symbol = "LTC/USD";
    let mut live = client
        .subscribe("candlepipe.candles.live.coinbase.LTC-USD.1m")
        .await
        .unwrap();
    // The sim trades every 10 s: those at :10 and :20 are inside the lag at the watch.
    into_minute(25, 29).await;
    watch(&client, "coinbase", symbol, "1m").await;
    let t = Interval::M1.open_of(now_ms());
    let close = loop {
        let c = next_candle(&mut live).await;
        if c["t"] == t && c["closed"] == true {
            break c;
        }
    };
    assert_eq!(close["confirmed"], false, "{close}");
    // REST's record of that minute, once its candles hold every trade.
    let settled = t + M + 15_000 + 1_000;
    tokio::time::sleep(Duration::from_millis((settled - now_ms()).max(0) as u64)).await;
    assert_eq!(
        Some(reply_text(&close)),
        coinbase_rest_candle(&stack, symbol, t).await,
        "{close}"
    );
}

/// A watch asked in MessagePack names a subject where the changes come in MessagePack; the
/// JSON subject keeps JSON.
#[tokio::test]
async fn a_msgpack_watch_gets_msgpack_live_candles() {
    let stack = stack().await;
    stack
        .sim
        .set_faults("binance", json!({"stream_tick_ms": 200}))
        .await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "application/msgpack");
    let body = rmp_serde::to_vec_named(&candlepipe_core::watch::WatchRequest {
        exchange: "binance".into(),
        symbol: "BNB/USDT".into(),
        interval: "1m".into(),
    })
    .unwrap();
    let reply = client
        .send_request(
            "candlepipe.candles.watch",
            async_nats::Request::new()
                .payload(Bytes::from(body))
                .headers(headers),
        )
        .await
        .expect("a reply");
    let reply: candlepipe_core::watch::WatchReply =
        rmp_serde::from_slice(&reply.payload).expect("a msgpack reply");
    assert_eq!(
        reply.subject,
        "candlepipe.candles.live.binance.BNB-USDT.1m.msgpack"
    );
    let mut packed = client.subscribe(reply.subject).await.unwrap();
    let mut json_live = client
        .subscribe("candlepipe.candles.live.binance.BNB-USDT.1m")
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(15), packed.next())
        .await
        .expect("a msgpack candle in time")
        .unwrap();
    assert_eq!(
        msg.headers
            .as_ref()
            .and_then(|h| h.get("Content-Type"))
            .map(|v| v.as_str()),
        Some("application/msgpack")
    );
    let candle: candlepipe_core::Candle = rmp_serde::from_slice(&msg.payload).expect("a candle");
    assert!(candle.t >= Interval::M1.open_of(now_ms()) - M, "{candle:?}");
    let as_json = next_candle(&mut json_live).await;
    assert!(as_json["o"].is_string(), "{as_json}");
}

/// The first load of a streamed series can land seconds after a close, when the minute that
/// just closed does not count as closed yet, while the stream began after that close: then
/// nobody confirms that minute until a producer asks again. The stream's next close finds
/// the hole before it and asks REST, so the store is whole without any request. (The test
/// writes that first load itself, to have it at the right moment every time.)
#[tokio::test]
async fn a_candle_closed_just_before_the_first_load_is_confirmed_without_a_request() {
    let stack = stack().await;
    stack
        .sim
        .set_faults("binance", json!({"stream_tick_ms": 200}))
        .await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let series = candlepipe_core::SeriesKey::new(
        candlepipe_core::Exchange::Binance,
        candlepipe_core::Symbol::parse("ATOM/USDT").unwrap(),
        Interval::M1,
    );
    // The stream starts after a close: it never sees that minute close.
    let started = into_minute(5, 40).await;
    let subject = watch(&client, "binance", "ATOM/USDT", "1m").await;
    let mut live = client.subscribe(subject).await.unwrap();
    next_candle(&mut live).await;
    // The first load: closed minutes confirmed up to the one before, that one only asked.
    let just_closed = Interval::M1.open_of(started) - M;
    let from = just_closed - 9 * M;
    let rest = rest_candles(&stack, "binance", "ATOM/USDT", from, just_closed).await;
    let store = store(&stack).await;
    let first_load = candlepipe_core::Fetched {
        candles: rest,
        covered: vec![(from, just_closed - M)],
        unconfirmed: vec![just_closed],
        ..Default::default()
    };
    store.write(&series, &first_load, now_ms()).await.unwrap();
    // The next close, then REST's answer for the hole.
    loop {
        let c = next_candle(&mut live).await;
        if c["closed"] == true && c["t"].as_i64().unwrap() > just_closed {
            break;
        }
    }
    eventually(Duration::from_secs(15), "the hole confirmed", || async {
        let read = store.read(&series, from, just_closed).await.ok()??;
        read.state
            .coverage
            .contains(from, just_closed)
            .then_some(())
    })
    .await;
}

/// Asks `request` until the stream answers it (the series taken up: a lease, a
/// subscription, its snapshot), failing at `by`.
async fn until_streamed(client: &async_nats::Client, request: Value, by: tokio::time::Instant) {
    while source(&get(client, request.clone()).await) != "stream" {
        assert!(
            tokio::time::Instant::now() < by,
            "streamed in time: {request}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Whether the sim's Kraken `BASE/USD` has no trade in the minute opening at `t`, with one
/// quiet minute in `one_in`.
fn kraken_quiet(base: &str, t: i64, one_in: u32) -> bool {
    let series = candlepipe_sim::market::Series::new("kraken", base, "USD", M);
    let habits = candlepipe_sim::market::Habits {
        quiet_one_in: Some(one_in),
        ..Default::default()
    };
    series.quiet(t, habits)
}

#[tokio::test]
async fn a_quiet_kraken_pair_is_answered_from_the_stream_while_its_connection_talks() {
    // Kraken sends a pair's update only when it trades, and a heartbeat only when the whole
    // connection is silent: a quiet pair beside trading ones gets neither, yet every
    // message on the connection proves it had no trade.
    let stack = stack().await;
    stack
        .sim
        .set_faults("kraken", json!({"quiet_one_in": 2, "stream_tick_ms": 200}))
        .await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    into_minute(2, 10).await;
    let minute = Interval::M1.open_of(now_ms());
    // Every listed base: two of each kind among them in any minute (half are quiet).
    let bases = [
        "BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "LTC", "DOT", "AVAX", "LINK", "ATOM",
        "TRX", "MATIC", "UNI", "XLM", "BCH", "ETC", "FIL", "NEAR",
    ];
    let quiet: Vec<&str> = bases
        .iter()
        .copied()
        .filter(|b| kraken_quiet(b, minute, 2))
        .take(2)
        .collect();
    let trading: Vec<&str> = bases
        .iter()
        .copied()
        .filter(|b| !kraken_quiet(b, minute, 2))
        .take(2)
        .collect();
    assert_eq!((quiet.len(), trading.len()), (2, 2), "pairs of both kinds");
    let symbols: Vec<String> = quiet
        .iter()
        .chain(&trading)
        .map(|b| format!("{b}/USD"))
        .collect();
    for symbol in &symbols {
        watch(&client, "kraken", symbol, "1m").await;
        let first = get(
            &client,
            json!({"exchange":"kraken","symbol":symbol,"interval":"1m","limit":10}),
        )
        .await;
        assert_eq!(ok(&first).len(), 10, "{first}");
    }
    // The stream takes the series up (a lease, a subscription, its snapshot), then answers.
    // At the default max_age_ms (3 s for a streamed series).
    let ask =
        |symbol: &String| json!({"exchange":"kraken","symbol":symbol,"interval":"1m","limit":10});
    let taken_up = tokio::time::Instant::now() + Duration::from_secs(30);
    for symbol in &symbols {
        until_streamed(&client, ask(symbol), taken_up).await;
    }
    let asked_before = stack.sim.queries("kraken").await.len();
    let mut sources: std::collections::BTreeMap<String, u32> = Default::default();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        for symbol in &symbols {
            let reply = get(&client, ask(symbol)).await;
            assert_eq!(source(&reply), "stream", "{symbol}: {reply}");
            assert_eq!(reply["stale"], false, "{reply}");
            *sources.entry(symbol.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        Interval::M1.open_of(now_ms()),
        minute,
        "measured within one minute"
    );
    // REST is asked only for its record of the minute that just closed (a confirmation, at
    // most one per series), never to answer.
    let asked = stack.sim.queries("kraken").await;
    let asked = &asked[asked_before.min(asked.len())..];
    let last_close_since = ((minute - 60_000) / 1000 - 1).to_string();
    let answering: Vec<&String> = asked
        .iter()
        .filter(|q| query_param(q, "since").as_deref() != Some(last_close_since.as_str()))
        .collect();
    assert!(
        answering.is_empty() && asked.len() <= symbols.len(),
        "no REST call to answer quiet or trading pairs: {sources:?}; asked {asked:?} in minute {minute}"
    );
}

#[tokio::test]
async fn binance_at_its_real_two_second_cadence_answers_from_the_stream_at_the_default_max_age() {
    let stack = stack().await;
    stack
        .sim
        .set_faults("binance", json!({"stream_tick_ms": 2000}))
        .await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    into_minute(2, 10).await;
    let minute = Interval::M1.open_of(now_ms());
    let latest = json!({"exchange":"binance","symbol":"SOL/USDT","interval":"1m","limit":10});
    watch(&client, "binance", "SOL/USDT", "1m").await;
    assert_eq!(ok(&get(&client, latest.clone()).await).len(), 10);
    until_streamed(
        &client,
        latest.clone(),
        tokio::time::Instant::now() + Duration::from_secs(30),
    )
    .await;
    let calls = stack.sim.requests("binance").await;
    // Spread over the 2 s cadence: half of these would find the last push over 1 s old.
    for i in 0..12 {
        tokio::time::sleep(Duration::from_millis(650 + 10 * i)).await;
        let reply = get(&client, latest.clone()).await;
        assert_eq!(source(&reply), "stream", "{reply}");
        assert_eq!(reply["stale"], false, "{reply}");
    }
    assert_eq!(
        Interval::M1.open_of(now_ms()),
        minute,
        "measured within one minute"
    );
    assert_eq!(stack.sim.requests("binance").await, calls);
}

#[tokio::test]
async fn a_refused_product_affects_only_itself() {
    // Kraken refuses each symbol of a subscribe on its own; Coinbase's `error` (without an
    // id) refuses the whole subscribe and names the product. Either way the other series
    // of the same request go live, and the connection stays.
    let stack = stack().await;
    for (ex, native) in [("kraken", "XRP/USD"), ("coinbase", "XRP-USD")] {
        stack
            .sim
            .set_faults(
                ex,
                json!({"stream_refuse": [native], "stream_tick_ms": 200}),
            )
            .await;
    }
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    for ex in ["kraken", "coinbase"] {
        let mut lives = Vec::new();
        // Watched together, so that the three share one subscribe.
        for symbol in ["XRP/USD", "BTC/USD", "ETH/USD"] {
            let subject = watch(&client, ex, symbol, "1m").await;
            lives.push(client.subscribe(subject).await.unwrap());
        }
        for live in &mut lives[1..] {
            let candle = next_candle(live).await;
            assert!(candle["t"].is_i64(), "{ex}: {candle}");
        }
    }
    // Past the 10 s a subscribe may wait for its answer: no connection was replaced.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let stats = stack.sim.stats().await;
    for ex in ["kraken", "coinbase"] {
        assert_eq!(stats[ex]["stream_connections"], 1, "{ex}: {stats}");
    }
}

/// A close published from the stream that differs from REST's record is published again
/// once REST confirms it, so the last candle published for each open time is the record:
/// `confirmed:false` first (built from trades), then `confirmed:true` with `revised:true`.
/// REST confirms Kraken's closes the same way (its stream alone is not the record): the
/// close is republished `confirmed:true` and stored as REST's record. Confirmations wait
/// for each exchange's publishing delay (shortened here) and come in batches, at most once
/// an interval per series.
#[tokio::test]
async fn closes_that_differ_from_rest_are_published_again_as_the_record() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_COINBASE_PUBLISH_DELAY_MS", "15000");
    stack.set("CANDLEPIPE_KRAKEN_PUBLISH_DELAY_MS", "5000");
    // The feed doubles every trade's size: every built minute has too much volume.
    stack
        .sim
        .set_faults(
            "coinbase",
            json!({"stream_tick_ms": 200, "stream_differs": true}),
        )
        .await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let symbol = "SOL/USD";
    let subject = format!(
        "candlepipe.candles.live.coinbase.{}.1m",
        symbol.replace('/', "-")
    );
    let mut live = client.subscribe(subject.clone()).await.unwrap();
    let pair = "ETH/USD";
    let kraken_subject = "candlepipe.candles.live.kraken.ETH-USD.1m".to_string();
    let mut kraken_live = client.subscribe(kraken_subject.clone()).await.unwrap();
    assert_eq!(watch(&client, "coinbase", symbol, "1m").await, subject);
    assert_eq!(watch(&client, "kraken", pair, "1m").await, kraken_subject);
    // Watches lapse unless renewed (90 s); this test runs longer.
    let renewing = {
        let client = client.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                watch(&client, "coinbase", "SOL/USD", "1m").await;
                watch(&client, "kraken", "ETH/USD", "1m").await;
            }
        })
    };
    // Kraken's closes as published, in order: (t, confirmed, revised).
    let (stop_kraken, mut stopped_kraken) = tokio::sync::oneshot::channel::<()>();
    let kraken_closes = tokio::spawn(async move {
        let mut closes = Vec::new();
        loop {
            let msg = tokio::select! {
                Some(msg) = kraken_live.next() => msg,
                _ = &mut stopped_kraken => break,
            };
            let c: Value = serde_json::from_slice(&msg.payload).unwrap();
            if c["closed"] == true {
                closes.push((c["t"].as_i64().unwrap(), c.clone()));
            }
        }
        closes
    });
    // Until a built close has been revised (the first full minute at the latest: its
    // close, the publishing delay, the confirmation a period after the first close, REST's
    // answer), and a little more.
    let deadline = now_ms() + 220_000;
    let mut stop_at: Option<i64> = None;
    let mut last: std::collections::BTreeMap<i64, Value> = Default::default();
    let mut unconfirmed_seen = std::collections::BTreeSet::new();
    let mut revised_seen = std::collections::BTreeSet::new();
    while stop_at.is_none_or(|at| now_ms() < at) {
        assert!(
            now_ms() < deadline,
            "no built close revised in time: {last:?}"
        );
        let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(2), live.next()).await else {
            continue;
        };
        let c: Value = serde_json::from_slice(&msg.payload).unwrap();
        let t = c["t"].as_i64().unwrap();
        if c["closed"] == true {
            match (&c["confirmed"], &c["revised"]) {
                (Value::Bool(false), _) => {
                    unconfirmed_seen.insert(t);
                }
                (Value::Bool(true), Value::Bool(true)) => {
                    assert!(
                        unconfirmed_seen.contains(&t),
                        "revised after unconfirmed: {c}"
                    );
                    revised_seen.insert(t);
                    stop_at.get_or_insert(now_ms() + 10_000);
                }
                (Value::Bool(true), _) => {}
                _ => panic!("a closed live candle says whether it is confirmed: {c}"),
            }
        } else {
            assert!(c.get("confirmed").is_none(), "{c}");
        }
        last.insert(t, c);
    }
    let stopped = now_ms();
    // Every close old enough to have been confirmed (delay, a period, the job), and every
    // revised one, ends as the record.
    let settled: Vec<i64> = last
        .iter()
        .filter(|(t, c)| {
            c["closed"] == true && (revised_seen.contains(*t) || **t + 2 * M + 25_000 < stopped)
        })
        .map(|(t, _)| *t)
        .collect();
    assert!(!settled.is_empty(), "{last:?}");
    for t in &settled {
        let c = &last[t];
        assert_eq!(
            c["confirmed"], true,
            "the last word on {t} is the record: {c}"
        );
        assert_eq!(
            Some(reply_text(c)),
            coinbase_rest_candle(&stack, symbol, *t).await,
            "{c}"
        );
    }

    // Kraken: a close published unconfirmed, then confirmed by REST, equal to it.
    renewing.abort();
    let _ = stop_kraken.send(());
    let closes = kraken_closes.await.unwrap();
    let confirmed: Vec<&(i64, Value)> = closes
        .iter()
        .filter(|(_, c)| c["confirmed"] == true)
        .collect();
    assert!(
        !confirmed.is_empty(),
        "a Kraken close confirmed: {closes:?}"
    );
    let rest = rest_candles(&stack, "kraken", pair, confirmed[0].0, confirmed[0].0).await;
    for (t, c) in &confirmed {
        assert!(
            closes
                .iter()
                .any(|(u, c)| u == t && c["confirmed"] == false),
            "published unconfirmed first: {closes:?}"
        );
        assert_ne!(c["revised"], true, "the stream's close was REST's: {c}");
    }
    let t = confirmed[0].0;
    assert_eq!(
        Some(reply_text(&confirmed[0].1)),
        rest.first()
            .map(|c| [c.o, c.h, c.l, c.c, c.v].map(|d| d.normalize().to_string())),
        "{closes:?}"
    );
    let series = candlepipe_core::SeriesKey::new(
        candlepipe_core::Exchange::Kraken,
        candlepipe_core::Symbol::parse(pair).unwrap(),
        Interval::M1,
    );
    let read = store(&stack)
        .await
        .read(&series, t, t)
        .await
        .unwrap()
        .unwrap();
    assert!(
        read.state.is_record(t),
        "stored as REST's record: {:?}",
        read.state
    );
}
