//! Values altered in Redis are never served: they are deleted and refetched.

use serde_json::json;

use crate::support::*;

async fn flip_a_byte(conn: &mut redis::aio::MultiplexedConnection, key: &str) {
    let mut value: Vec<u8> = redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .expect("get");
    let mid = value.len() / 2;
    value[mid] ^= 0x20;
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(conn)
        .await
        .expect("set");
}

#[tokio::test]
async fn altered_redis_values_are_refetched_not_served() {
    let stack = stack().await;
    let mut conn = stack.redis_conn().await;
    let client = stack.client().await;
    let request = json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1h","limit":24,"end":closed_end(3_600_000)});

    let worker = stack.worker(&["all"]).await;
    let original = get(&client, request.clone()).await;
    assert_eq!(source(&original), "exchange");
    drop(worker);

    for (round, pattern) in ["cp:s:*:c:*", "cp:s:*:meta"].into_iter().enumerate() {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!keys.is_empty(), "{pattern}");
        for key in &keys {
            flip_a_byte(&mut conn, key).await;
        }
        // A fresh process has an empty L1, so it must read Redis.
        let _worker = stack.worker(&["all"]).await;
        let again = get(&client, request.clone()).await;
        assert_eq!(
            source(&again),
            "exchange",
            "round {round}: tampered {pattern} was served"
        );
        assert_eq!(ok(&again), ok(&original));
        assert_eq!(stack.sim.requests("binance").await, 2 + round as u64);
    }
}
