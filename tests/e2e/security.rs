//! Credentials: a NATS server that requires a user, a token or an nkey, over TLS or not; a
//! Redis that requires an ACL user and password, over TLS or not. The secrets never show up
//! in logs or output.

use std::time::Duration;

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

/// The lines of a process's output where nats-server told it it lacked a permission.
fn permission_violations(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|l| l.to_lowercase().contains("permission"))
        .collect()
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

/// A JWT as NATS signs them: `{"typ":"JWT","alg":"ed25519-nkey"}`, the claims, and an
/// ed25519 signature by `issuer`, each base64url without padding.
fn nats_jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = json!({
        "jti": format!("{}{}", name.to_uppercase(), subject),
        "iat": 1_764_000_000,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let body = b64.encode(serde_json::to_vec(&claims).unwrap());
    let signed = format!("{header}.{body}");
    let sig = b64.encode(issuer.sign(signed.as_bytes()).unwrap());
    format!("{signed}.{sig}")
}

#[tokio::test]
async fn a_nats_creds_file_in_operator_mode() {
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let system = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let unlimited = json!({"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1});
    let op_jwt = nats_jwt(
        &operator,
        &operator.public_key(),
        "op",
        json!({"type": "operator", "version": 2, "system_account": system.public_key()}),
    );
    let sys_jwt = nats_jwt(
        &operator,
        &system.public_key(),
        "SYS",
        json!({"type": "account", "version": 2}),
    );
    let acct_jwt = nats_jwt(
        &operator,
        &account.public_key(),
        "cp",
        json!({"type": "account", "version": 2, "limits": unlimited}),
    );
    let user_jwt = nats_jwt(
        &account,
        &user.public_key(),
        "worker",
        json!({"type": "user", "version": 2, "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1}),
    );
    let seed = user.seed().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("operator.conf");
    std::fs::write(
        &conf,
        format!(
            "operator: {op_jwt}\nsystem_account: {sys}\nresolver: MEMORY\n\
             resolver_preload: {{ {acct}: {acct_jwt}, {sys}: {sys_jwt} }}\n",
            acct = account.public_key(),
            sys = system.public_key(),
        ),
    )
    .unwrap();
    let creds = dir.path().join("worker.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        ),
    )
    .unwrap();

    let nats = NatsServer::start_with(&["-c", conf.to_str().unwrap()]);
    let mut stack = Stack::start_with(BIN, nats, RedisServer::start()).await;
    stack.set("CANDLEPIPE_NATS_CREDS_FILE", creds.display());
    let worker = stack.worker(&["all"]).await;
    let (status, got) = cli(
        &stack,
        &["get", "coinbase", "BTC/USD", "1h", "--limit", "4"],
    )
    .await;
    assert_eq!(status, Some(0), "{got}");
    assert!(got.contains("4 candles from exchange"), "{got}");

    // Without the creds file the server refuses, and says so at once.
    let without: Vec<(String, String)> = stack
        .worker_env()
        .into_iter()
        .filter(|(k, _)| k != "CANDLEPIPE_NATS_CREDS_FILE")
        .collect();
    let out = tokio::process::Command::new(BIN)
        .args(["check", "--no-exchanges"])
        .env_clear()
        .envs(without)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("FAIL  nats"),
        "{text}"
    );

    let mut lines = worker.child.output();
    lines.push(text.to_string());
    assert_never_printed(&lines, &[&seed]);
}

#[tokio::test]
async fn workers_refuse_to_sign_with_the_public_key_unless_told_dev() {
    let stack = stack().await;
    let env: Vec<(String, String)> = stack
        .worker_env()
        .into_iter()
        .filter(|(k, _)| k != "CANDLEPIPE_HMAC_KEY")
        .collect();
    let run = |args: &'static [&'static str]| {
        let env = env.clone();
        async move {
            let child = tokio::process::Command::new(BIN)
                .args(args)
                .env_clear()
                .envs(env)
                .kill_on_drop(true)
                .output();
            tokio::time::timeout(std::time::Duration::from_secs(20), child).await
        }
    };
    let refused = run(&["run", "all"])
        .await
        .expect("it stops at once")
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("CANDLEPIPE_HMAC_KEY is not set") && err.contains("--dev"),
        "{err}"
    );
    let refused = run(&[
        "backfill",
        "binance",
        "BTC/USDT",
        "1h",
        "--since",
        "2026-11-01",
    ])
    .await
    .expect("it stops at once")
    .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("CANDLEPIPE_HMAC_KEY is not set"), "{err}");
    // With --dev it runs.
    drop(candlepipe_testkit::Worker::start_with(BIN, &["all"], &["--dev"], &env).await);
    // Keys kept for verifying must be as long as the signing one.
    let mut short = env.clone();
    short.push(("CANDLEPIPE_HMAC_KEY".into(), "a-long-enough-key-123".into()));
    short.push(("CANDLEPIPE_HMAC_NEXT_KEYS".into(), "k2:short".into()));
    let out = tokio::process::Command::new(BIN)
        .args(["run", "all"])
        .env_clear()
        .envs(short)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16 bytes"));
}

#[tokio::test]
async fn a_producer_account_asks_but_cannot_publish_jobs_or_control_messages() {
    use futures::StreamExt;
    // The repository's server config as shipped (its permissions included).
    let (stack, port) = stack_on_nats_config(
        "jetstream.conf",
        &[
            ("CANDLEPIPE_NATS_PRODUCER_PASSWORD", "p-pass"),
            ("CANDLEPIPE_NATS_OPERATOR_PASSWORD", "o-pass"),
        ],
    )
    .await;
    let worker = stack.worker(&["all"]).await;
    let url = format!("nats://127.0.0.1:{port}");
    let as_user = |user: &'static str, pass: &'static str| {
        let options = async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into());
        connect_watching(url.clone(), options)
    };
    let (operator, _) = as_user("operator", "o-pass").await;
    let mut seen = operator.subscribe("candlepipe.>").await.unwrap();
    operator.flush().await.unwrap();
    let (producer, mut events) = as_user("producer", "p-pass").await;

    // Asking works.
    let reply = get(&producer, req("binance", "BTC/USDT", "1h", 3)).await;
    assert_eq!(ok(&reply).len(), 3);
    // Publishing a control message or a fill job is refused by the server.
    for subject in [
        "candlepipe.control.llm.route",
        "candlepipe.jobs.fill.binance",
    ] {
        producer
            .publish(subject, "from-a-producer".into())
            .await
            .unwrap();
        producer.flush().await.unwrap();
        let refused = refusal(&mut events).await;
        assert!(refused.contains(subject), "{refused}");
    }
    // None of it reached those subjects.
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), seen.next()).await {
        assert_ne!(
            &m.payload[..],
            b"from-a-producer",
            "a producer's message got through on {}",
            m.subject
        );
    }
    // The async analysis form is a producer's to use.
    let mut results = producer.subscribe("_INBOX.desk9.results").await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Candlepipe-Reply", "_INBOX.desk9.results");
    let job = json!({"exchange":"binance","symbols":["BTC/USDT"],"interval":"1h","lookback":60});
    async_nats::jetstream::new(producer.clone())
        .publish_with_headers(
            "candlepipe.jobs.analyze",
            headers,
            serde_json::to_vec(&job).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .expect("JetStream took the job");
    let answer = tokio::time::timeout(Duration::from_secs(20), results.next())
        .await
        .expect("an answer")
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(answer["results"]["BTC/USDT"]["candles"], 60, "{answer}");
    // Nor may it take anyone's requests, in any queue group, nor read what is not its own.
    for (subject, group) in [
        ("candlepipe.candles.get", Some("ingest")),
        ("candlepipe.candles.get", None),
        ("candlepipe.analysis.run", Some("analyze")),
        ("candlepipe.candles.watch", Some("stream")),
        (">", None),
        ("candlepipe.>", None),
        ("candlepipe.jobs.>", None),
        ("candlepipe.dlq.>", None),
        ("candlepipe.control.>", None),
        ("$JS.API.>", None),
        ("orders.new", None),
    ] {
        let _sub = match group {
            Some(g) => producer
                .queue_subscribe(subject, g.to_string())
                .await
                .unwrap(),
            None => producer.subscribe(subject).await.unwrap(),
        };
        producer.flush().await.unwrap();
        let refused = refusal(&mut events).await;
        assert!(refused.contains(subject), "{subject} {group:?}: {refused}");
    }
    // And the workers, logged in as `candlepipe` with the workers' permissions, still
    // answer: candles, a watch (the stream role), an analysis.
    let reply = get(&producer, req("binance", "ETH/USDT", "1m", 2)).await;
    assert_eq!(ok(&reply).len(), 2, "{reply}");
    let watch = producer
        .request(
            "candlepipe.candles.watch",
            json!({"exchange":"binance","symbol":"BTC/USDT","interval":"1m"})
                .to_string()
                .into(),
        )
        .await
        .unwrap();
    let watch: serde_json::Value = serde_json::from_slice(&watch.payload).unwrap();
    assert_eq!(watch["ok"], true, "{watch}");
    let analysis = analyze(&producer, job).await;
    assert_eq!(analysis["results"]["BTC/USDT"]["candles"], 60, "{analysis}");
    // None of it took a subject the workers' permissions lack (the server says so in
    // their logs).
    let violations = permission_violations(worker.child.output());
    assert!(violations.is_empty(), "{violations:?}");
}

#[tokio::test]
async fn the_gateway_account_serves_http_and_may_do_nothing_else() {
    // The repository's server config as shipped; the gateway logs in as `gateway`.
    let (mut stack, port) = stack_on_nats_config(
        "jetstream.conf",
        &[
            ("CANDLEPIPE_NATS_PRODUCER_PASSWORD", "p-pass"),
            ("CANDLEPIPE_NATS_OPERATOR_PASSWORD", "o-pass"),
        ],
    )
    .await;
    stack
        .sim
        .set_faults("binance", json!({"stream_tick_ms": 200}))
        .await;
    let _workers = stack.worker(&["ingest", "fill", "stream"]).await;
    stack.set(
        "CANDLEPIPE_NATS_URL",
        format!("nats://gateway:g-pass@127.0.0.1:{port}"),
    );
    let mut gateway = stack.worker(&["gateway"]).await;
    let gw = gateway.gateway_url().await;

    // Candles, an exchange's format and live candles all work with its permissions.
    let (status, reply) = body(&format!(
        "{gw}/v1/candles?exchange=binance&symbol=BTC/USDT&interval=1m&limit=3"
    ))
    .await;
    assert_eq!(status, 200, "{}", text(&reply));
    let (status, rows) = body(&format!(
        "{gw}/binance/api/v3/klines?symbol=ETHUSDT&interval=1h&limit=2"
    ))
    .await;
    assert_eq!(status, 200, "{}", text(&rows));
    let mut live = reqwest::get(format!(
        "{gw}/v1/live?exchange=binance&symbol=BTC/USDT&interval=1m"
    ))
    .await
    .unwrap();
    assert_eq!(live.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(15), live.chunk())
        .await
        .expect("a live candle within 15 s")
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&first).contains("event: candle"),
        "{first:?}"
    );
    drop(live);
    let violations = permission_violations(gateway.child.output());
    assert!(violations.is_empty(), "{violations:?}");

    // The account itself may not publish jobs or control messages, nor take requests.
    let (as_gateway, mut events) = connect_watching(
        format!("nats://127.0.0.1:{port}"),
        async_nats::ConnectOptions::with_user_and_password("gateway".into(), "g-pass".into()),
    )
    .await;
    for subject in [
        "candlepipe.jobs.fill.binance",
        "candlepipe.control.llm.route",
    ] {
        as_gateway.publish(subject, "x".into()).await.unwrap();
        as_gateway.flush().await.unwrap();
        let refused = refusal(&mut events).await;
        assert!(refused.contains(subject), "{refused}");
    }
    let _sub = as_gateway
        .queue_subscribe("candlepipe.candles.get", "ingest".into())
        .await
        .unwrap();
    as_gateway.flush().await.unwrap();
    let refused = refusal(&mut events).await;
    assert!(refused.contains("candlepipe.candles.get"), "{refused}");
}
