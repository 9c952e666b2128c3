//! The request path: tiers, coalescing, shared series and incremental sync.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn first_from_exchange_then_l1_then_redis_after_restart() {
    let stack = stack().await;
    let mut worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    // A daily series with a generous max_age: all three requests see the same fetch.
    let request = json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1d","limit":30,"max_age_ms":3_600_000});

    let first = get(&client, request.clone()).await;
    assert_eq!(source(&first), "exchange");
    assert_eq!(ok(&first).len(), 30);
    let second = get(&client, request.clone()).await;
    assert_eq!(source(&second), "l1");

    worker.child.signal("TERM");
    assert_eq!(
        worker.child.wait_exit(Duration::from_secs(15)).await,
        Some(0),
        "SIGTERM drains and exits 0"
    );
    let _worker = stack.worker(&["ingest"]).await;
    let third = get(&client, request.clone()).await;
    assert_eq!(source(&third), "redis");
    // A Redis hit loads L1 in the background: the next requests are L1 hits.
    let mut fourth = get(&client, request.clone()).await;
    for _ in 0..50 {
        if source(&fourth) == "l1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        fourth = get(&client, request.clone()).await;
    }
    assert_eq!(
        source(&fourth),
        "l1",
        "L1 was not loaded after the Redis hit"
    );

    assert_eq!(ok(&first), ok(&second));
    assert_eq!(ok(&first), ok(&third));
    assert_eq!(ok(&first), ok(&fourth));
    assert_eq!(stack.sim.requests("binance").await, 1);
    let candles = ok(&first);
    let ts: Vec<i64> = candles.iter().map(|c| c["t"].as_i64().unwrap()).collect();
    assert!(
        ts.windows(2).all(|w| w[1] - w[0] == 86_400_000),
        "ascending and contiguous: {ts:?}"
    );
    assert_eq!(candles.last().unwrap()["closed"], false);
    assert!(candles[..29].iter().all(|c| c["closed"] == true));
}

#[tokio::test]
async fn a_thousand_concurrent_cold_requests_through_three_ingests_make_one_exchange_request() {
    let stack = stack().await;
    let _fill = stack.worker(&["fill"]).await;
    let _ingest = [
        stack.worker(&["ingest"]).await,
        stack.worker(&["ingest"]).await,
        stack.worker(&["ingest"]).await,
    ];
    let client = stack.client().await;
    let request = json!({"exchange":"binance","symbol":"ETH/USDT","interval":"5m","limit":100,"max_age_ms":60_000});

    let mut set = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (client, request) = (client.clone(), request.clone());
        set.spawn(async move { get(&client, request).await });
    }
    let mut sources = std::collections::BTreeMap::new();
    while let Some(reply) = set.join_next().await {
        let reply = reply.expect("task");
        assert_eq!(ok(&reply).len(), 100);
        *sources.entry(source(&reply).to_string()).or_insert(0) += 1;
    }
    assert_eq!(sources.values().sum::<i32>(), 1000, "{sources:?}");
    assert_eq!(
        stack.sim.requests("binance").await,
        1,
        "sources: {sources:?}"
    );
}

#[tokio::test]
async fn smaller_limits_share_the_series_and_refreshes_ask_only_for_new_candles() {
    let stack = stack().await;
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;

    // Latest candles: limit 50 after limit 200 costs nothing.
    let big = get(&client, json!({"exchange":"kraken","symbol":"ETH/USD","interval":"1d","limit":200,"max_age_ms":3_600_000})).await;
    assert_eq!(ok(&big).len(), 200);
    let small = get(&client, json!({"exchange":"kraken","symbol":"ETH/USD","interval":"1d","limit":50,"max_age_ms":3_600_000})).await;
    assert_eq!(ok(&small)[..], ok(&big)[150..]);
    assert_eq!(stack.sim.requests("kraken").await, 1);

    // A window of closed candles, then a smaller window inside it.
    let end = closed_end(60_000);
    let wide = get(
        &client,
        json!({"exchange":"binance","symbol":"SOL/USDT","interval":"1m","limit":200,"end":end}),
    )
    .await;
    assert_eq!(ok(&wide).len(), 200);
    assert_eq!(ok(&wide).last().unwrap()["t"], end);
    let narrow = get(&client, json!({"exchange":"binance","symbol":"SOL/USDT","interval":"1m","limit":50,"end":end - 60_000})).await;
    assert_eq!(ok(&narrow)[..], ok(&wide)[149..199]);
    assert_eq!(stack.sim.requests("binance").await, 1);

    // Incremental sync: a refresh starts at the first candle that was not yet closed.
    let latest =
        json!({"exchange":"binance","symbol":"BNB/USDT","interval":"1m","limit":20,"max_age_ms":0});
    let first = get(&client, latest.clone()).await;
    let first_open = ok(&first)
        .iter()
        .find(|c| c["closed"] == false)
        .and_then(|c| c["t"].as_i64())
        .expect("the newest candle is open");
    let before = stack.sim.queries("binance").await.len();
    let second = get(&client, latest).await;
    assert_eq!(source(&second), "exchange");
    let queries = stack.sim.queries("binance").await;
    assert_eq!(
        queries.len(),
        before + 1,
        "one refresh request: {queries:?}"
    );
    let refresh = queries.last().unwrap();
    assert_eq!(
        query_param(refresh, "startTime"),
        Some(first_open.to_string()),
        "{refresh}"
    );
    assert_eq!(query_param(refresh, "symbol").as_deref(), Some("BNBUSDT"));
}

/// A cold miss is answered as its write lands in Redis: the write script announces it on
/// the store's channel, so the ingest need not wait for the fill's `ready` on NATS. Here the
/// fill's NATS user may not publish `ready` at all, and the miss is answered all the same,
/// from the values the write carried on that channel (no read of the series after it).
#[tokio::test]
async fn a_cold_miss_is_answered_as_its_write_lands_in_redis() {
    use futures::StreamExt;
    let conf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        conf.path(),
        r#"authorization { users: [
            { user: all, password: a },
            { user: fill, password: f, permissions: { publish: { deny: ["candlepipe.candles.ready.>"] } } }
        ] }"#,
    )
    .unwrap();
    let nats = candlepipe_testkit::NatsServer::start_with(&["-c", conf.path().to_str().unwrap()]);
    let port = nats.port;
    let mut stack = Stack::start_with(BIN, nats, candlepipe_testkit::RedisServer::start()).await;
    let everyone = format!("nats://all:a@127.0.0.1:{port}");
    stack.set("CANDLEPIPE_NATS_URL", &everyone);
    let mut ingest = stack
        .worker_with(&["ingest"], &["--metrics-addr", "127.0.0.1:0"])
        .await;
    stack.set(
        "CANDLEPIPE_NATS_URL",
        format!("nats://fill:f@127.0.0.1:{port}"),
    );
    let _fill = stack.worker(&["fill"]).await;
    let client = async_nats::ConnectOptions::with_user_and_password("all".into(), "a".into())
        .connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let mut ready = client
        .subscribe("candlepipe.candles.ready.>")
        .await
        .unwrap();
    client.flush().await.unwrap();

    for (symbol, limit) in [("BTC/USDT", 5), ("ETH/USDT", 300)] {
        let reply = get(&client, req("binance", symbol, "1m", limit)).await;
        assert_eq!(source(&reply), "exchange", "{reply}");
        assert_eq!(ok(&reply).len(), limit as usize);
    }
    // No `ready` reached NATS (this client heard every one there was): the server refused
    // the fill's.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), ready.next())
            .await
            .is_err(),
        "a ready event was published"
    );
    // Each answered from the values its write carried, without reading the series back.
    let metrics = scrape(&ingest.metrics_url().await).await;
    let read = |from| {
        sample(
            &metrics,
            &format!("candlepipe_fill_writes_read_total{{from=\"{from}\"}}"),
        )
    };
    assert_eq!((read("signal"), read("redis")), (2.0, 0.0), "{metrics}");
}

/// A miss of a window none of which this ingest's L1 copy of the series covers is taken for
/// a cold one: its job is admitted in the same round trip as the Redis read. When another
/// process filled the window meanwhile, the read answers and the admission goes back: the
/// exchange is not asked again and no live job is left waiting.
#[tokio::test]
async fn a_new_window_of_a_series_in_l1_is_admitted_alongside_its_read() {
    let mut stack = stack().await;
    // Every admission finds its turn free at once (the exchange's turns 1 ms apart).
    stack.set("CANDLEPIPE_BINANCE_RPS", 1000);
    let mut worker = stack
        .worker_with(&["ingest", "fill"], &["--metrics-addr", "127.0.0.1:0"])
        .await;
    let url = worker.metrics_url().await;
    let client = stack.client().await;
    let step = 60_000;
    let end = closed_end(step) - 3_000 * step;
    let window = |end: i64| json!({"exchange":"binance","symbol":"TEST7/USDT","interval":"1m","limit":100,"end":end});
    let counts = || async {
        let m = scrape(&url).await;
        let ahead = |o: &str| outcome(&m, "candlepipe_admissions_ahead_total", o);
        let calls = sample(
            &m,
            r#"candlepipe_exchange_requests_total{exchange="binance",outcome="ok"}"#,
        );
        (ahead("used"), ahead("released"), calls)
    };

    // A series never seen: admitted ahead, and the admission used.
    assert_eq!(source(&get(&client, window(end)).await), "exchange");
    let (used, released, calls) = counts().await;
    assert_eq!((used, released), (1.0, 0.0));
    // An older window of the series L1 now holds: admitted ahead as well.
    let older = end - 1_000 * step;
    let reply = get(&client, window(older)).await;
    assert_eq!(source(&reply), "exchange", "{reply}");
    assert_eq!(ok(&reply).len(), 100);
    assert_eq!(counts().await, (2.0, 0.0, calls + 1.0));

    // A third window filled by a job no producer of this ingest asked for (as another
    // ingest's would be): this ingest's L1 does not know of it.
    let oldest = older - 1_000 * step;
    let js = async_nats::jetstream::new(client.clone());
    let job = json!({"series":{"exchange":"binance","symbol":"TEST7/USDT","interval":"1m"},
                     "from": oldest - 99 * step, "to": oldest, "includes_open": false,
                     "fresh_after": 0});
    js.publish("candlepipe.jobs.fill.binance.bulk", job.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the job's exchange request",
        || async { (counts().await.2 == calls + 2.0).then_some(()) },
    )
    .await;
    let reply = get(&client, window(oldest)).await;
    assert_eq!(source(&reply), "redis", "{reply}");
    assert_eq!(ok(&reply).len(), 100);
    assert_eq!(counts().await, (2.0, 1.0, calls + 2.0));
    // The two cold misses' jobs carried the turns their admissions took; the released
    // admission gave its turn back.
    let m = scrape(&url).await;
    let turns = |o: &str| outcome(&m, "candlepipe_admission_turns_total", o);
    assert_eq!((turns("sent"), turns("given_back")), (2.0, 1.0), "{m}");
    // The admission went back: no live job waits, so bulk work may run.
    let redis = stack.redis_conn().await;
    eventually(Duration::from_secs(5), "an empty waiting set", || async {
        let waiting: u64 = redis::cmd("ZCARD")
            .arg("cp:rl:{binance}:waiting")
            .query_async(&mut redis.clone())
            .await
            .ok()?;
        (waiting == 0).then_some(())
    })
    .await;
}

/// A Redis user without pub/sub channels (Redis 7's default for a new ACL user) costs the
/// signal, not the write: the ingest answers on the fill's `ready` event, and the data is
/// stored.
#[tokio::test]
async fn without_redis_channels_a_cold_miss_is_answered_on_ready() {
    let redis = candlepipe_testkit::RedisServer::start_with(&[
        "--user", "default", "off", "--user", "cp", "on", ">cp-pw", "~*", "+@all",
    ]);
    let redis_port = redis.port;
    let mut stack = Stack::start_with(BIN, candlepipe_testkit::NatsServer::start(), redis).await;
    stack.set(
        "CANDLEPIPE_REDIS_URL",
        format!("redis://cp:cp-pw@127.0.0.1:{redis_port}"),
    );
    let mut worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    // Closed candles only, so that the next process has nothing to refetch.
    let request = json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":5,
                         "end": closed_end(60_000)});
    let reply = get(&client, request.clone()).await;
    assert_eq!(source(&reply), "exchange", "{reply}");
    assert_eq!(ok(&reply).len(), 5);
    let heard = worker
        .child
        .output()
        .into_iter()
        .filter(|l| l.contains("cannot hear fill writes on Redis"))
        .count();
    assert!(
        heard >= 1,
        "the ingest says why it hears no writes on Redis"
    );
    // Stored: the next process reads it from Redis.
    worker.child.signal("TERM");
    assert_eq!(
        worker.child.wait_exit(Duration::from_secs(15)).await,
        Some(0)
    );
    let _worker = stack.worker(&["all"]).await;
    let again = get(&client, request).await;
    assert_eq!(source(&again), "redis", "{again}");
    assert_eq!(ok(&again), ok(&reply));
}

/// The sim's arrival times (ms) of the exchange's requests, oldest first.
fn arrivals(stats: &serde_json::Value, exchange: &str) -> Vec<i64> {
    stats[exchange]["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["t"].as_i64())
        .collect()
}

/// A cold miss whose admission found its exchange's turn free took it: the fill sends the
/// job's request on that turn, beside its lock and stored state, and takes no second one
/// (with four requests a second, the next miss's request goes out 250 ms later, not 500).
#[tokio::test]
async fn a_cold_miss_requests_on_the_turn_its_admission_took_and_takes_no_other() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_BINANCE_RPS", 4);
    let mut worker = stack
        .worker_with(&["ingest", "fill"], &["--metrics-addr", "127.0.0.1:0"])
        .await;
    let url = worker.metrics_url().await;
    let client = stack.client().await;
    // Past the turns the market list took at start (its weight): the budget's time (µs)
    // no later than Redis's.
    let redis = stack.redis_conn().await;
    eventually(Duration::from_secs(15), "a free budget", || async {
        let mut r = redis.clone();
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut r).await.ok()?;
        let tat: Option<i64> = redis::cmd("GET")
            .arg("cp:rl:{binance}")
            .query_async(&mut r)
            .await
            .ok()?;
        (tat.unwrap_or(0) <= secs * 1_000_000 + micros).then_some(())
    })
    .await;
    for symbol in ["TEST901/USDT", "TEST902/USDT"] {
        let reply = get(&client, req("binance", symbol, "1m", 100)).await;
        assert_eq!(source(&reply), "exchange", "{reply}");
        assert_eq!(ok(&reply).len(), 100);
    }
    let stats = stack.sim.stats().await;
    assert_eq!(stats["binance"]["requests"], 2, "one request per miss");
    let times = arrivals(&stats, "binance");
    let gap = times[times.len() - 1] - times[times.len() - 2];
    assert!((200..400).contains(&gap), "requests {gap} ms apart");

    let m = scrape(&url).await;
    let n = |name: &str, o: &str| outcome(&m, name, o);
    // The first miss's admission took the free turn; the second's found it taken.
    assert_eq!(n("candlepipe_admission_turns_total", "sent"), 1.0, "{m}");
    assert_eq!(n("candlepipe_admission_turns_total", "given_back"), 0.0);
    assert_eq!(n("candlepipe_fill_admitted_turns_total", "adopted"), 1.0);
    assert_eq!(n("candlepipe_fill_early_requests_total", "used"), 1.0);
    assert_eq!(n("candlepipe_fill_early_requests_total", "unneeded"), 0.0);
}

/// A turn taken with the admission is used only soon after (100 ms): a job that waited for
/// a fill worker longer takes a turn of its own, and is served all the same.
#[tokio::test]
async fn a_job_that_waited_for_a_fill_worker_takes_a_turn_of_its_own() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_BINANCE_RPS", 1000);
    // The job stream and the fill consumer exist, as a fill worker left them.
    let mut first = stack.worker(&["fill"]).await;
    first.child.signal("TERM");
    assert_eq!(
        first.child.wait_exit(Duration::from_secs(15)).await,
        Some(0)
    );
    let _ingest = stack.worker(&["ingest"]).await;
    let client = stack.client().await;
    let asked = tokio::spawn({
        let client = client.clone();
        async move {
            let mut request = req("binance", "TEST903/USDT", "1m", 100);
            request["timeout_ms"] = json!(25_000);
            let body = serde_json::to_vec(&request).unwrap();
            request_within(&client, body, Duration::from_secs(30)).await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut fill = stack
        .worker_with(&["fill"], &["--metrics-addr", "127.0.0.1:0"])
        .await;
    let reply = asked.await.unwrap();
    assert_eq!(source(&reply), "exchange", "{reply}");
    assert_eq!(ok(&reply).len(), 100);
    let m = scrape(&fill.metrics_url().await).await;
    let n = |name: &str, o: &str| outcome(&m, name, o);
    assert_eq!(
        n("candlepipe_fill_admitted_turns_total", "lapsed"),
        1.0,
        "{m}"
    );
    assert_eq!(n("candlepipe_fill_admitted_turns_total", "adopted"), 0.0);
    assert_eq!(n("candlepipe_fill_early_requests_total", "used"), 0.0);
    assert_eq!(stack.sim.stats().await["binance"]["requests"], 1);

    // A miss that must be fetched after a moment still to come (the forming candle, no
    // older than now) is admitted without a turn: none lapses unused.
    let mut latest = req("binance", "TEST904/USDT", "1m", 100);
    latest["max_age_ms"] = json!(0);
    let reply = get(&client, latest).await;
    assert_eq!(source(&reply), "exchange", "{reply}");
    let m = scrape(&fill.metrics_url().await).await;
    let n = |name: &str, o: &str| outcome(&m, name, o);
    assert_eq!(
        n("candlepipe_fill_admitted_turns_total", "lapsed"),
        1.0,
        "{m}"
    );
    assert_eq!(n("candlepipe_fill_admitted_turns_total", "adopted"), 0.0);
}
