//! The `candlepipe sim` process and its control endpoints.

use std::process::Command;
use std::time::Duration;

use crate::process::Child;

pub struct Sim {
    pub url: String,
    http: reqwest::Client,
    _child: Child,
}

impl Sim {
    pub async fn start(bin: &str) -> Sim {
        let mut cmd = Command::new(bin);
        cmd.args(["sim", "--addr", "127.0.0.1:0"])
            .env("CANDLEPIPE_LOG", "warn");
        let mut child = Child::spawn("candlepipe sim", cmd);
        let line = child
            .wait_for_line("listening on ", Duration::from_secs(20))
            .await;
        let url = line.rsplit(' ').next().unwrap_or_default().to_string();
        Sim {
            url,
            http: reqwest::Client::new(),
            _child: child,
        }
    }

    /// The sim's WebSocket base (`ws://host:port`).
    pub fn ws_url(&self) -> String {
        self.url.replacen("http://", "ws://", 1)
    }

    /// `GET /sim/stats`: per exchange, `requests`, `queries`, `per_second`, `rate_limited`.
    pub async fn stats(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/sim/stats", self.url))
            .send()
            .await
            .expect("sim stats")
            .json()
            .await
            .expect("sim stats json")
    }

    pub async fn requests(&self, exchange: &str) -> u64 {
        self.stats().await[exchange]["requests"]
            .as_u64()
            .unwrap_or(0)
    }

    pub async fn queries(&self, exchange: &str) -> Vec<String> {
        self.stats().await[exchange]["queries"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|q| q.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `target` is an exchange, or `llm` for the simulated LLM (a fault's `symbol` is then
    /// the model it applies to).
    pub async fn set_faults(&self, target: &str, config: serde_json::Value) {
        let status = self
            .http
            .post(format!("{}/sim/faults/{target}", self.url))
            .json(&config)
            .send()
            .await
            .expect("sim faults")
            .status();
        assert!(status.is_success(), "sim refused faults {config}: {status}");
    }

    pub async fn reset(&self) {
        self.http
            .post(format!("{}/sim/reset", self.url))
            .send()
            .await
            .expect("sim reset");
    }
}
