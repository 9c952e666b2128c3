//! Connecting to NATS and Redis with bounded waits, so no command hangs on a dead server.

use std::time::Duration;

use anyhow::Context as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::Config;

/// Connects, retrying for `patience` (workers started before the server, or during a
/// restart); afterwards the client reconnects by itself.
pub async fn nats(
    cfg: &Config,
    name: &str,
    patience: Duration,
) -> anyhow::Result<async_nats::Client> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let opts = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(3))
            .request_timeout(Some(Duration::from_secs(10)))
            .max_reconnects(None);
        match opts.connect(&cfg.nats_url).await {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "NATS not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(e).context(format!("connecting to NATS at {}", redact(&cfg.nats_url)))
            }
        }
    }
}

pub async fn redis(cfg: &Config, patience: Duration) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(cfg.redis_url.as_str())
        .with_context(|| format!("invalid Redis URL {}", redact(&cfg.redis_url)))?;
    // While Redis is down, a call fails within about a second (ingest then answers from L1
    // or `unavailable`) instead of waiting out a long reconnect schedule; the manager keeps
    // reconnecting on later calls.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "Redis not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(e).context(format!("connecting to Redis at {}", redact(&cfg.redis_url)))
            }
        }
    }
}

/// A URL with any password or token replaced, for logs and messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_in_urls_are_hidden() {
        assert_eq!(
            super::redact("redis://user:pw@host:1"),
            "redis://***@host:1"
        );
        assert_eq!(
            super::redact("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
    }
}
