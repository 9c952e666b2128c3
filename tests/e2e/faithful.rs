//! Faithful data: candles published late, Kraken's uncommitted row and history limit,
//! Coinbase's intervals without trades, and intervals built from smaller ones, against the
//! sim's habits of the real exchanges.

use std::collections::BTreeMap;
use std::time::Duration;

use candlepipe_core::Candle;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::support::*;

const M: i64 = 60_000;
const H: i64 = 3_600_000;

fn times(candles: &[Value]) -> Vec<i64> {
    candles.iter().map(|c| c["t"].as_i64().unwrap()).collect()
}

fn candle_at(candles: &[Value], t: i64) -> Option<&Value> {
    candles.iter().find(|c| c["t"] == t)
}

/// Aggregates candles by hand into buckets of `step` from the epoch: first open, highest
/// high, lowest low, last close, summed volume.
fn by_hand(candles: &[Candle], step: i64) -> BTreeMap<i64, [Decimal; 5]> {
    let mut out: BTreeMap<i64, [Decimal; 5]> = BTreeMap::new();
    for c in candles {
        let bucket = c.t - c.t.rem_euclid(step);
        out.entry(bucket)
            .and_modify(|b| {
                b[1] = b[1].max(c.h);
                b[2] = b[2].min(c.l);
                b[3] = c.c;
                b[4] += c.v;
            })
            .or_insert([c.o, c.h, c.l, c.c, c.v]);
    }
    out
}

fn as_text(b: &[Decimal; 5]) -> [String; 5] {
    b.map(|d| d.to_string())
}

fn reply_text(c: &Value) -> [String; 5] {
    ["o", "h", "l", "c", "v"].map(|k| c[k].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_late_candle_is_asked_again_until_it_is_published() {
    let stack = stack().await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let now = into_minute(4, 40).await;
    let just_closed = now - now.rem_euclid(M) - M;
    // Coinbase has not published the candle that closed seconds ago.
    stack
        .sim
        .set_faults("coinbase", json!({"late_ms": 60_000}))
        .await;
    let latest = json!({"exchange":"coinbase","symbol":"SOL/USD","interval":"1m","limit":5});
    let first = get(&client, latest.clone()).await;
    assert!(
        !times(ok(&first)).contains(&just_closed),
        "not published yet: {first}"
    );
    assert_eq!(first["complete"], false, "{first}");
    assert_eq!(
        first["missing"],
        json!([]),
        "not known to be empty: {first}"
    );

    // Published now: the next request after max_age asks again and gets it.
    stack.sim.set_faults("coinbase", json!({})).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let second = get(&client, latest).await;
    let got = candle_at(ok(&second), just_closed).expect("the late candle");
    assert_eq!(got["closed"], true);
    assert_eq!(second["complete"], true, "{second}");

    // No hole stays behind: the closed window is served from the store from now on.
    let calls = stack.sim.requests("coinbase").await;
    let window = json!({"exchange":"coinbase","symbol":"SOL/USD","interval":"1m","limit":4,"end":just_closed});
    let closed = get(&client, window).await;
    assert_eq!(
        times(ok(&closed)),
        (0..4)
            .map(|i| just_closed - (3 - i) * M)
            .collect::<Vec<_>>()
    );
    assert_ne!(source(&closed), "exchange");
    assert_eq!(stack.sim.requests("coinbase").await, calls);
}

#[tokio::test]
async fn krakens_uncommitted_row_is_stored_open_and_replaced_when_committed() {
    let stack = stack().await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let now = into_minute(4, 45).await;
    let last_interval = now - now.rem_euclid(M) - M;
    // Kraken has not rolled over: its last row, uncommitted, is the interval that ended.
    stack
        .sim
        .set_faults("kraken", json!({"late_ms": 60_000}))
        .await;
    let latest = json!({"exchange":"kraken","symbol":"ETH/USD","interval":"1m","limit":5});
    let first = get(&client, latest.clone()).await;
    let row = candle_at(ok(&first), last_interval).expect("the uncommitted row");
    assert_eq!(row["closed"], false, "{first}");
    assert!(candle_at(ok(&first), last_interval + M).is_none());
    assert_eq!(first["complete"], false, "{first}");

    stack.sim.set_faults("kraken", json!({})).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let second = get(&client, latest).await;
    let row = candle_at(ok(&second), last_interval).expect("the committed row");
    assert_eq!(row["closed"], true, "{second}");
    assert_eq!(
        candle_at(ok(&second), last_interval + M).expect("forming")["closed"],
        false
    );
    assert_eq!(second["complete"], true, "{second}");
}

#[tokio::test]
async fn coinbase_intervals_without_trades_are_missing_or_filled_and_never_asked_again() {
    let stack = stack().await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    stack
        .sim
        .set_faults("coinbase", json!({"quiet_one_in": 4}))
        .await;
    let end = closed_end(M);
    let start = end - 59 * M;
    let window =
        json!({"exchange":"coinbase","symbol":"LTC/USD","interval":"1m","limit":60,"end":end});
    let reply = get(&client, window.clone()).await;

    let body = sim_raw(
        &stack,
        &format!(
            "/products/LTC-USD/candles?granularity=60&start={}&end={}",
            start / 1000,
            end / 1000
        ),
    )
    .await;
    let served = candlepipe_exchange::coinbase::parse(&body, i64::MAX).unwrap();
    let served_times: Vec<i64> = served.iter().map(|c| c.t).collect();
    let quiet: Vec<i64> = (0..60)
        .map(|i| start + i * M)
        .filter(|t| !served_times.contains(t))
        .collect();
    assert!(!quiet.is_empty() && quiet.len() < 40, "{quiet:?}");
    assert_eq!(times(ok(&reply)), served_times);
    assert_eq!(reply["missing"], json!(quiet));
    assert_eq!(reply["complete"], true);
    let calls = stack.sim.requests("coinbase").await;

    let mut filled_request = window.clone();
    filled_request["fill_gaps"] = json!("previous");
    let filled = get(&client, filled_request).await;
    let candles = ok(&filled);
    let leading = quiet.iter().take_while(|&&t| t < served_times[0]).count();
    assert_eq!(candles.len(), 60 - leading, "{filled}");
    let mut previous_close: Option<&Value> = None;
    for c in candles {
        let t = c["t"].as_i64().unwrap();
        if quiet.contains(&t) {
            assert_eq!(c["synthetic"], true, "{c}");
            assert_eq!(c["v"], "0");
            for k in ["o", "h", "l", "c"] {
                assert_eq!(Some(&c[k]), previous_close, "{t} {k}");
            }
        } else {
            assert!(c.get("synthetic").is_none(), "{c}");
        }
        previous_close = Some(&c["c"]);
    }
    assert_eq!(filled["missing"], json!(quiet));

    // Confirmed empty: asking again costs no exchange call.
    let again = get(&client, window).await;
    assert_eq!(again["missing"], json!(quiet));
    assert_eq!(stack.sim.requests("coinbase").await, calls);
}

#[tokio::test]
async fn unserved_intervals_are_built_exactly_from_served_ones() {
    let stack = stack().await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let now = now_ms();
    let end = (now - 2 * 86_400_000).div_euclid(12 * H) * 12 * H;

    // Coinbase serves no 4h: built from its 1h.
    let reply = get(
        &client,
        json!({"exchange":"coinbase","symbol":"BTC/USD","interval":"4h","limit":10,"end":end}),
    )
    .await;
    assert_eq!(reply["aggregated_from"], "1h", "{reply}");
    let start = end - 9 * 4 * H;
    let body = sim_raw(
        &stack,
        &format!(
            "/products/BTC-USD/candles?granularity=3600&start={}&end={}",
            start / 1000,
            (end + 3 * H) / 1000
        ),
    )
    .await;
    let hours = candlepipe_exchange::coinbase::parse(&body, i64::MAX).unwrap();
    let expected = by_hand(&hours, 4 * H);
    assert_eq!(ok(&reply).len(), 10);
    for c in ok(&reply) {
        let t = c["t"].as_i64().unwrap();
        assert_eq!(reply_text(c), as_text(&expected[&t]), "coinbase 4h at {t}");
        assert_eq!(c["closed"], true);
    }

    // Kraken serves no 12h: built from its 4h.
    let reply = get(
        &client,
        json!({"exchange":"kraken","symbol":"ETH/USD","interval":"12h","limit":10,"end":end}),
    )
    .await;
    assert_eq!(reply["aggregated_from"], "4h", "{reply}");
    let body = sim_raw(&stack, "/0/public/OHLC?pair=ETHUSD&interval=240").await;
    let fours = candlepipe_exchange::kraken::parse(&body, i64::MAX).unwrap();
    let expected = by_hand(&fours, 12 * H);
    assert_eq!(ok(&reply).len(), 10);
    for c in ok(&reply) {
        let t = c["t"].as_i64().unwrap();
        assert_eq!(reply_text(c), as_text(&expected[&t]), "kraken 12h at {t}");
    }

    // A repeat is a hit.
    let calls = stack.sim.requests("kraken").await;
    let again = get(
        &client,
        json!({"exchange":"kraken","symbol":"ETH/USD","interval":"12h","limit":10,"end":end}),
    )
    .await;
    assert_ne!(source(&again), "exchange");
    assert_eq!(again["candles"], reply["candles"]);
    assert_eq!(stack.sim.requests("kraken").await, calls);

    // The sim's own Binance 4h is its 1h aggregated, so the rule is the exchanges' rule;
    // Binance serves 4h itself, and candlepipe passes it through as it is.
    let start = end - 9 * 4 * H;
    let ones = sim_raw(
        &stack,
        &format!(
            "/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime={start}&endTime={}",
            end + 3 * H
        ),
    )
    .await;
    let fours = sim_raw(
        &stack,
        &format!("/api/v3/klines?symbol=BTCUSDT&interval=4h&startTime={start}&endTime={end}"),
    )
    .await;
    let ones = candlepipe_exchange::binance::parse(&ones, i64::MAX).unwrap();
    let fours = candlepipe_exchange::binance::parse(&fours, i64::MAX).unwrap();
    let expected = by_hand(&ones, 4 * H);
    assert_eq!(fours.len(), 10);
    for c in &fours {
        assert_eq!(
            [c.o, c.h, c.l, c.c, c.v].map(|d| d.to_string()),
            as_text(&expected[&c.t]),
            "binance 4h at {}",
            c.t
        );
    }
    let reply = get(
        &client,
        json!({"exchange":"binance","symbol":"BTC/USDT","interval":"4h","limit":10,"end":end}),
    )
    .await;
    assert!(reply.get("aggregated_from").is_none(), "{reply}");
    for (c, native) in ok(&reply).iter().zip(&fours) {
        assert_eq!(
            reply_text(c),
            [native.o, native.h, native.l, native.c, native.v].map(|d| d.to_string())
        );
    }
}

/// The simulator's Kraken `Trades` are the trades its 1m OHLC rows are made of, by Kraken's
/// own rules (those the recorded pages in `../shared/real-formats` follow): paged by `last`,
/// built into candles, they are the committed rows, quiet minutes included.
#[tokio::test]
async fn the_simulators_kraken_trades_make_its_ohlc_rows() {
    use candlepipe_exchange::kraken_trades::{self, Decimals};
    let stack = stack().await;
    stack
        .sim
        .set_faults("kraken", json!({"quiet_one_in": 5}))
        .await;
    let ohlc = sim_raw(&stack, "/0/public/OHLC?pair=XBTUSDT&interval=1").await;
    let rows: Vec<Candle> = candlepipe_exchange::kraken::parse(&ohlc, i64::MAX)
        .unwrap()
        .into_iter()
        .filter(|c| c.closed)
        .collect();
    assert!(rows.len() >= 719, "{}", rows.len());
    // The last 100 committed minutes, and a trade before them for their previous close.
    let (from, to) = (rows[rows.len() - 100].t, rows.last().unwrap().t);
    let mut since = kraken_trades::since_of(from - 2 * M);
    let mut trades = Vec::new();
    let mut pages = 0;
    while trades
        .last()
        .is_none_or(|t: &kraken_trades::Trade| t.t < to + M)
    {
        let body = sim_raw(
            &stack,
            &format!("/0/public/Trades?pair=XBTUSDT&since={since}"),
        )
        .await;
        let page = kraken_trades::parse(&body).unwrap();
        assert!(page.trades.len() <= kraken_trades::PAGE);
        if page.trades.is_empty() {
            break;
        }
        trades.extend(page.trades);
        since = page.next_since;
        pages += 1;
    }
    assert!(pages >= 1);
    let scale = rows[0].o.scale();
    let built = kraken_trades::candles(
        &trades,
        M,
        from,
        to,
        Decimals {
            price: scale,
            volume: 8,
        },
    );
    let text = |c: &Candle| {
        (
            c.t,
            [c.o, c.h, c.l, c.c, c.v, c.vwap.unwrap_or_default()].map(|d| d.to_string()),
            c.trades,
        )
    };
    let want: Vec<_> = rows.iter().filter(|c| c.t >= from).map(text).collect();
    let got: Vec<_> = built.iter().map(text).collect();
    assert_eq!(got, want);
    assert!(
        built.iter().any(|c| c.trades == Some(0)),
        "a quiet minute among them"
    );
}
