//! Test harness: real `nats-server` and `redis-server` processes on free ports, the
//! `candlepipe` binary as simulator and workers, all stopped and cleaned up on drop.
//! Nothing here is mocked; only the exchanges are simulated (by `candlepipe sim`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod cluster;
mod process;
mod servers;
mod sim;
mod tls;

pub use cluster::{current_nats_server, NatsCluster};
pub use process::{Child, Worker};
pub use servers::{NatsServer, RedisCluster, RedisServer};
pub use sim::Sim;
pub use tls::TlsFiles;

use std::time::Duration;

/// The HMAC key every test process uses.
pub const TEST_HMAC_KEY: &str = "candlepipe-test-key-0123456789";

/// NATS, Redis and the simulator, plus the environment a worker needs to use them.
pub struct Stack {
    pub nats: NatsServer,
    pub redis: RedisServer,
    pub sim: Sim,
    pub bin: String,
    /// Extra `CANDLEPIPE_*` settings for every worker started from here.
    pub env: Vec<(String, String)>,
}

impl Stack {
    pub async fn start(bin: &str) -> Stack {
        Self::start_with(bin, NatsServer::start(), RedisServer::start()).await
    }

    /// With servers started some particular way (e.g. requiring credentials). The worker
    /// environment then needs the matching URLs in [`Stack::env`].
    pub async fn start_with(bin: &str, nats: NatsServer, redis: RedisServer) -> Stack {
        let sim = Sim::start(bin).await;
        Stack {
            nats,
            redis,
            sim,
            bin: bin.to_string(),
            env: Vec::new(),
        }
    }

    /// Sets `CANDLEPIPE_*` setting `key` for every worker started from here on.
    pub fn set(&mut self, key: &str, value: impl ToString) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// The environment for a `candlepipe` process against this stack.
    pub fn worker_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> =
            vec![
            ("CANDLEPIPE_NATS_URL".into(), self.nats.url()),
            ("CANDLEPIPE_REDIS_URL".into(), self.redis.url()),
            ("CANDLEPIPE_BINANCE_URL".into(), self.sim.url.clone()),
            ("CANDLEPIPE_BINANCE_ARCHIVE_URL".into(), self.sim.url.clone()),
            ("CANDLEPIPE_COINBASE_URL".into(), self.sim.url.clone()),
            ("CANDLEPIPE_KRAKEN_URL".into(), self.sim.url.clone()),
            ("CANDLEPIPE_BINANCE_RPS".into(), "1000".into()),
            ("CANDLEPIPE_COINBASE_RPS".into(), "1000".into()),
            ("CANDLEPIPE_KRAKEN_RPS".into(), "1000".into()),
            ("CANDLEPIPE_BINANCE_WS_URL".into(), self.sim.ws_url()),
            ("CANDLEPIPE_KRAKEN_WS_URL".into(), format!("{}/v2", self.sim.ws_url())),
            ("CANDLEPIPE_COINBASE_WS_URL".into(), self.sim.ws_url()),
            // Streams only for what a test watches (tests of streaming raise it).
            ("CANDLEPIPE_STREAM_HOT_PER_MINUTE".into(), "0".into()),
            ("CANDLEPIPE_HMAC_KEY".into(), TEST_HMAC_KEY.into()),
            // Tests run side by side: each gateway on a free port (`Worker::gateway_url`).
            ("CANDLEPIPE_GATEWAY_ADDR".into(), "127.0.0.1:0".into()),
            (
                "CANDLEPIPE_LOG".into(),
                "debug,async_nats=warn,hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn,h2=warn"
                    .into(),
            ),
        ];
        env.extend(self.env.iter().cloned());
        env
    }

    /// Starts `candlepipe run <roles>` and waits until each role says it is ready.
    pub async fn worker(&self, roles: &[&str]) -> Worker {
        Worker::start(&self.bin, roles, &self.worker_env()).await
    }

    /// Like [`Stack::worker`], with extra arguments after the roles.
    pub async fn worker_with(&self, roles: &[&str], args: &[&str]) -> Worker {
        Worker::start_with(&self.bin, roles, args, &self.worker_env()).await
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.nats.url())
            .await
            .expect("connect to test nats-server")
    }

    pub async fn redis_conn(&self) -> redis::aio::MultiplexedConnection {
        self.redis.conn().await
    }
}

/// Alters one byte in the middle of the value at `key`, as someone with access to Redis
/// might: what candlepipe must never serve.
pub async fn flip_a_byte(conn: &mut redis::aio::MultiplexedConnection, key: &str) {
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

/// Polls `check` every 50 ms until it returns `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
