//! Values altered in Redis are never served: they are deleted and refetched.

use serde_json::json;

use candlepipe_testkit::flip_a_byte;

use crate::support::*;

/// `request` sent in MessagePack; the reply decoded to the same shape as JSON's.
async fn get_msgpack(client: &async_nats::Client, request: serde_json::Value) -> serde_json::Value {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "application/msgpack");
    let req = async_nats::Request::new()
        .payload(rmp_serde::to_vec_named(&request).unwrap().into())
        .headers(headers);
    let msg = client
        .send_request("candlepipe.candles.get", req)
        .await
        .expect("reply");
    rmp_serde::from_slice(&msg.payload).expect("msgpack reply")
}

async fn matching(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(conn)
        .await
        .unwrap()
}

/// The keys matching `pattern`, at least one.
async fn keys(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let keys = matching(conn, pattern).await;
    assert!(!keys.is_empty(), "{pattern}");
    keys
}

/// Waits (up to 5 s) until every stored chunk has its runs in both formats: a fill writes
/// them right after the answer its producers waited for.
async fn runs_written(conn: &mut redis::aio::MultiplexedConnection) {
    for _ in 0..250 {
        let chunks = matching(conn, "cp:s:*:c:*").await.len();
        let json = matching(conn, "cp:s:*:j:*").await.len();
        let msgpack = matching(conn, "cp:s:*:m:*").await.len();
        if chunks > 0 && json == 4 * chunks && msgpack == 4 * chunks {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("runs of reply fragments not written");
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
    runs_written(&mut conn).await;
    drop(worker);

    // Packed chunks are what `fill_gaps` requests (and fills, and L1 loads) read; JSON and
    // MessagePack Redis hits read their runs of reply fragments.
    let mut filled = request.clone();
    filled["fill_gaps"] = json!("previous");
    let rounds = [
        ("cp:s:*:c:*", filled, false),
        ("cp:s:*:j:*", request.clone(), false),
        ("cp:s:*:m:*", request.clone(), true),
        ("cp:s:*:meta", request.clone(), false),
    ];
    for (round, (pattern, ask, msgpack)) in rounds.into_iter().enumerate() {
        for key in keys(&mut conn, pattern).await {
            flip_a_byte(&mut conn, &key).await;
        }
        // A fresh process has an empty L1, so it must read Redis.
        let _worker = stack.worker(&["all"]).await;
        let again = match msgpack {
            true => get_msgpack(&client, ask).await,
            false => get(&client, ask).await,
        };
        assert_eq!(
            source(&again),
            "exchange",
            "round {round}: tampered {pattern} was served"
        );
        assert_eq!(ok(&again), ok(&original));
        assert_eq!(stack.sim.requests("binance").await, 2 + round as u64);
        // The refetch's runs are written before its process goes.
        runs_written(&mut conn).await;
    }
}

#[tokio::test]
async fn a_value_altered_after_it_was_verified_is_never_served_by_the_same_process() {
    // One process throughout, without L1, so every hit reads Redis. The runs it verified
    // are kept (`verified.rs`): while the series' meta, read and verified on every hit,
    // names their version, the kept bytes stand in for Redis's, so altered bytes there
    // are neither read nor served. Once the meta no longer verifies, the series is
    // refetched and written afresh, and hits read the new runs.
    let mut stack = stack().await;
    stack.set("CANDLEPIPE_L1_CAPACITY", "0");
    let mut conn = stack.redis_conn().await;
    let client = stack.client().await;
    let request = json!({"exchange":"binance","symbol":"ETH/USDT","interval":"1h","limit":24,"end":closed_end(3_600_000)});
    let _worker = stack.worker(&["all"]).await;
    let original = get(&client, request.clone()).await;
    assert_eq!(source(&original), "exchange");
    runs_written(&mut conn).await;
    for _ in 0..2 {
        let hit = get(&client, request.clone()).await;
        assert_eq!(source(&hit), "redis");
        assert_eq!(ok(&hit), ok(&original));
    }
    for key in keys(&mut conn, "cp:s:*:j:*").await {
        flip_a_byte(&mut conn, &key).await;
    }
    let kept = get(&client, request.clone()).await;
    assert_eq!(source(&kept), "redis", "the kept verified run stands in");
    assert_eq!(ok(&kept), ok(&original), "the altered bytes were served");
    assert_eq!(stack.sim.requests("binance").await, 1);
    // The meta is read on every hit: altered, it fails verification, and the series is
    // refetched rather than any kept run served under it.
    for key in keys(&mut conn, "cp:s:*:meta").await {
        flip_a_byte(&mut conn, &key).await;
    }
    let again = get(&client, request.clone()).await;
    assert_eq!(
        source(&again),
        "exchange",
        "a run was served under an altered meta"
    );
    assert_eq!(ok(&again), ok(&original));
    assert_eq!(stack.sim.requests("binance").await, 2);
    // Rewritten and verified afresh: a Redis hit again, of the new runs.
    for _ in 0..2 {
        let after = get(&client, request.clone()).await;
        assert_eq!(source(&after), "redis");
        assert_eq!(ok(&after), ok(&original));
    }
    assert_eq!(stack.sim.requests("binance").await, 2);
}

#[tokio::test]
async fn an_older_chunk_put_back_is_not_served() {
    let stack = stack().await;
    let mut conn = stack.redis_conn().await;
    let client = stack.client().await;
    // Both windows below ([end - 5 h, end - 3 h], then [end - 2 h, end]) in one chunk of
    // 64 hours (chunks start at multiples of 64 intervals): the newest closed hour when
    // its chunk holds five before it, else the last hour of the chunk before.
    const H: i64 = 3_600_000;
    let closed = closed_end(H);
    let chunk_start = closed - closed.rem_euclid(64 * H);
    let end = match closed - chunk_start >= 5 * H {
        true => closed,
        false => chunk_start - H,
    };
    let ask = |limit: i64, end: i64| json!({"exchange":"binance","symbol":"ETH/USDT","interval":"1h","limit":limit,"end":end});

    let worker = stack.worker(&["all"]).await;
    assert_eq!(source(&get(&client, ask(3, end - 3 * H)).await), "exchange");
    runs_written(&mut conn).await;
    // Keep the chunk and its runs as that first write left them: validly signed, for
    // their keys.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("cp:s:*ETH-USDT*:[cjm]:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    // The chunk holding the window (and, the fetch being widened, maybe the one before).
    let chunk = format!(":c:{}", end - end.rem_euclid(64 * H));
    assert!(keys.iter().any(|k| k.ends_with(&chunk)), "{keys:?}");
    let mut old = Vec::new();
    for key in &keys {
        let value: Vec<u8> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        old.push((key.clone(), value));
    }
    // A later write of the same chunk (three more candles), then the old values put back.
    let newer = get(&client, ask(3, end)).await;
    assert_eq!(source(&newer), "exchange");
    runs_written(&mut conn).await;
    drop(worker);
    for (key, value) in old {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    let _worker = stack.worker(&["all"]).await;
    let again = get(&client, ask(3, end)).await;
    assert_eq!(
        source(&again),
        "exchange",
        "the put-back chunk was served: {again}"
    );
    assert_eq!(ok(&again), ok(&newer));
}

#[tokio::test]
async fn a_key_rotation_in_two_steps_deletes_and_refetches_nothing() {
    use candlepipe_testkit::{Worker, TEST_HMAC_KEY};
    const NEW_KEY: &str = "the-new-hmac-key-0123456789";
    let stack = stack().await;
    let client = stack.client().await;
    let with = |extra: &[(&str, &str)]| {
        let mut env = stack.worker_env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    let end = closed_end(3_600_000);
    let ask = |symbol: &str| json!({"exchange":"binance","symbol":symbol,"interval":"1h","limit":5,"end":end});

    // Before: everything signed with k1.
    let before = stack.worker(&["ingest", "fill"]).await;
    assert_eq!(source(&get(&client, ask("SOL/USDT")).await), "exchange");
    drop(before);

    // Step 1, on every worker: k2 verifies, k1 still signs.
    let step1 = with(&[("CANDLEPIPE_HMAC_NEXT_KEYS", &format!("k2:{NEW_KEY}"))]);
    let old_ingest = Worker::start(&stack.bin, &["ingest"], &step1).await;
    // Step 2, rolling out while step-1 workers still run: k2 signs, k1 verifies.
    let step2 = with(&[
        ("CANDLEPIPE_HMAC_KEY", NEW_KEY),
        ("CANDLEPIPE_HMAC_KEY_ID", "k2"),
        (
            "CANDLEPIPE_HMAC_PREVIOUS_KEYS",
            &format!("k1:{TEST_HMAC_KEY}"),
        ),
    ]);
    let new_fill = Worker::start(&stack.bin, &["fill"], &step2).await;
    assert_eq!(
        source(&get(&client, ask("SOL/USDT")).await),
        "redis",
        "k1's value, read by a step-1 worker"
    );
    assert_eq!(source(&get(&client, ask("ADA/USDT")).await), "exchange");
    drop(old_ingest);
    // A step-1 worker reads what the step-2 one signed, and a step-2 one what k1 signed.
    let again = Worker::start(&stack.bin, &["ingest"], &step1).await;
    assert_eq!(
        source(&get(&client, ask("ADA/USDT")).await),
        "redis",
        "k2's value, read by a step-1 worker"
    );
    drop(again);
    let _new_ingest = Worker::start(&stack.bin, &["ingest"], &step2).await;
    for symbol in ["SOL/USDT", "ADA/USDT"] {
        assert_eq!(
            source(&get(&client, ask(symbol)).await),
            "redis",
            "{symbol}, read by a step-2 worker"
        );
    }
    drop(new_fill);
    assert_eq!(
        stack.sim.requests("binance").await,
        2,
        "nothing was fetched twice"
    );
}
