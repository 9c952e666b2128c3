//! Connecting to NATS and Redis with bounded waits, so no command hangs on a dead server.

use std::sync::Arc;
use std::time::Duration;

use candlepipe_exchange::ExchangeClient;
use candlepipe_store::SeriesStore;
use candlepipe_worker::budget::RedisBudget;
use candlepipe_worker::cluster::stats::Counters;

use anyhow::Context as _;
use candlepipe_store::Redis;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::Config;

/// Credentials embedded in a URL (`nats://user:pass@host`, `nats://token@host`), which
/// async-nats does not use by itself; returns the URL without them.
fn split_credentials(url: &str) -> (String, Option<(String, Option<String>)>) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_string(), None);
    };
    let rest = &url[scheme_end + 3..];
    let host_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..host_start].rfind('@') else {
        return (url.to_string(), None);
    };
    let creds = &rest[..at];
    let clean = format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]);
    let (user, pass) = match creds.split_once(':') {
        Some((u, p)) => (percent_decode(u), Some(percent_decode(p))),
        None => (percent_decode(creds), None),
    };
    (clean, Some((user, pass)))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

type Credentials = Option<(String, Option<String>)>;

/// The servers of `CANDLEPIPE_NATS_URL` (one URL, or a comma-separated list for a cluster),
/// without credentials, and the credentials of the first URL that has any.
fn server_list(urls: &str) -> anyhow::Result<(Vec<async_nats::ServerAddr>, Credentials)> {
    let mut servers = Vec::new();
    let mut found: Credentials = None;
    for part in urls.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (url, creds) = split_credentials(part);
        found = found.or(creds);
        servers.push(
            url.parse::<async_nats::ServerAddr>()
                .with_context(|| format!("invalid NATS URL {}", redact(part)))?,
        );
    }
    anyhow::ensure!(!servers.is_empty(), "CANDLEPIPE_NATS_URL names no server");
    Ok((servers, found))
}

/// NATS options from the configuration: credentials from the URL, a creds file or an nkey
/// seed (`CANDLEPIPE_NATS_CREDS_FILE`, `CANDLEPIPE_NATS_NKEY_SEED`), a CA for `tls://`
/// servers (`CANDLEPIPE_NATS_TLS_CA`).
async fn nats_options(
    cfg: &Config,
    name: &str,
) -> anyhow::Result<(Vec<async_nats::ServerAddr>, async_nats::ConnectOptions)> {
    let (url, creds) = server_list(&cfg.nats_url)?;
    let mut opts = match creds {
        Some((user, Some(pass))) => async_nats::ConnectOptions::with_user_and_password(user, pass),
        Some((token, None)) => async_nats::ConnectOptions::with_token(token),
        None => async_nats::ConnectOptions::new(),
    };
    if let Some(file) = &cfg.nats_creds_file {
        opts = opts
            .credentials_file(file)
            .await
            .with_context(|| format!("reading NATS credentials file {}", file.display()))?;
    }
    if let Some(seed) = &cfg.nats_nkey_seed {
        opts = opts.nkey(seed.0.clone());
    }
    if let Some(ca) = &cfg.nats_tls_ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some(prefix) = &cfg.nats_inbox_prefix {
        opts = opts.custom_inbox_prefix(prefix);
    }
    Ok((
        url,
        opts.name(name)
            .connection_timeout(Duration::from_secs(3))
            .request_timeout(Some(Duration::from_secs(10)))
            .max_reconnects(None),
    ))
}

/// Connects, retrying for `patience` (workers started before the server, or during a
/// restart); afterwards the client reconnects by itself. Refused credentials fail at once.
pub async fn nats(
    cfg: &Config,
    name: &str,
    patience: Duration,
) -> anyhow::Result<async_nats::Client> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let (url, opts) = nats_options(cfg, name).await?;
        match opts.connect(url.as_slice()).await {
            Ok(c) => return Ok(c),
            Err(e)
                if e.kind() != async_nats::ConnectErrorKind::AuthorizationViolation
                    && tokio::time::Instant::now() < deadline =>
            {
                tracing::warn!(error = %e, "NATS not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(e).context(format!("connecting to NATS at {}", redact(&cfg.nats_url)))
            }
        }
    }
}

/// The CA of `CANDLEPIPE_REDIS_TLS_CA`, for `rediss://` servers not signed by a public CA.
fn redis_tls(cfg: &Config) -> anyhow::Result<Option<redis::TlsCertificates>> {
    cfg.redis_tls_ca
        .as_ref()
        .map(|ca| {
            let pem = std::fs::read(ca)
                .with_context(|| format!("reading the Redis TLS CA {}", ca.display()))?;
            Ok(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            })
        })
        .transpose()
}

/// While Redis is down, a call fails within about a second (ingest then answers from L1 or
/// `unavailable`) instead of waiting out a long reconnect schedule; the connection keeps
/// reconnecting on later calls.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// One server (`redis://` or `rediss://` for TLS), or a Redis Cluster given as a
/// comma-separated list of some of its nodes.
async fn redis_once(cfg: &Config) -> anyhow::Result<Result<Redis, redis::RedisError>> {
    let invalid = || format!("invalid Redis URL {}", redact(&cfg.redis_url));
    let tls = redis_tls(cfg)?;
    let nodes: Vec<&str> = cfg.redis_url.split(',').map(str::trim).collect();
    if nodes.len() > 1 {
        let mut builder = redis::cluster::ClusterClient::builder(nodes)
            .connection_timeout(REDIS_CONNECT_TIMEOUT)
            .response_timeout(REDIS_RESPONSE_TIMEOUT)
            .retries(1);
        if let Some(certs) = tls {
            builder = builder.certs(certs);
        }
        let client = builder.build().with_context(invalid)?;
        return Ok(client.get_async_connection().await.map(Redis::Cluster));
    }
    let client = node_client(cfg.redis_url.as_str(), tls).with_context(invalid)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_CONNECT_TIMEOUT))
        .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    Ok(ConnectionManager::new_with_config(client, config)
        .await
        .map(Redis::Single))
}

/// The client the ingest hears fill writes land with (a Redis pub/sub connection of its
/// own): the server, or a cluster's first listed node, since a `PUBLISH` reaches every node.
pub fn write_signals(cfg: &Config) -> anyhow::Result<redis::Client> {
    let node = cfg.redis_url.split(',').next().unwrap_or_default().trim();
    node_client(node, redis_tls(cfg)?)
        .with_context(|| format!("invalid Redis URL {}", redact(&cfg.redis_url)))
}

/// A client of one Redis server, over TLS with `tls`.
fn node_client(
    url: &str,
    tls: Option<redis::TlsCertificates>,
) -> redis::RedisResult<redis::Client> {
    match tls {
        Some(certs) => redis::Client::build_with_tls(url, certs),
        None => redis::Client::open(url),
    }
}

/// Connects to Redis, retrying for `patience`, and puts the process on Redis's clock (the
/// cluster's, see `candlepipe_worker::cluster::clock`).
pub async fn redis(cfg: &Config, patience: Duration) -> anyhow::Result<Redis> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match redis_once(cfg).await? {
            Ok(c) => {
                candlepipe_worker::cluster::clock::follow(c.clone())
                    .await
                    .context("reading Redis's clock (TIME)")?;
                return Ok(c);
            }
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

/// What fills the cache: the signed series store and an exchange client gated by the
/// cluster-wide budget (whose permits are counted in `stats`).
pub struct Filling {
    pub store: SeriesStore,
    pub exchange: ExchangeClient,
    pub budget: Arc<RedisBudget>,
}

pub async fn filling(
    cfg: &Config,
    nats: &async_nats::Client,
    redis: &Redis,
    stats: Arc<Counters>,
) -> anyhow::Result<Filling> {
    let store = SeriesStore::new(
        redis.clone(),
        cfg.keyring.clone(),
        &cfg.redis_prefix,
        cfg.history_cap,
    );
    let budget = RedisBudget::start(
        redis.clone(),
        &cfg.redis_prefix,
        nats.clone(),
        &cfg.prefix,
        &cfg.exchanges,
        stats,
    )
    .await
    .context("subscribing to exchange pauses")?;
    let exchange = ExchangeClient::new(cfg.exchanges.clone())
        .context("building the HTTP client")?
        .with_budget(budget.clone());
    Ok(Filling {
        store,
        exchange,
        budget,
    })
}

/// A URL with any password or token replaced, for logs and messages.
pub fn redact(url: &str) -> String {
    url.split(',')
        .map(|url| match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
            _ => url.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_come_out_of_nats_urls() {
        let (url, creds) = super::split_credentials("nats://cp:p%40ss@127.0.0.1:4222");
        assert_eq!(url, "nats://127.0.0.1:4222");
        assert_eq!(creds, Some(("cp".into(), Some("p@ss".into()))));
        let (url, creds) = super::split_credentials("tls://tok3n@nats.example:4443");
        assert_eq!(
            (url.as_str(), creds),
            ("tls://nats.example:4443", Some(("tok3n".into(), None)))
        );
        assert_eq!(super::split_credentials("nats://127.0.0.1:4222").1, None);
    }

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
        assert_eq!(
            super::redact("nats://u:p@a:1,nats://u:p@b:2"),
            "nats://***@a:1,nats://***@b:2"
        );
    }

    #[test]
    fn a_cluster_is_a_comma_separated_list() {
        let (servers, creds) =
            super::server_list("nats://cp:pw@nats-1:4222, nats://cp:pw@nats-2:4222").unwrap();
        assert_eq!(servers.len(), 2);
        assert_eq!(creds, Some(("cp".into(), Some("pw".into()))));
        assert!(super::server_list("nats://host:notaport").is_err());
        assert!(super::server_list(" , ").is_err());
    }
}
