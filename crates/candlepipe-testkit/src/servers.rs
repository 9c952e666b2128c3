//! `nats-server` (with JetStream) and `redis-server` on free loopback ports.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::Child;

fn require(binary: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {binary}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{binary} is not installed; run: apt-get install -y {package}"
    );
}

pub struct NatsServer {
    pub port: u16,
    dir: TempDir,
    args: Vec<String>,
    /// Environment given to the server (a config file's `$VARIABLES`).
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        Self::start_with(&[])
    }

    /// With extra `nats-server` arguments (e.g. `--user u --pass p`).
    pub fn start_with(args: &[&str]) -> NatsServer {
        Self::start_with_env(args, &[])
    }

    /// With extra arguments and environment variables (e.g. the passwords a config file's
    /// `$VARIABLES` name).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> NatsServer {
        require("nats-server", "nats-server");
        let dir = tempfile::tempdir().expect("temp dir for JetStream");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, port) = Self::spawn(&dir, None, &args, &env);
        NatsServer {
            port,
            dir,
            args,
            env,
            child: Some(child),
        }
    }

    fn spawn(
        dir: &TempDir,
        port: Option<u16>,
        args: &[String],
        env: &[(String, String)],
    ) -> (Child, u16) {
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-js", "-sd"])
            .arg(dir.path())
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.args(["-p", &port.map_or("-1".to_string(), |p| p.to_string())]);
        let child = Child::spawn("nats-server", cmd);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found = child
                .output()
                .iter()
                .find(|l| l.contains("Listening for client connections on"))
                .and_then(|l| l.rsplit(':').next())
                .and_then(|p| p.trim().parse::<u16>().ok());
            if let Some(p) = found {
                return (child, p);
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not start:\n{}",
                child.output().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server; its JetStream store is kept for [`NatsServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        let (child, _) = Self::spawn(&self.dir, Some(self.port), &self.args, &self.env);
        self.child = Some(child);
    }
}

pub struct RedisServer {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// With extra `redis-server` arguments (e.g. `--requirepass secret`).
    pub fn start_with(args: &[&str]) -> RedisServer {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Self::start_on_free_port(|_| args.clone())
    }

    /// Serving TLS only (`rediss://`), with `tls`'s certificate, plus extra arguments.
    pub fn start_tls(tls: &crate::TlsFiles, args: &[&str]) -> RedisServer {
        let path = |p: &std::path::Path| p.display().to_string();
        let (cert, key, ca) = (path(&tls.cert), path(&tls.key), path(&tls.ca));
        Self::start_on_free_port(|port| {
            let mut a: Vec<String> = vec![
                "--tls-port".into(),
                port.to_string(),
                "--port".into(),
                "0".into(),
                "--tls-cert-file".into(),
                cert.clone(),
                "--tls-key-file".into(),
                key.clone(),
                "--tls-ca-cert-file".into(),
                ca.clone(),
                "--tls-auth-clients".into(),
                "no".into(),
            ];
            a.extend(args.iter().map(|s| s.to_string()));
            a
        })
    }

    /// redis-server has no "any port" option: pick one and retry if someone took it.
    fn start_on_free_port(args_for: impl Fn(u16) -> Vec<String>) -> RedisServer {
        require("redis-server", "redis-server");
        for _ in 0..10 {
            let port = free_port();
            let args = args_for(port);
            if let Some(child) = Self::spawn(port, &args) {
                return RedisServer {
                    port,
                    args,
                    child: Some(child),
                };
            }
        }
        panic!("could not start redis-server on a free port");
    }

    fn spawn(port: u16, args: &[String]) -> Option<Child> {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        cmd.args(args);
        let mut child = Child::spawn("redis-server", cmd);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child
                .output()
                .iter()
                .any(|l| l.contains("Ready to accept connections"))
            {
                return Some(child);
            }
            if child
                .output()
                .iter()
                .any(|l| l.contains("Address already in use"))
            {
                child.kill();
                return None;
            }
            assert!(
                !child.output().iter().any(|l| l.contains("Exiting")),
                "redis-server refused its arguments:\n{}",
                child.output().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill();
        None
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A plain connection, for tests that look at or alter the keys themselves.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis-server")
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Starts it again on the same port (empty: no persistence in tests).
    pub fn restart(&mut self) {
        self.stop();
        self.child = Some(
            Self::spawn(self.port, &self.args).expect("redis-server restart on the same port"),
        );
    }
}

/// Three `redis-server` masters in cluster mode, their slots assigned by
/// `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    _dir: TempDir,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        require("redis-cli", "redis-tools");
        let dir = tempfile::tempdir().expect("temp dir for cluster configs");
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_on_free_port(|port| {
                    vec![
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-config-file".into(),
                        dir.path()
                            .join(format!("nodes-{port}.conf"))
                            .display()
                            .to_string(),
                        "--cluster-node-timeout".into(),
                        "2000".into(),
                    ]
                })
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for n in &nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &n.port.to_string(), "cluster", "info"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster not ok: {info}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes, _dir: dir }
    }

    /// The nodes as candlepipe takes a cluster: a comma-separated list of URLs.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.url())
            .collect::<Vec<_>>()
            .join(",")
    }
}
