//! Credentials: a NATS server that requires a user, a Redis that requires a password; the
//! secrets never show up in logs or output.

use candlepipe_testkit::{NatsServer, RedisServer, Stack};
use serde_json::json;

use crate::support::*;

const NATS_PASS: &str = "nats-s3cret-pw";
const REDIS_PASS: &str = "redis-s3cret-pw";

#[tokio::test]
async fn workers_use_nats_and_redis_credentials_and_never_print_them() {
    let nats = NatsServer::start_with(&["--user", "cp", "--pass", NATS_PASS]);
    let redis = RedisServer::start_with(&["--requirepass", REDIS_PASS]);
    let (nats_port, redis_port) = (nats.port, redis.port);
    let mut stack = Stack::start_with(BIN, nats, redis).await;
    stack.set(
        "CANDLEPIPE_NATS_URL",
        format!("nats://cp:{NATS_PASS}@127.0.0.1:{nats_port}"),
    );
    stack.set(
        "CANDLEPIPE_REDIS_URL",
        format!("redis://default:{REDIS_PASS}@127.0.0.1:{redis_port}"),
    );
    let worker = stack.worker(&["all"]).await;

    let client = async_nats::ConnectOptions::with_user_and_password("cp".into(), NATS_PASS.into())
        .connect(format!("nats://127.0.0.1:{nats_port}"))
        .await
        .expect("authenticated test client");
    let reply = get(
        &client,
        json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1m","limit":3}),
    )
    .await;
    assert_eq!(ok(&reply).len(), 3);

    let (status, check) = cli(&stack, &["check", "--no-exchanges"]).await;
    assert_eq!(status, Some(0), "{check}");
    assert!(
        check.contains("***@127.0.0.1"),
        "credentials are masked: {check}"
    );
    let (status, got) = cli(
        &stack,
        &["get", "binance", "BTC/USDT", "1m", "--limit", "2"],
    )
    .await;
    assert_eq!(status, Some(0), "{got}");

    // Wrong credentials: a clear error that names no secret.
    let mut wrong = stack.worker_env();
    wrong.push((
        "CANDLEPIPE_REDIS_URL".into(),
        format!("redis://default:wrong-pw@127.0.0.1:{redis_port}"),
    ));
    let out = tokio::process::Command::new(BIN)
        .args(["check", "--no-exchanges"])
        .env_clear()
        .envs(wrong)
        .output()
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("FAIL  redis"),
        "{text}"
    );

    for line in worker
        .child
        .output()
        .iter()
        .chain(check.lines().map(String::from).collect::<Vec<_>>().iter())
        .chain(std::iter::once(&text))
    {
        assert!(
            !line.contains(NATS_PASS) && !line.contains(REDIS_PASS) && !line.contains("wrong-pw"),
            "secret printed: {line}"
        );
    }
}
