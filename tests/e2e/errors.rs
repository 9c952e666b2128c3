//! Every error code the candle path can produce, each from the input that causes it.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn every_error_code_from_its_cause() {
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_FILL_WAIT_MS", "2500");
    stack.set("CANDLEPIPE_EXCHANGE_TIMEOUT_MS", "300");
    let _worker = stack.worker(&["all"]).await;
    let client = stack.client().await;

    // Input errors are answered by ingest itself.
    assert_eq!(
        code(&request_raw(&client, b"\xff\x00 not json".to_vec()).await),
        "bad_request"
    );
    assert_eq!(
        code(&request_raw(&client, vec![b' '; (1 << 20) - 1024]).await),
        "bad_request"
    );
    assert_eq!(
        code(
            &get(
                &client,
                json!({"exchange":1,"symbol":"BTC/USDT","interval":"1m"})
            )
            .await
        ),
        "bad_request"
    );
    assert_eq!(
        code(
            &get(
                &client,
                json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":"5"})
            )
            .await
        ),
        "bad_request"
    );
    assert_eq!(code(&get(&client, json!(["binance"])).await), "bad_request");
    assert_eq!(
        code(&get(&client, req("ftx", "BTC/USDT", "1m", 5)).await),
        "unknown_exchange"
    );
    for symbol in [
        "BTC.USDT",
        "BTC/*",
        "BTC/>",
        "BTC USDT",
        "btc/usdt",
        "BTC/USDT.>",
        "AAAAAAAAAAAAAAAAAAAAAAAA/USDT",
    ] {
        let reply = get(&client, req("binance", symbol, "1m", 5)).await;
        assert_eq!(code(&reply), "invalid_symbol", "{symbol}");
    }
    assert_eq!(
        code(&get(&client, req("binance", "BTC/USDT", "2m", 5)).await),
        "unsupported_interval"
    );
    assert_eq!(
        code(&get(&client, req("binance", "BTC/USDT", "1m", 0)).await),
        "limit_out_of_range"
    );
    assert_eq!(
        code(&get(&client, req("binance", "BTC/USDT", "1m", 1001)).await),
        "limit_out_of_range"
    );
    assert_eq!(
        stack.sim.stats().await["binance"]["requests"],
        0,
        "input errors never reach an exchange"
    );

    // The exchange does not list the symbol: answered at once, without asking it.
    for (ex, symbol) in [
        ("binance", "NOPE/USDT"),
        ("coinbase", "NOPE/USD"),
        ("kraken", "NOPE/USD"),
    ] {
        let started = std::time::Instant::now();
        assert_eq!(
            code(&get(&client, req(ex, symbol, "1h", 5)).await),
            "unknown_symbol",
            "{ex}"
        );
        assert!(
            started.elapsed().as_millis() < 2000,
            "{ex}: terminal errors do not wait for retries"
        );
    }

    // Upstream failures with no cached copy: the last error once the wait is over.
    stack
        .sim
        .set_faults(
            "binance",
            json!({"fault":{"mode":"status","status":503,"symbol":"LTCUSDT"}}),
        )
        .await;
    assert_eq!(
        code(&get(&client, req("binance", "LTC/USDT", "1m", 5)).await),
        "upstream_error"
    );
    stack
        .sim
        .set_faults(
            "binance",
            json!({"fault":{"mode":"status","status":429,"symbol":"DOTUSDT","retry_after_s":1}}),
        )
        .await;
    assert_eq!(
        code(&get(&client, req("binance", "DOT/USDT", "1m", 5)).await),
        "rate_limited"
    );
    stack
        .sim
        .set_faults(
            "kraken",
            json!({"fault":{"mode":"timeout","symbol":"LTCUSD"}}),
        )
        .await;
    assert_eq!(
        code(&get(&client, req("kraken", "LTC/USD", "1m", 5)).await),
        "timeout"
    );

    // A cached copy is served stale when the exchange fails (stale-if-error).
    stack.sim.set_faults("binance", json!({})).await;
    let fresh = get(
        &client,
        json!({"exchange":"binance","symbol":"ADA/USDT","interval":"1m","limit":5}),
    )
    .await;
    assert_eq!(ok(&fresh).len(), 5);
    stack
        .sim
        .set_faults("binance", json!({"fault":{"mode":"status","status":500}}))
        .await;
    let stale = get(
        &client,
        json!({"exchange":"binance","symbol":"ADA/USDT","interval":"1m","limit":5,"max_age_ms":0}),
    )
    .await;
    assert_eq!(stale["stale"], true, "{stale}");
    assert!(!ok(&stale).is_empty());

    // Redis gone and nothing in L1 for the series: unavailable, within the request timeout.
    stack.redis.stop();
    assert_eq!(
        code(&get(&client, req("binance", "XRP/USDT", "1m", 5)).await),
        "unavailable"
    );
}
