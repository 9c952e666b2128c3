//! Market lists: no exchange call is spent on a symbol the exchange does not have, and
//! Kraken's pair names come from its own list.

use serde_json::{json, Value};

use crate::support::*;

/// Asks for `n` requests spread over ten unknown symbols, a hundred at a time; every answer
/// must be `unknown_symbol`.
async fn ask_unknown(client: &async_nats::Client, exchange: &str, quote: &str, n: usize) {
    for wave in 0..n / 100 {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..100 {
            let client = client.clone();
            let r = req(
                exchange,
                &format!("NOPE{}/{quote}", (wave * 100 + i) % 10),
                "1m",
                5,
            );
            set.spawn(async move { get(&client, r).await });
        }
        while let Some(reply) = set.join_next().await {
            let reply = reply.expect("task");
            assert_eq!(code(&reply), "unknown_symbol", "{reply}");
        }
    }
}

fn lists_loaded(stats: &Value) -> [u64; 3] {
    ["binance", "coinbase", "kraken"].map(|ex| stats[ex]["market_lists"].as_u64().unwrap_or(0))
}

#[tokio::test]
async fn unknown_symbols_cost_no_exchange_call() {
    let mut stack = stack().await;
    // Series asked for 30 times a minute are wanted for streaming (the default).
    stack.set("CANDLEPIPE_STREAM_HOT_PER_MINUTE", "30");
    let _fills = [stack.worker(&["fill"]).await, stack.worker(&["fill"]).await];
    let _ingest = stack.worker(&["ingest"]).await;
    let client = stack.client().await;

    ask_unknown(&client, "binance", "USDT", 1_000).await;
    ask_unknown(&client, "coinbase", "USD", 100).await;
    ask_unknown(&client, "kraken", "USD", 100).await;
    let stats = stack.sim.stats().await;
    for ex in ["binance", "coinbase", "kraken"] {
        assert_eq!(stats[ex]["requests"], 0, "{ex}: no candle request");
    }
    // Two fill workers, one load of each list for the cluster (Coinbase's and Kraken's
    // with their currency list, for the gateway).
    assert_eq!(lists_loaded(&stats), [1, 2, 2]);
    let (_, out) = cli(&stack, &["dlq", "list", "--json"]).await;
    assert_eq!(out.trim(), "[]");

    // Asked for a hundred times each, no unknown symbol became a streaming candidate; a
    // listed one asked for as often did.
    for _ in 0..40 {
        let reply = get(&client, req("binance", "BTC/USDT", "1m", 5)).await;
        assert_eq!(reply["ok"], true, "{reply}");
    }
    let wanted = eventually(
        std::time::Duration::from_secs(5),
        "the listed series marked wanted",
        || async {
            let mut redis = stack.redis_conn().await;
            let wanted: Vec<String> = redis::cmd("ZRANGE")
                .arg("cp:stream:{live}:wanted")
                .arg(0)
                .arg(-1)
                .query_async(&mut redis)
                .await
                .ok()?;
            (!wanted.is_empty()).then_some(wanted)
        },
    )
    .await;
    assert_eq!(wanted, vec!["binance|BTC/USDT|1m".to_string()]);
}

#[tokio::test]
async fn without_a_market_list_each_unknown_symbol_costs_one_call() {
    let stack = stack().await;
    // Binance will not give its list.
    stack
        .sim
        .set_faults(
            "binance",
            json!({"fault": {"mode": "status", "status": 503, "symbol": "exchangeInfo"}}),
        )
        .await;
    let _fill = stack.worker(&["fill"]).await;
    let _ingests = [
        stack.worker(&["ingest"]).await,
        stack.worker(&["ingest"]).await,
    ];
    let client = stack.client().await;

    ask_unknown(&client, "binance", "USDT", 1_000).await;
    let stats = stack.sim.stats().await;
    let calls = stats["binance"]["requests"].as_u64().unwrap();
    assert!(
        (1..=10).contains(&calls),
        "{calls} exchange calls for 10 unknown symbols"
    );
    // Listed symbols are still served, named as Binance names them.
    assert_eq!(
        ok(&get(&client, req("binance", "BTC/USDT", "1m", 5)).await).len(),
        5
    );
}

#[tokio::test]
async fn kraken_pairs_are_asked_for_by_the_names_its_list_gives() {
    let stack = stack().await;
    let _worker = stack.worker(&["ingest", "fill"]).await;
    let client = stack.client().await;
    for symbol in ["BTC/USD", "DOGE/USD", "ETH/EUR", "TEST7/USD"] {
        let reply = get(&client, req("kraken", symbol, "1h", 5)).await;
        assert_eq!(ok(&reply).len(), 5, "{symbol}: {reply}");
    }
    let pairs: Vec<String> = stack
        .sim
        .queries("kraken")
        .await
        .iter()
        .filter_map(|q| query_param(q, "pair"))
        .collect();
    assert_eq!(pairs, ["XBTUSD", "XDGUSD", "ETHEUR", "TEST7USD"]);
}

#[tokio::test]
async fn kraken_waits_for_its_list_and_serves_once_it_comes() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_RETRY_BASE_MS", 100);
    stack.set("CANDLEPIPE_RETRY_MAX_MS", 200);
    // Kraken's list fails twice: at the fill worker's start and once more.
    stack
        .sim
        .set_faults(
            "kraken",
            json!({"fault": {"mode": "status", "status": 503, "symbol": "AssetPairs", "times": 2}}),
        )
        .await;
    let _worker = stack.worker(&["ingest", "fill"]).await;
    let client = stack.client().await;
    let reply = get(
        &client,
        json!({"exchange":"kraken","symbol":"BTC/USD","interval":"1h","limit":5,"timeout_ms":8_000}),
    )
    .await;
    assert_eq!(ok(&reply).len(), 5, "{reply}");
    let stats = stack.sim.stats().await;
    // AssetPairs three times, then Assets once.
    assert_eq!(stats["kraken"]["market_lists"], 4);
    assert_eq!(stats["kraken"]["requests"], 1);
}
