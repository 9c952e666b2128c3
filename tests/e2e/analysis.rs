//! `candlepipe.analysis.run`, `candlepipe.jobs.analyze` and the LLM stage: per-symbol
//! errors, usage and cost against the sim's own counts, the cluster budget, the cache, the
//! canary ramp and rollback.

use std::time::Duration;

use bytes::Bytes;
use candlepipe_indicators::{ema, rsi};
use candlepipe_store::{Keyring, Records, Redis};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::support::*;

/// The next answer on an async job's reply subject: its `Candlepipe-Job-Id` and body.
async fn next_answer(replies: &mut async_nats::Subscriber) -> (String, Value) {
    let msg = tokio::time::timeout(Duration::from_secs(30), replies.next())
        .await
        .expect("an answer on the reply subject")
        .expect("subscription open");
    let id = msg
        .headers
        .as_ref()
        .and_then(|h| h.get("Candlepipe-Job-Id"))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default();
    (
        id,
        serde_json::from_slice(&msg.payload).expect("answer is JSON"),
    )
}

fn portfolio(symbols: &[String], llm: bool) -> Value {
    json!({"exchange":"binance","symbols":symbols,"interval":"1h","lookback":200,"llm":llm})
}

/// `n` simulated symbols from `TEST<base>/USDT` on (each a series nothing else uses).
fn symbols(base: usize, n: usize) -> Vec<String> {
    (base..base + n).map(|i| format!("TEST{i}/USDT")).collect()
}

/// The signed values the workers keep in Redis, read as they read them.
async fn records(stack: &Stack) -> Records {
    let conn = redis::aio::ConnectionManager::new(redis::Client::open(stack.redis.url()).unwrap())
        .await
        .unwrap();
    Records::new(
        Redis::Single(conn),
        Keyring::new("k1", candlepipe_testkit::TEST_HMAC_KEY.as_bytes()),
        "cp:",
    )
}

/// The sim LLM's counters: (chat requests, prompt tokens, completion tokens).
async fn llm_counts(stack: &Stack) -> (u64, u64, u64) {
    let s = stack.sim.stats().await;
    let n = |k: &str| s["llm"][k].as_u64().unwrap_or(0);
    (n("requests"), n("prompt_tokens"), n("completion_tokens"))
}

fn with_llm(stack: &mut Stack) {
    let url = stack.sim.url.clone();
    stack.set("CANDLEPIPE_LLM_URL", url);
    stack.set("CANDLEPIPE_LLM_MODEL", "sim-small");
    stack.set("CANDLEPIPE_LLM_API_KEY", "sk-test-never-logged");
    stack.set("CANDLEPIPE_LLM_RPM", 6000);
    stack.set("CANDLEPIPE_LLM_TPM", 10_000_000);
}

#[tokio::test]
async fn a_portfolio_with_an_unknown_symbol_gives_seven_results_and_one_error() {
    let stack = stack().await;
    let _w = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let names = [
        "BTC/USDT",
        "ETH/USDT",
        "SOL/USDT",
        "BNB/USDT",
        "XRP/USDT",
        "ADA/USDT",
        "DOGE/USDT",
        "NOPE/USDT",
    ];
    let reply = analyze(
        &client,
        json!({"exchange":"binance","symbols":names,"interval":"1h"}),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let results = reply["results"].as_object().unwrap();
    assert_eq!(results.len(), 7, "{reply}");
    assert_eq!(reply["errors"].as_object().unwrap().len(), 1);
    assert_eq!(reply["errors"]["NOPE/USDT"]["code"], "unknown_symbol");
    for (name, r) in results {
        assert_eq!(r["candles"], 200, "{name}: the default lookback");
        let rsi14 = r["rsi14"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&rsi14), "{name}: {rsi14}");
        assert!(["buy", "sell", "hold"].contains(&r["signal"].as_str().unwrap()));
        assert!(["bullish", "bearish", "neutral"].contains(&r["trend"].as_str().unwrap()));
        assert!(
            r["commentary"].is_null() && r["llm"].is_null(),
            "llm was not asked for"
        );
    }
    assert_eq!(reply["usage"]["cost_usd"], 0.0);

    // The numbers are the indicators of exactly the candles candles.get serves.
    let candles = get(&client, req("binance", "BTC/USDT", "1h", 200)).await;
    let candles = ok(&candles);
    let btc = &results["BTC/USDT"];
    if candles.last().unwrap()["t"] == btc["last_t"] {
        let closes: Vec<f64> = candles
            .iter()
            .map(|c| c["c"].as_str().unwrap().parse().unwrap())
            .collect();
        let expect_rsi = (rsi(&closes, 14).last().unwrap() * 100.0).round() / 100.0;
        assert_eq!(btc["rsi14"].as_f64().unwrap(), expect_rsi);
        let scale = candles.last().unwrap()["c"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .map_or(0, str::len)
            .clamp(2, 8);
        assert_eq!(
            btc["ema20"].as_str().unwrap(),
            format!("{:.scale$}", ema(&closes, 20).last().unwrap())
        );
        assert_eq!(btc["last_close"], candles.last().unwrap()["c"]);
    }

    // Analysis reads through the cache: asking again costs the exchange nothing.
    let before = stack.sim.requests("binance").await;
    let again = analyze(
        &client,
        json!({"exchange":"binance","symbols":names[..7],"interval":"1h"}),
    )
    .await;
    assert_eq!(again["results"].as_object().unwrap().len(), 7);
    assert_eq!(stack.sim.requests("binance").await, before);

    // Whole-request errors are typed too.
    let bad = analyze(
        &client,
        json!({"exchange":"binance","symbols":["BTC/USDT"],"lookback":0}),
    )
    .await;
    assert_eq!(code(&bad), "limit_out_of_range");
    let bad = analyze(&client, json!({"exchange":"binance","symbols":"BTC/USDT"})).await;
    assert_eq!(code(&bad), "bad_request");
}

#[tokio::test]
async fn llm_tokens_and_cost_match_the_sim_and_a_cached_answer_costs_nothing() {
    let mut stack = stack().await;
    with_llm(&mut stack);
    stack.set("CANDLEPIPE_LLM_PRICES", "sim-small=1.5:6");
    let mut w = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let names = symbols(100, 3);

    let reply = analyze(&client, portfolio(&names, true)).await;
    let (calls, prompt, completion) = llm_counts(&stack).await;
    assert_eq!(calls, 3, "{reply}");
    assert_eq!(reply["usage"]["prompt_tokens"], prompt);
    assert_eq!(reply["usage"]["completion_tokens"], completion);
    let cost = (prompt as f64 * 1.5 + completion as f64 * 6.0) / 1e6;
    assert!(
        (reply["usage"]["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-12,
        "{reply}"
    );
    for name in &names {
        let r = &reply["results"][name];
        assert!(
            r["commentary"].as_str().unwrap().contains(name.as_str()),
            "{r}"
        );
        assert_eq!(r["llm"]["provider"], "primary");
        assert_eq!(r["llm"]["model"], "sim-small");
        assert_eq!(r["llm"]["cached"], false);
    }

    // Cached until the candle closes: the same analysis costs nothing and calls nobody.
    let again = analyze(&client, portfolio(&names, true)).await;
    assert_eq!(llm_counts(&stack).await.0, 3);
    assert_eq!(again["usage"]["cost_usd"], 0.0);
    assert_eq!(again["usage"]["prompt_tokens"], 0);
    for name in &names {
        assert_eq!(again["results"][name]["llm"]["cached"], true);
        assert_eq!(
            again["results"][name]["commentary"],
            reply["results"][name]["commentary"]
        );
    }

    // An answer that is not the JSON asked for gets one repair; both calls are paid for.
    stack
        .sim
        .set_faults("llm", json!({"fault":{"mode":"malformed","times":1}}))
        .await;
    let repaired = analyze(&client, portfolio(&symbols(200, 1), true)).await;
    let r = &repaired["results"]["TEST200/USDT"];
    assert!(r["commentary"].is_string(), "{r}");
    let (calls, prompt2, completion2) = llm_counts(&stack).await;
    assert_eq!(calls, 5, "the answer and its repair");
    assert_eq!(r["llm"]["prompt_tokens"], prompt2 - prompt);
    assert_eq!(r["llm"]["completion_tokens"], completion2 - completion);

    // Two bad answers: no commentary, the numbers still come, and `llm` says why.
    stack
        .sim
        .set_faults("llm", json!({"fault":{"mode":"malformed"}}))
        .await;
    let failed = analyze(&client, portfolio(&symbols(300, 1), true)).await;
    let r = &failed["results"]["TEST300/USDT"];
    assert!(r["commentary"].is_null() && r["rsi14"].is_number(), "{r}");
    assert_eq!(r["llm"]["error"], "invalid_output");
    assert!(
        r["llm"]["cost_usd"].as_f64().unwrap() > 0.0,
        "failed calls still cost"
    );

    // The cluster totals in Redis agree, and the API key was never logged.
    let (_, stats) = cli(&stack, &["stats", "--json"]).await;
    let stats: Value = serde_json::from_str(&stats).unwrap();
    let (_, p_all, c_all) = llm_counts(&stack).await;
    let m = &stats["llm"]["primary/sim-small"];
    assert_eq!(m["prompt_tokens"], p_all, "{stats}");
    assert_eq!(m["completion_tokens"], c_all);
    assert_eq!(m["cache_hits"], 3);
    let all_cost = (p_all as f64 * 1.5 + c_all as f64 * 6.0) / 1e6;
    assert!(
        (m["cost_usd"].as_f64().unwrap() - all_cost).abs() < 1e-8,
        "{stats}"
    );
    w.child.kill();
    assert!(!w
        .child
        .output()
        .iter()
        .any(|l| l.contains("sk-test-never-logged")));
}

#[tokio::test]
async fn the_daily_budget_stops_llm_calls_across_two_analysis_workers() {
    let mut stack = stack().await;
    with_llm(&mut stack);
    // A commentary costs about $0.00006 here, but each call first reserves its worst case
    // (about $0.0005): at most a handful fit in $0.0008.
    stack.set("CANDLEPIPE_LLM_DAILY_BUDGET_USD", "0.0008");
    let _fill = stack.worker(&["ingest", "fill"]).await;
    let mut a = stack.worker(&["analyze"]).await;
    let client = stack.client().await;
    let mut spent_in_replies = 0.0;

    let first = analyze(&client, portfolio(&symbols(400, 2), true)).await;
    spent_in_replies += first["usage"]["cost_usd"].as_f64().unwrap();
    let (calls_a, _, _) = llm_counts(&stack).await;
    assert!(calls_a >= 1, "the budget allows some calls");
    a.child.kill();

    // A second worker sees what the first spent, and goes on until a whole analysis is
    // refused.
    let _b = stack.worker(&["analyze"]).await;
    let mut exhausted = false;
    for round in 0..10 {
        let reply = analyze(&client, portfolio(&symbols(500 + round * 10, 6), true)).await;
        spent_in_replies += reply["usage"]["cost_usd"].as_f64().unwrap();
        let results = reply["results"].as_object().unwrap();
        assert_eq!(results.len(), 6, "the numbers always come");
        if results.values().all(|r| {
            r["llm"]["error"] == "budget_exceeded"
                && r["commentary"].is_null()
                && r["llm"]["cost_usd"] == 0.0
        }) {
            exhausted = true;
            break;
        }
    }
    assert!(exhausted, "the budget ran out");
    let (calls, prompt, completion) = llm_counts(&stack).await;
    assert!(calls > calls_a, "the second worker spent what was left");
    let sim_cost = (prompt as f64 * 0.15 + completion as f64 * 0.60) / 1e6;
    assert!(
        sim_cost <= 0.0008,
        "spent ${sim_cost} over a $0.0008 budget in {calls} calls"
    );
    assert!((spent_in_replies - sim_cost).abs() < 1e-12);

    // Once spent, nothing more is called.
    let last = analyze(&client, portfolio(&symbols(600, 4), true)).await;
    assert_eq!(llm_counts(&stack).await.0, calls);
    for r in last["results"].as_object().unwrap().values() {
        assert_eq!(r["llm"]["error"], "budget_exceeded", "{r}");
    }
}

#[tokio::test]
async fn an_llm_slower_than_the_timeout_cannot_push_spend_past_the_budget() {
    let mut stack = stack().await;
    with_llm(&mut stack);
    stack.set("CANDLEPIPE_LLM_DAILY_BUDGET_USD", "0.002");
    stack.set("CANDLEPIPE_LLM_TIMEOUT_MS", 300);
    // The provider answers (and bills) every call, after the caller has given up on it.
    stack
        .sim
        .set_faults("llm", json!({"latency_ms": 700}))
        .await;
    let _w = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let mut exhausted = false;
    for round in 0..10 {
        let reply = analyze(&client, portfolio(&symbols(900 + round * 10, 4), true)).await;
        let results = reply["results"].as_object().unwrap();
        assert_eq!(results.len(), 4, "the numbers always come: {reply}");
        for r in results.values() {
            assert!(r["commentary"].is_null(), "{r}");
        }
        if results
            .values()
            .all(|r| r["llm"]["error"] == "budget_exceeded")
        {
            exhausted = true;
            break;
        }
    }
    assert!(exhausted, "timed-out calls are billed: the budget runs out");
    // What the provider billed, once it has answered the last call.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (calls, prompt, completion) = llm_counts(&stack).await;
    assert!(calls >= 1);
    let provider_cost = (prompt as f64 * 0.15 + completion as f64 * 0.60) / 1e6;
    assert!(
        provider_cost <= 0.002,
        "the provider billed ${provider_cost} over a $0.002 budget in {calls} calls"
    );
    // `stats` says those calls were billed at their worst case.
    let (_, stats) = cli(&stack, &["stats", "--json"]).await;
    let stats: Value = serde_json::from_str(&stats).unwrap();
    let m = &stats["llm"]["primary/sim-small"];
    assert_eq!(m["billed_at_worst"], calls, "{stats}");
    assert!(m["cost_usd"].as_f64().unwrap() >= provider_cost, "{stats}");
}

#[tokio::test]
async fn the_llm_rpm_limit_holds_across_the_cluster() {
    let mut stack = stack().await;
    with_llm(&mut stack);
    // One request per 10 s for the whole cluster, and no patience for more.
    stack.set("CANDLEPIPE_LLM_RPM", 6);
    stack.set("CANDLEPIPE_LLM_MAX_WAIT_MS", 100);
    let _w = stack.worker(&["all"]).await;
    let _other = stack.worker(&["analyze"]).await;
    let client = stack.client().await;
    let reply = analyze(&client, portfolio(&symbols(800, 4), true)).await;
    let notes: Vec<&Value> = reply["results"]
        .as_object()
        .unwrap()
        .values()
        .map(|r| &r["llm"])
        .collect();
    assert_eq!(
        notes.iter().filter(|n| n["error"].is_null()).count(),
        1,
        "{reply}"
    );
    assert_eq!(
        notes
            .iter()
            .filter(|n| n["error"] == "rate_limited")
            .count(),
        3
    );
    assert_eq!(llm_counts(&stack).await.0, 1);
}

#[tokio::test]
async fn a_providers_429_pauses_it_for_every_worker() {
    let mut stack = stack().await;
    with_llm(&mut stack);
    stack.set("CANDLEPIPE_LLM_MAX_WAIT_MS", 100);
    stack.set("CANDLEPIPE_ANALYSIS_CONCURRENCY", 1);
    let _w = stack.worker(&["ingest", "fill"]).await;
    let mut a = stack.worker(&["analyze"]).await;
    let client = stack.client().await;
    stack
        .sim
        .set_faults(
            "llm",
            json!({"fault":{"mode":"status","status":429,"retry_after_s":30,"times":1}}),
        )
        .await;
    let reply = analyze(&client, portfolio(&symbols(900, 2), true)).await;
    for r in reply["results"].as_object().unwrap().values() {
        assert_eq!(r["llm"]["error"], "rate_limited", "{r}");
        assert!(r["rsi14"].is_number());
    }
    assert_eq!(
        llm_counts(&stack).await.0,
        1,
        "the pause holds off the second call"
    );
    // Another worker honours the pause too (it is in Redis).
    a.child.kill();
    let _b = stack.worker(&["analyze"]).await;
    let reply = analyze(&client, portfolio(&symbols(910, 1), true)).await;
    assert_eq!(
        reply["results"]["TEST910/USDT"]["llm"]["error"],
        "rate_limited"
    );
    assert_eq!(llm_counts(&stack).await.0, 1);
}

async fn weight_of(url: &str) -> Option<f64> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("candlepipe_llm_canary_weight"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn route_weight(stack: &Stack) -> u64 {
    let mut redis = stack.redis_conn().await;
    let w: Option<u64> = redis::cmd("HGET")
        .arg("cp:llm:route")
        .arg("weight")
        .query_async(&mut redis)
        .await
        .unwrap();
    w.unwrap_or(0)
}

#[tokio::test]
async fn the_canary_ramps_up_backs_off_and_rolls_back_everywhere() {
    let mut stack = stack().await;
    with_llm(&mut stack);
    let url = stack.sim.url.clone();
    stack.set("CANDLEPIPE_LLM_CANARY_URL", url);
    stack.set("CANDLEPIPE_LLM_CANARY_MODEL", "sim-large");
    stack.set("CANDLEPIPE_LLM_CANARY_INITIAL_WEIGHT", 50);
    stack.set("CANDLEPIPE_LLM_CANARY_WINDOW_MS", 1000);
    stack.set("CANDLEPIPE_LLM_CANARY_MIN_REQUESTS", 2);
    stack.set("CANDLEPIPE_LLM_DAILY_BUDGET_USD", 100);
    let _fill = stack.worker(&["ingest", "fill"]).await;
    let mut a = stack
        .worker_with(&["analyze"], &["--metrics-addr", "127.0.0.1:0"])
        .await;
    let mut b = stack
        .worker_with(&["analyze"], &["--metrics-addr", "127.0.0.1:0"])
        .await;
    let (url_a, url_b) = (a.metrics_url().await, b.metrics_url().await);
    let client = stack.client().await;
    assert_eq!(route_weight(&stack).await, 50);

    // Healthy canary: +10 after each window with enough calls.
    let mut batch = 0;
    // Every batch asks about series not asked before (commentary is cached per candle):
    // ten symbols' worth of listed ones per interval, then the next interval.
    let mut drive = |client: async_nats::Client| {
        batch += 1;
        let names = symbols(1000 + batch % 100 * 10, 6);
        let interval = ["1h", "2h", "4h", "6h", "8h", "12h", "1d"][batch / 100];
        let mut request = portfolio(&names, true);
        request["interval"] = interval.into();
        async move { analyze(&client, request).await }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while route_weight(&stack).await < 70 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "canary did not ramp up"
        );
        let reply = drive(client.clone()).await;
        assert_eq!(reply["results"].as_object().unwrap().len(), 6);
    }
    let models = stack.sim.queries("llm").await;
    assert!(models.iter().any(|m| m == "sim-large") && models.iter().any(|m| m == "sim-small"));

    // Failing canary: its calls fail over to the primary, and its weight halves.
    stack
        .sim
        .set_faults(
            "llm",
            json!({"fault":{"mode":"status","status":500,"symbol":"sim-large"}}),
        )
        .await;
    let peak = route_weight(&stack).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while route_weight(&stack).await >= peak {
        assert!(
            tokio::time::Instant::now() < deadline,
            "canary did not back off"
        );
        let reply = drive(client.clone()).await;
        for r in reply["results"].as_object().unwrap().values() {
            assert!(
                r["commentary"].is_string(),
                "the primary answers for the canary: {r}"
            );
            assert_eq!(r["llm"]["model"], "sim-small");
        }
    }
    assert!(route_weight(&stack).await <= peak / 2);

    // An operator's weight reaches every worker; a rollback to 0 within a second.
    let (status, _) = cli(&stack, &["llm", "route", "--canary", "40"]).await;
    assert_eq!(status, Some(0));
    for url in [&url_a, &url_b] {
        eventually(Duration::from_secs(1), "weight 40 everywhere", || async {
            (weight_of(url).await == Some(40.0)).then_some(())
        })
        .await;
    }
    let (status, out) = cli(&stack, &["llm", "route", "--canary", "0"]).await;
    assert_eq!(status, Some(0));
    assert!(out.contains("weight   0%"), "{out}");
    let rolled_back = tokio::time::Instant::now();
    for url in [&url_a, &url_b] {
        eventually(Duration::from_secs(1), "rollback everywhere", || async {
            (weight_of(url).await == Some(0.0)).then_some(())
        })
        .await;
    }
    assert!(rolled_back.elapsed() <= Duration::from_secs(1));

    // It survives a restart, and no canary call happens at 0.
    a.child.kill();
    let mut a2 = stack
        .worker_with(&["analyze"], &["--metrics-addr", "127.0.0.1:0"])
        .await;
    let url_a2 = a2.metrics_url().await;
    assert_eq!(weight_of(&url_a2).await, Some(0.0));
    let canary_calls = stack
        .sim
        .queries("llm")
        .await
        .iter()
        .filter(|m| *m == "sim-large")
        .count();
    drive(client.clone()).await;
    drive(client.clone()).await;
    let after = stack
        .sim
        .queries("llm")
        .await
        .iter()
        .filter(|m| *m == "sim-large")
        .count();
    assert_eq!(after, canary_calls);
    assert_eq!(route_weight(&stack).await, 0);
}

#[tokio::test]
async fn an_async_job_answers_on_its_reply_subject_and_is_stored() {
    let stack = stack().await;
    let _w = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let mut replies = client.subscribe("_INBOX.results.desk1").await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Candlepipe-Reply", "_INBOX.results.desk1");
    headers.insert("Nats-Msg-Id", "job-42");
    let body = json!({"exchange":"binance","symbols":["BTC/USDT","NOPE/USDT"],"interval":"1h","lookback":60});
    js.publish_with_headers(
        "candlepipe.jobs.analyze",
        headers,
        Bytes::from(serde_json::to_vec(&body).unwrap()),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let (id, reply) = next_answer(&mut replies).await;
    assert_eq!(id, "job-42");
    assert_eq!(reply["results"]["BTC/USDT"]["candles"], 60, "{reply}");
    assert_eq!(reply["errors"]["NOPE/USDT"]["code"], "unknown_symbol");

    // Stored in Redis, signed like every value.
    let records = records(&stack).await;
    let stored: Value = records
        .get("analysis:job-42")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored, reply);

    // A job that cannot be read is answered with the error and dead-lettered.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Candlepipe-Reply", "_INBOX.results.desk1");
    headers.insert("Nats-Msg-Id", "job-bad");
    js.publish_with_headers(
        "candlepipe.jobs.analyze",
        headers,
        Bytes::from_static(b"{oops"),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let (id, reply) = next_answer(&mut replies).await;
    assert_eq!(id, "job-bad");
    assert_eq!(code(&reply), "bad_request");
    let dlq = eventually(
        Duration::from_secs(10),
        "the poison job in the DLQ",
        || async {
            let (_, out) = cli(&stack, &["dlq", "list"]).await;
            out.contains("jobs.analyze").then_some(out)
        },
    )
    .await;
    assert!(dlq.contains("bad_request"), "{dlq}");

    // A replay is the same job: it answers on the same subject under the same id.
    let (status, out) = cli(&stack, &["dlq", "replay", "--all"]).await;
    assert_eq!(status, Some(0), "{out}");
    let (id, reply) = next_answer(&mut replies).await;
    assert_eq!(id, "job-bad", "the replay keeps the job's id");
    assert_eq!(code(&reply), "bad_request");
}

#[tokio::test]
async fn an_async_job_cannot_answer_into_candlepipes_own_subjects() {
    let stack = stack().await;
    let _w = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let mut control = client.subscribe("candlepipe.control.>").await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Candlepipe-Reply", "candlepipe.control.llm.route");
    headers.insert("Nats-Msg-Id", "job-sneaky");
    let body = json!({"exchange":"binance","symbols":["BTC/USDT"],"interval":"1h","lookback":60});
    js.publish_with_headers(
        "candlepipe.jobs.analyze",
        headers,
        Bytes::from(serde_json::to_vec(&body).unwrap()),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let dlq = eventually(Duration::from_secs(10), "the job refused", || async {
        let (_, out) = cli(&stack, &["dlq", "list", "--json"]).await;
        out.contains("jobs.analyze").then_some(out)
    })
    .await;
    assert!(
        dlq.contains("bad_request") && dlq.contains("Candlepipe-Reply"),
        "{dlq}"
    );
    let letters: Value = serde_json::from_str(&dlq).expect("json");
    assert_eq!(
        letters[0]["series"],
        json!(["binance BTC/USDT 1h"]),
        "the dead letter names the analysis's series: {dlq}"
    );
    let published = tokio::time::timeout(Duration::from_millis(500), control.next()).await;
    assert!(
        published.is_err(),
        "published on a control subject: {published:?}"
    );
    // The answer kept under the job id says why.
    let records = records(&stack).await;
    let stored: Value = records
        .get("analysis:job-sneaky")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(code(&stored), "bad_request");
}

#[tokio::test]
async fn a_reservation_left_by_a_killed_worker_lapses() {
    let mut stack = stack().await;
    with_llm(&mut stack);
    // One call's worst case fits the budget; two do not.
    stack.set("CANDLEPIPE_LLM_DAILY_BUDGET_USD", "0.001");
    stack.set("CANDLEPIPE_LLM_TIMEOUT_MS", 2_000);
    stack.set("CANDLEPIPE_LLM_MAX_WAIT_MS", 500);
    stack
        .sim
        .set_faults("llm", json!({"latency_ms": 1_500}))
        .await;
    let _fill = stack.worker(&["ingest", "fill"]).await;
    let doomed = stack.worker(&["analyze"]).await;
    let client = stack.client().await;
    let asking = {
        let client = client.clone();
        tokio::spawn(async move { analyze(&client, portfolio(&symbols(700, 1), true)).await })
    };
    eventually(
        Duration::from_secs(10),
        "the LLM call under way",
        || async { (llm_counts(&stack).await.0 == 1).then_some(()) },
    )
    .await;
    doomed.child.signal("KILL");
    drop(asking);
    stack.sim.set_faults("llm", json!({})).await;
    let _next = stack.worker(&["analyze"]).await;
    // Its reservation still holds the budget…
    let refused = analyze(&client, portfolio(&symbols(701, 1), true)).await;
    assert_eq!(
        refused["results"]["TEST701/USDT"]["llm"]["error"], "budget_exceeded",
        "{refused}"
    );
    // …until it lapses (two tries of 2 s, 0.5 s of rate wait, 2 s more).
    let served = eventually(
        Duration::from_secs(15),
        "the lapsed reservation",
        || async {
            let r = analyze(&client, portfolio(&symbols(702, 1), true)).await;
            r["results"]["TEST702/USDT"]["commentary"]
                .is_string()
                .then_some(r)
        },
    )
    .await;
    assert!(served["usage"]["cost_usd"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn a_provider_counting_a_token_per_byte_never_takes_the_day_past_the_budget() {
    let mut stack = stack().await;
    with_llm(&mut stack);
    stack.set("CANDLEPIPE_LLM_DAILY_BUDGET_USD", "0.003");
    stack
        .sim
        .set_faults("llm", json!({"worst_tokenizer": true}))
        .await;
    let _w = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let mut exhausted = false;
    for round in 0..20 {
        let reply = analyze(&client, portfolio(&symbols(720 + round * 4, 4), true)).await;
        if reply["results"]
            .as_object()
            .unwrap()
            .values()
            .all(|r| r["llm"]["error"] == "budget_exceeded")
        {
            exhausted = true;
            break;
        }
    }
    assert!(exhausted, "the budget ran out");
    let (calls, prompt, completion) = llm_counts(&stack).await;
    let billed = (prompt as f64 * 0.15 + completion as f64 * 0.60) / 1e6;
    assert!(calls >= 2, "{calls} calls");
    assert!(
        billed <= 0.003,
        "billed ${billed} over a $0.003 budget in {calls} calls"
    );
}

#[tokio::test]
async fn an_answer_without_choices_is_still_counted() {
    let mut stack = stack().await;
    with_llm(&mut stack);
    stack.set("CANDLEPIPE_STATS_FLUSH_MS", 100);
    stack
        .sim
        .set_faults("llm", json!({"fault": {"mode": "no_choices"}}))
        .await;
    let _w = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let reply = analyze(&client, portfolio(&symbols(800, 1), true)).await;
    let llm = &reply["results"]["TEST800/USDT"]["llm"];
    assert_eq!(llm["error"], "invalid_output", "{reply}");
    let (calls, prompt, completion) = llm_counts(&stack).await;
    assert_eq!(calls, 1);
    assert_eq!(llm["prompt_tokens"], prompt, "{llm}");
    assert_eq!(llm["completion_tokens"], completion, "{llm}");
    let billed = (prompt as f64 * 0.15 + completion as f64 * 0.60) / 1e6;
    assert!(
        (reply["usage"]["cost_usd"].as_f64().unwrap() - billed).abs() < 1e-12,
        "{reply}"
    );
}

/// A common model is priced without configuration (DeepSeek's list price), a LiteLLM price
/// file replaces a built-in price, and `check` names a model nobody priced.
#[tokio::test]
async fn common_models_are_priced_out_of_the_box_and_a_litellm_file_overrides() {
    // deepseek-chat at its built-in price: $0.28 / $0.42 per million tokens.
    let mut stack = stack().await;
    with_llm(&mut stack);
    stack.set("CANDLEPIPE_LLM_MODEL", "deepseek-chat");
    let worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let reply = analyze(&client, portfolio(&symbols(300, 1), true)).await;
    let (calls, prompt, completion) = llm_counts(&stack).await;
    assert_eq!(calls, 1, "{reply}");
    let cost = (prompt as f64 * 0.28 + completion as f64 * 0.42) / 1e6;
    assert!(
        (reply["usage"]["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-12,
        "{reply}"
    );
    drop(worker);

    // sim-large from a LiteLLM file: $3 / $12 instead of the built-in $2.50 / $10.
    let file = std::env::temp_dir().join(format!("candlepipe-prices-{}.json", std::process::id()));
    std::fs::write(
        &file,
        r#"{"sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
            "sim-large": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.2e-05, "mode": "chat"}}"#,
    )
    .unwrap();
    stack.set("CANDLEPIPE_LLM_MODEL", "sim-large");
    stack.set("CANDLEPIPE_LLM_PRICES_FILE", file.to_str().unwrap());
    let worker = stack.worker(&["all"]).await;
    let reply = analyze(&client, portfolio(&symbols(310, 1), true)).await;
    let (calls, prompt2, completion2) = llm_counts(&stack).await;
    assert_eq!(calls, 2, "{reply}");
    let cost = ((prompt2 - prompt) as f64 * 3.0 + (completion2 - completion) as f64 * 12.0) / 1e6;
    assert!(
        (reply["usage"]["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-12,
        "{reply}"
    );
    drop(worker);
    let _ = std::fs::remove_file(&file);

    // A model without a price: check names it, and it is never called.
    stack.set("CANDLEPIPE_LLM_PRICES_FILE", "");
    stack.set("CANDLEPIPE_LLM_MODEL", "sim-small-unpriced");
    let (status, out) = cli(&stack, &["check", "--no-exchanges"]).await;
    assert_ne!(status, Some(0), "{out}");
    assert!(
        out.contains("no price for sim-small-unpriced"),
        "check names the model: {out}"
    );
}
