//! The gateway: the exchanges' own HTTP endpoints served from the cache. A client of the
//! exchange, pointed at candlepipe, gets exactly what the exchange (here the simulator)
//! would have given it.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

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
    let got = python(&format!(
        "import json\nfrom binance.spot import Spot\n\
         c = Spot(base_url={gw:?})\n\
         print(json.dumps(c.klines('ETHUSDT', '1h', startTime={start}, endTime={end})))"
    ))
    .await;
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
async fn ccxt_loads_binances_markets_and_candles_from_the_gateway() {
    let stack = stack().await;
    let mut worker = stack.worker(&["all"]).await;
    let gw = format!("{}/binance", worker.gateway_url().await);

    // exchangeInfo as Binance wrote it (the time apart), whole and for one symbol.
    let theirs: Value =
        serde_json::from_slice(&sim_raw(&stack, "/api/v3/exchangeInfo").await).unwrap();
    let without_time = |mut v: Value| {
        v.as_object_mut().unwrap().remove("serverTime");
        v
    };
    let info = eventually(Duration::from_secs(10), "exchangeInfo served", || async {
        let (status, body) = body(&format!("{gw}/api/v3/exchangeInfo")).await;
        (status == 200).then(|| serde_json::from_slice::<Value>(&body).unwrap())
    })
    .await;
    assert!((info["serverTime"].as_i64().unwrap() - now_ms()).abs() < 5_000);
    assert_eq!(without_time(info), without_time(theirs.clone()));
    let (status, one) = body(&format!("{gw}/api/v3/exchangeInfo?symbol=BTCUSDT")).await;
    assert_eq!(status, 200, "{}", text(&one));
    let one: Value = serde_json::from_slice(&one).unwrap();
    let btc = theirs["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["symbol"] == "BTCUSDT")
        .unwrap();
    assert_eq!(one["symbols"], serde_json::json!([btc]));
    let (status, two) = body(&format!(
        r#"{gw}/api/v3/exchangeInfo?symbols=["ETHUSDT","BTCUSDT"]"#
    ))
    .await;
    assert_eq!(status, 200, "{}", text(&two));
    let two: Value = serde_json::from_slice(&two).unwrap();
    assert_eq!(two["symbols"].as_array().unwrap().len(), 2);
    assert_eq!(
        body(&format!("{gw}/api/v3/exchangeInfo?symbol=NOPEUSDT")).await,
        (400, br#"{"code":-1121,"msg":"Invalid symbol."}"#.to_vec())
    );

    // ccxt, unchanged but for Binance's public URL (and spot markets only).
    let h = 3_600_000;
    let start = closed_end(h) - 20 * h;
    let got = python(&format!(
        "import json, ccxt\n\
         ex = ccxt.binance({{'urls': {{'api': {{'public': '{gw}/api/v3'}}}},\n\
                             'options': {{'fetchMarkets': {{'types': ['spot']}}}}}})\n\
         ex.load_markets()\n\
         first = ex.fetch_ohlcv('BTC/USDT', '1h', since={start}, limit=10)\n\
         after = ex.fetch_ohlcv('BTC/USDT', '1h', since=first[-1][0] + 1, limit=10)\n\
         print(json.dumps({{'markets': len(ex.markets), 'candles': first + after}}))"
    ))
    .await;
    assert_eq!(
        got["markets"].as_u64().unwrap() as usize,
        theirs["symbols"].as_array().unwrap().len()
    );
    let rows: Vec<Value> = serde_json::from_slice(
        &sim_raw(
            &stack,
            &format!("/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime={start}&limit=20"),
        )
        .await,
    )
    .unwrap();
    let want: Vec<Value> = rows
        .iter()
        .map(|r| {
            let n = |i: usize| serde_json::json!(r[i].as_str().unwrap().parse::<f64>().unwrap());
            serde_json::json!([r[0], n(1), n(2), n(3), n(4), n(5)])
        })
        .collect();
    assert_eq!(
        got["candles"].as_array().unwrap(),
        &want,
        "two pages of ten"
    );
}

/// A Kraken OHLC body: its result key, its rows and `last`.
fn kraken_ohlc(body: &[u8]) -> (String, Vec<Value>, Value) {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|_| panic!("{}", text(body)));
    assert_eq!(v["error"], serde_json::json!([]), "{v}");
    let result = v["result"].as_object().unwrap();
    let (key, rows) = result.iter().find(|(k, _)| *k != "last").unwrap();
    (
        key.clone(),
        rows.as_array().unwrap().clone(),
        result["last"].clone(),
    )
}

#[tokio::test]
async fn kraken_ohlc_and_asset_pairs_are_krakens_own() {
    let stack = stack().await;
    let mut worker = stack.worker(&["all"]).await;
    let gw = format!("{}/kraken", worker.gateway_url().await);

    // AssetPairs as Kraken wrote it, whole and for chosen pairs.
    let theirs = sim_raw(&stack, "/0/public/AssetPairs").await;
    let whole = eventually(Duration::from_secs(10), "AssetPairs served", || async {
        let (status, body) = body(&format!("{gw}/0/public/AssetPairs")).await;
        (status == 200 && !text(&body).contains("EService")).then_some(body)
    })
    .await;
    assert_eq!(text(&whole), text(&theirs));
    let (_, one) = body(&format!("{gw}/0/public/AssetPairs?pair=XBTUSD")).await;
    let one: Value = serde_json::from_slice(&one).unwrap();
    let all: Value = serde_json::from_slice(&theirs).unwrap();
    assert_eq!(
        one["result"],
        serde_json::json!({"XXBTZUSD": all["result"]["XXBTZUSD"]}),
        "the pair under its own key"
    );
    // Assets (ccxt loads it with the markets) as Kraken wrote it, by key or altname.
    let theirs = sim_raw(&stack, "/0/public/Assets").await;
    let whole = eventually(Duration::from_secs(10), "Assets served", || async {
        let (status, body) = body(&format!("{gw}/0/public/Assets")).await;
        (status == 200 && !text(&body).contains("EService")).then_some(body)
    })
    .await;
    assert_eq!(text(&whole), text(&theirs));
    let all: Value = serde_json::from_slice(&theirs).unwrap();
    let (_, two) = body(&format!("{gw}/0/public/Assets?asset=XBT,ZUSD")).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&two).unwrap()["result"],
        serde_json::json!({"XXBT": all["result"]["XXBT"], "ZUSD": all["result"]["ZUSD"]})
    );
    assert_eq!(
        body(&format!("{gw}/0/public/Assets?asset=NOPE")).await,
        (200, br#"{"error":["EQuery:Unknown asset"]}"#.to_vec())
    );

    // OHLC by altname or key, keyed by Kraken's key: the committed rows byte for byte.
    let h = 3_600_000i64;
    let since = (closed_end(h) - 30 * h) / 1000;
    for (pair, query) in [
        ("XBTUSD", format!("pair=XBTUSD&interval=60&since={since}")),
        (
            "XXBTZUSD",
            format!("pair=XXBTZUSD&interval=60&since={since}"),
        ),
        ("ETHUSDT", "pair=ETHUSDT&interval=5".to_string()),
    ] {
        let ours = kraken_ohlc(&body(&format!("{gw}/0/public/OHLC?{query}")).await.1);
        let theirs = kraken_ohlc(&sim_raw(&stack, &format!("/0/public/OHLC?{query}")).await);
        assert_eq!(ours.0, theirs.0, "{pair}: the result key");
        assert_eq!(ours.2, theirs.2, "{pair}: last");
        assert_eq!(ours.1.len(), theirs.1.len(), "{pair}");
        let committed = ours.1.len() - 1;
        assert_eq!(ours.1[..committed], theirs.1[..committed], "{pair}");
        assert!(committed >= 29, "{pair}: {committed}");
    }
    // Errors as Kraken's: in the body, with HTTP 200.
    for (query, error) in [
        ("pair=NOPEUSD", "EQuery:Unknown asset pair"),
        ("pair=XBTUSD&interval=7", "EGeneral:Invalid arguments"),
    ] {
        let (status, got) = body(&format!("{gw}/0/public/OHLC?{query}")).await;
        assert_eq!(status, 200);
        assert_eq!(text(&got), format!(r#"{{"error":["{error}"]}}"#), "{query}");
        let theirs = sim_raw(&stack, &format!("/0/public/OHLC?{query}")).await;
        assert_eq!(text(&got), text(&theirs), "{query}");
    }
    let (_, time) = body(&format!("{gw}/0/public/Time")).await;
    let time: Value = serde_json::from_slice(&time).unwrap();
    assert!((time["result"]["unixtime"].as_i64().unwrap() * 1000 - now_ms()).abs() < 5_000);
    assert!(
        time["result"]["rfc1123"]
            .as_str()
            .unwrap()
            .ends_with(" +0000"),
        "{time}"
    );
}

#[tokio::test]
async fn coinbase_products_and_candles_are_coinbases_own() {
    let stack = stack().await;
    let mut worker = stack.worker(&["all"]).await;
    let gw = format!("{}/coinbase", worker.gateway_url().await);

    let theirs = sim_raw(&stack, "/products").await;
    let whole = eventually(Duration::from_secs(10), "products served", || async {
        let (status, body) = body(&format!("{gw}/products")).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(text(&whole), text(&theirs));
    let all: Value = serde_json::from_slice(&theirs).unwrap();
    let btc = all
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "BTC-USD")
        .unwrap();
    let (status, one) = body(&format!("{gw}/products/BTC-USD")).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&one).unwrap(), *btc);
    // The currencies (ccxt loads them with the markets) as Coinbase wrote them.
    let theirs = sim_raw(&stack, "/currencies").await;
    let whole = eventually(Duration::from_secs(10), "currencies served", || async {
        let (status, body) = body(&format!("{gw}/currencies")).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(text(&whole), text(&theirs));
    let (status, one) = body(&format!("{gw}/currencies/BTC")).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&one).unwrap()["id"], "BTC");

    // Closed windows, newest first, byte for byte (RFC 3339 or seconds; end inclusive).
    let h = 3_600_000;
    let end = closed_end(h) / 1000;
    for query in [
        format!("granularity=3600&start={}&end={end}", end - 20 * 3600),
        format!(
            "granularity=60&start={}&end={}",
            end - 3599,
            end - 1800 + 30
        ),
        "granularity=300&start=2026-12-01T00:00:00Z&end=2026-12-01T10:00:00Z".to_string(),
    ] {
        let ours = body(&format!("{gw}/products/ETH-USD/candles?{query}")).await;
        let theirs = sim_raw(&stack, &format!("/products/ETH-USD/candles?{query}")).await;
        assert_eq!(ours.0, 200, "{query}: {}", text(&ours.1));
        assert_eq!(text(&ours.1), text(&theirs), "{query}");
        assert!(ours.1.len() > 200, "{query}");
    }
    // Errors as Coinbase's.
    for (path, status) in [
        ("/products/NOPE-USD/candles?granularity=60", 404),
        ("/products/BTC-USD/candles?granularity=120", 400),
        (
            &format!(
                "/products/BTC-USD/candles?granularity=60&start={end}&end={}",
                end - 60
            ),
            400,
        ),
        (
            &format!(
                "/products/BTC-USD/candles?granularity=60&start={}&end={end}",
                end - 400 * 60
            ),
            400,
        ),
    ] {
        let (got_status, got) = body(&format!("{gw}{path}")).await;
        let theirs = sim_raw(&stack, path).await;
        assert_eq!((got_status, text(&got)), (status, text(&theirs)), "{path}");
    }
    // Coinbase's 404 for an unknown product (the simulator serves no single product).
    assert_eq!(
        body(&format!("{gw}/products/NOPE-USD")).await,
        (404, br#"{"message":"NotFound"}"#.to_vec())
    );
    let (_, time) = body(&format!("{gw}/time")).await;
    let time: Value = serde_json::from_slice(&time).unwrap();
    assert!((time["epoch"].as_f64().unwrap() * 1000.0 - now_ms() as f64).abs() < 5_000.0);
}

#[tokio::test]
async fn ccxt_kraken_and_coinbaseexchange_get_what_a_direct_call_gets() {
    let stack = stack().await;
    let mut worker = stack.worker(&["all"]).await;
    let gw = worker.gateway_url().await;
    eventually(
        Duration::from_secs(10),
        "both currency lists at hand",
        || async {
            let kraken = body(&format!("{gw}/kraken/0/public/Assets")).await.1;
            let coinbase = body(&format!("{gw}/coinbase/currencies")).await.0;
            (!text(&kraken).contains("EService") && coinbase == 200).then_some(())
        },
    )
    .await;
    // The same script, unchanged but for the public URLs: through the gateway, then
    // straight at the exchanges (the simulator). Two pages of ten closed hours each.
    let h = 3_600_000;
    let start = closed_end(h) - 20 * h;
    let script = |kraken: &str, coinbase: &str| {
        r#"
import json, ccxt
out = {}
for name, ex in [('kraken', ccxt.kraken({'urls': {'api': {'public': 'KRAKEN'}}})),
                 ('coinbase', ccxt.coinbaseexchange({'urls': {'api': {'public': 'COINBASE'}}}))]:
    ex.load_markets()
    first = ex.fetch_ohlcv('BTC/USD', '1h', since=START, limit=10)
    after = ex.fetch_ohlcv('BTC/USD', '1h', since=first[-1][0] + 1, limit=10)
    out[name] = {'markets': len(ex.markets), 'currencies': len(ex.currencies),
                 'market': ex.market('BTC/USD')['id'], 'candles': first + after}
print(json.dumps(out))
"#
        .replace("KRAKEN", kraken)
        .replace("COINBASE", coinbase)
        .replace("START", &start.to_string())
    };
    let ours = python(&script(&format!("{gw}/kraken"), &format!("{gw}/coinbase"))).await;
    let sim = &stack.sim.url;
    let theirs = python(&script(sim, sim)).await;
    assert_eq!(ours, theirs);
    for (ex, id) in [("kraken", "XXBTZUSD"), ("coinbase", "BTC-USD")] {
        assert_eq!(ours[ex]["market"], id);
        assert_eq!(ours[ex]["markets"], 4099, "{ex}");
        assert_eq!(ours[ex]["currencies"], 2024, "{ex}");
        // Consecutive hours from `start` (ccxt's second Coinbase page ends an hour short).
        let candles = ours[ex]["candles"].as_array().unwrap();
        assert!(candles.len() >= 19, "{ex}: {}", candles.len());
        let opens: Vec<i64> = candles.iter().map(|c| c[0].as_i64().unwrap()).collect();
        let hours: Vec<i64> = (0..opens.len() as i64).map(|i| start + i * h).collect();
        assert_eq!(opens, hours, "{ex}");
    }
}

#[tokio::test]
async fn concurrent_cold_http_requests_for_one_series_make_one_exchange_call() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_STATS_FLUSH_MS", 100);
    let mut worker = stack.worker(&["all"]).await;
    let gw = format!("{}/binance", worker.gateway_url().await);
    // The market list is loaded (one call of its own) before the measurement.
    binance_list_at_hand(gw.trim_end_matches("/binance")).await;
    let before = stack.sim.requests("binance").await;
    let end = closed_end(60_000);
    let url = format!("{gw}/api/v3/klines?symbol=LINKUSDT&interval=1m&endTime={end}&limit=100");
    let http = reqwest::Client::new();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..1000 {
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
        "one exchange call for 1,000 clients"
    );
    // And only a handful of candles.get: identical requests within 250 ms share one answer.
    let asked = |v: &Value| -> u64 {
        ["l1", "redis", "exchange", "stream", "error"]
            .iter()
            .map(|k| v["requests"][k].as_u64().unwrap_or(0))
            .sum()
    };
    let stats = eventually(Duration::from_secs(5), "the requests counted", || async {
        let (_, out) = cli(&stack, &["stats", "--json"]).await;
        let v: Value = serde_json::from_str(&out).ok()?;
        (asked(&v) >= 1).then_some(v)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, out) = cli(&stack, &["stats", "--json"]).await;
    let stats: Value = serde_json::from_str(&out).unwrap_or(stats);
    assert!(asked(&stats) <= 20, "{stats}");
}
