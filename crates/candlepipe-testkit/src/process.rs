//! Child processes whose output is collected (so pipes never fill) and which are killed on
//! drop; a failing test prints their last lines.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Child {
    pub name: String,
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Child {
    pub fn spawn(name: &str, mut cmd: Command) -> Child {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            collect(out, lines.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(err, lines.clone());
        }
        Child {
            name: name.to_string(),
            child,
            lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until a line contains `needle` (`Ok` with that line), or the process exits
    /// first (`Err` with everything it printed).
    pub async fn try_wait_for_line(
        &mut self,
        needle: &str,
        within: Duration,
    ) -> Result<String, Vec<String>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(l) = self.output().into_iter().find(|l| l.contains(needle)) {
                return Ok(l);
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(self.output());
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{} did not print {needle:?} within {within:?}:\n{}",
                    self.name,
                    self.output().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a line contains `needle`; returns that line.
    pub async fn wait_for_line(&mut self, needle: &str, within: Duration) -> String {
        match self.try_wait_for_line(needle, within).await {
            Ok(line) => line,
            Err(out) => panic!(
                "{} exited before printing {needle:?}:\n{}",
                self.name,
                out.join("\n")
            ),
        }
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status();
    }

    /// Waits for the process to exit; returns its exit code (None if killed by a signal).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{} still running after {within:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stream: impl std::io::Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Ok(mut l) = lines.lock() {
                l.push(line);
            }
        }
    });
}

impl Drop for Child {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let out = self.output();
            let tail = &out[out.len().saturating_sub(40)..];
            eprintln!("--- last lines of {} ---\n{}", self.name, tail.join("\n"));
        }
        self.kill();
    }
}

/// A `candlepipe run` process.
pub struct Worker {
    pub child: Child,
}

impl Worker {
    pub async fn start(bin: &str, roles: &[&str], env: &[(String, String)]) -> Worker {
        Self::start_with(bin, roles, &[], env).await
    }

    /// With extra arguments after the roles (e.g. `--metrics-addr 127.0.0.1:0`).
    pub async fn start_with(
        bin: &str,
        roles: &[&str],
        args: &[&str],
        env: &[(String, String)],
    ) -> Worker {
        let mut cmd = Command::new(bin);
        cmd.arg("run").args(roles).args(args);
        cmd.env_clear();
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut child = Child::spawn(&format!("candlepipe run {}", roles.join(" ")), cmd);
        for role in roles {
            let roles: &[&str] = if *role == "all" {
                &["ingest", "fill", "analyze", "stream", "gateway"]
            } else {
                std::slice::from_ref(role)
            };
            for r in roles {
                child
                    .wait_for_line(&format!("{r} ready"), Duration::from_secs(30))
                    .await;
            }
        }
        Worker { child }
    }

    /// `http://host:port` of the gateway role, once the worker has logged it.
    pub async fn gateway_url(&mut self) -> String {
        self.logged_url("gateway ready").await
    }

    /// `http://host:port` of the metrics endpoint, once the worker has logged it.
    pub async fn metrics_url(&mut self) -> String {
        self.logged_url("metrics listening").await
    }

    /// `http://<addr>` from the `addr=` of the line holding `needle`.
    async fn logged_url(&mut self, needle: &str) -> String {
        let line = self
            .child
            .wait_for_line(needle, Duration::from_secs(10))
            .await;
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .unwrap_or_default()
            .to_string();
        format!("http://{addr}")
    }
}
