//! Credentials: a NATS server that requires a user, a token or an nkey, over TLS or not; a
//! Redis that requires an ACL user and password, over TLS or not. The secrets never show up
//! in logs or output.

use candlepipe_testkit::{NatsServer, RedisServer, Stack, TlsFiles};
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

/// Every line a worker logged, and `check`'s output, are free of `secrets`.
fn assert_never_printed(lines: &[String], secrets: &[&str]) {
    for line in lines {
        for secret in secrets {
            assert!(!line.contains(secret), "secret printed: {line}");
        }
    }
}

#[tokio::test]
async fn tls_to_both_servers_with_an_nkey_and_an_acl_user() {
    let tls = TlsFiles::generate();
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().unwrap();
    let conf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        conf.path(),
        format!(
            "tls {{ cert_file: \"{}\", key_file: \"{}\" }}\nauthorization {{ users: [ {{ nkey: \"{}\" }} ] }}\n",
            tls.cert.display(),
            tls.key.display(),
            user.public_key()
        ),
    )
    .unwrap();
    let nats = NatsServer::start_with(&["-c", conf.path().to_str().unwrap()]);
    let redis = RedisServer::start_tls(
        &tls,
        &["--user", "cp", "on", ">redis-acl-pw", "~*", "&*", "+@all"],
    );
    let (nats_port, redis_port) = (nats.port, redis.port);
    let mut stack = Stack::start_with(BIN, nats, redis).await;
    stack.set(
        "CANDLEPIPE_NATS_URL",
        format!("tls://127.0.0.1:{nats_port}"),
    );
    stack.set("CANDLEPIPE_NATS_TLS_CA", tls.ca.display());
    stack.set("CANDLEPIPE_NATS_NKEY_SEED", &seed);
    stack.set(
        "CANDLEPIPE_REDIS_URL",
        format!("rediss://cp:redis-acl-pw@127.0.0.1:{redis_port}"),
    );
    stack.set("CANDLEPIPE_REDIS_TLS_CA", tls.ca.display());
    let worker = stack.worker(&["all"]).await;

    // Everything works through TLS: a miss is filled, stored in Redis and answered.
    let (status, got) = cli(
        &stack,
        &["get", "binance", "ETH/USDT", "1m", "--limit", "3"],
    )
    .await;
    assert_eq!(status, Some(0), "{got}");
    assert!(got.contains("3 candles from exchange"), "{got}");
    let (status, got) = cli(
        &stack,
        &["get", "binance", "ETH/USDT", "1m", "--limit", "3"],
    )
    .await;
    assert_eq!(status, Some(0));
    assert!(got.contains("from l1"), "{got}");
    let (status, check) = cli(&stack, &["check", "--no-exchanges"]).await;
    assert_eq!(status, Some(0), "{check}");
    assert!(
        check.contains("ok    redis      rediss://***@127.0.0.1"),
        "{check}"
    );

    // Without the CA, the server's certificate is refused: TLS is really verified.
    let mut no_ca: Vec<(String, String)> = stack
        .worker_env()
        .into_iter()
        .filter(|(k, _)| k != "CANDLEPIPE_REDIS_TLS_CA" && k != "CANDLEPIPE_NATS_TLS_CA")
        .collect();
    no_ca.push(("CANDLEPIPE_LOG".into(), "warn".into()));
    let out = tokio::process::Command::new(BIN)
        .args(["check", "--no-exchanges"])
        .env_clear()
        .envs(no_ca)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("FAIL  nats") && text.contains("FAIL  redis"),
        "{text}"
    );

    let mut lines = worker.child.output();
    lines.extend(check.lines().map(String::from));
    lines.push(text.to_string());
    assert_never_printed(&lines, &[&seed, "redis-acl-pw"]);
}

#[tokio::test]
async fn a_nats_token_in_the_url() {
    let nats = NatsServer::start_with(&["--auth", "nats-t0ken-123"]);
    let nats_port = nats.port;
    let mut stack = Stack::start_with(BIN, nats, RedisServer::start()).await;
    stack.set(
        "CANDLEPIPE_NATS_URL",
        format!("nats://nats-t0ken-123@127.0.0.1:{nats_port}"),
    );
    let worker = stack.worker(&["all"]).await;
    let (status, got) = cli(&stack, &["get", "kraken", "BTC/USD", "1h", "--limit", "2"]).await;
    assert_eq!(status, Some(0), "{got}");
    let (_, check) = cli(&stack, &["check", "--no-exchanges"]).await;
    assert!(check.contains("nats://***@127.0.0.1"), "{check}");
    let mut lines = worker.child.output();
    lines.extend(check.lines().map(String::from));
    assert_never_printed(&lines, &["nats-t0ken-123"]);
}
