//! Three nodes of `nats/cluster.conf` on free loopback ports, run by a current nats-server
//! (`$CANDLEPIPE_NATS_CURRENT`, which `scripts/test.sh` fetches: the config needs 2.10+).
//! The config's fixed ports, hosts and store path are rewritten for the test; each rewrite
//! must find its line, so a change to the config that the test does not follow fails loudly.

use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::Child;
use crate::servers::free_port;

pub struct NatsCluster {
    pub client_ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
    _dirs: Vec<TempDir>,
}

/// The current nats-server binary: `$CANDLEPIPE_NATS_CURRENT`, else the one
/// `scripts/test.sh` fetched into `.tools/`.
pub fn current_nats_server() -> String {
    if let Ok(bin) = std::env::var("CANDLEPIPE_NATS_CURRENT") {
        return bin;
    }
    let tools = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools");
    std::fs::read_dir(&tools)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("nats-server"))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| {
            panic!(
                "no current nats-server: run the suite with scripts/test.sh, which fetches \
                 nats-server 2.10+ into .tools/ (or set CANDLEPIPE_NATS_CURRENT)"
            )
        })
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "cluster config has no {from:?}");
    text.replacen(from, to, 1)
}

impl NatsCluster {
    /// Starts the three nodes; tries again on new ports when another process took one of
    /// the free ports picked first.
    pub async fn start(config: &str) -> NatsCluster {
        for _ in 0..5 {
            if let Some(cluster) = Self::try_start(config).await {
                return cluster;
            }
        }
        panic!("three nats-server nodes could not get free ports in five tries");
    }

    async fn try_start(config: &str) -> Option<NatsCluster> {
        let bin = current_nats_server();
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..3 {
            let dir = tempfile::tempdir().expect("node dir");
            let mut conf =
                replace_once(config, "port: 4222", &format!("port: {}", client_ports[i]));
            conf = replace_once(
                &conf,
                "http_port: 8222",
                &format!("http_port: {}", free_port()),
            );
            conf = replace_once(
                &conf,
                "store_dir: /data/jetstream",
                &format!("store_dir: \"{}\"", dir.path().join("js").display()),
            );
            conf = replace_once(
                &conf,
                "listen: 0.0.0.0:6222",
                &format!("listen: 127.0.0.1:{}", route_ports[i]),
            );
            for (k, port) in route_ports.iter().enumerate() {
                conf = replace_once(
                    &conf,
                    &format!("nats-route://nats-{}:6222", k + 1),
                    &format!("nats-route://127.0.0.1:{port}"),
                );
            }
            let path = dir.path().join("node.conf");
            std::fs::write(&path, conf).expect("write node config");
            let mut cmd = Command::new(&bin);
            cmd.args(["-a", "127.0.0.1", "-c"])
                .arg(&path)
                .env("NATS_SERVER_NAME", format!("nats-{}", i + 1));
            nodes.push(Some(Child::spawn(&format!("nats-{}", i + 1), cmd)));
            dirs.push(dir);
        }
        let mut cluster = NatsCluster {
            client_ports,
            nodes,
            _dirs: dirs,
        };
        for node in cluster.nodes.iter_mut().flatten() {
            if let Err(out) = node
                .try_wait_for_line("Server is ready", Duration::from_secs(20))
                .await
            {
                assert!(
                    out.iter().any(|l| l.contains("address already in use")),
                    "{} exited before it was ready:\n{}",
                    node.name,
                    out.join("\n")
                );
                return None;
            }
        }
        // JetStream answers once the nodes have elected a metadata leader.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !cluster.nodes.iter().flatten().any(|n| {
            n.output()
                .iter()
                .any(|l| l.contains("JetStream cluster new metadata leader"))
        }) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no JetStream metadata leader:\n{}",
                cluster
                    .nodes
                    .iter()
                    .flatten()
                    .flat_map(|n| n.output())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(cluster)
    }

    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.client_ports[i])
    }

    /// Every node's URL, comma-separated, as a client lists a cluster.
    pub fn urls(&self) -> String {
        (0..3).map(|i| self.url(i)).collect::<Vec<_>>().join(",")
    }

    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            c.kill();
        }
    }
}
