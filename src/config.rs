//! Configuration: built-in defaults, overridden by `candlepipe.toml`, overridden by the
//! environment (`CANDLEPIPE_<KEY>`). Secrets are read only from the environment or a file it
//! names, and are never printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use candlepipe_core::{Exchange, Subjects};
use candlepipe_exchange::breaker::BreakerSettings;
use candlepipe_exchange::client::{Archive, Endpoint};
use candlepipe_exchange::ExchangeSettings;
use candlepipe_llm::{Prices, Provider};
use candlepipe_store::Keyring;
use candlepipe_worker::analyze::llm_route::RampSettings;
use candlepipe_worker::analyze::llm_spend::SpendLimits;
use candlepipe_worker::analyze::LlmSettings;
use candlepipe_worker::cluster::markets::MarketSettings;
use candlepipe_worker::gateway::{FairnessSettings, GatewaySettings};
use candlepipe_worker::jobs::disposition::RetryPolicy;
use candlepipe_worker::stream::{LiveSettings, Pace};
use candlepipe_worker::{RoleSettings, StreamSettings, WorkerSettings};

/// Used when `CANDLEPIPE_HMAC_KEY` is unset and a command that signs is told `--dev` (the
/// offline demo). Anyone can forge values signed with it: every worker and `candlepipe
/// check` warn while it is in use, and without `--dev` the commands that sign refuse to run.
const DEV_HMAC_KEY: &[u8] = b"candlepipe-insecure-development-key";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {source}")]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("setting {key} ({env}): cannot parse {value:?}: {why}")]
    Invalid {
        key: String,
        env: String,
        value: String,
        why: String,
    },
    #[error("{0} is a secret: set it in the environment, not in the config file")]
    SecretInFile(String),
    #[error("{path}: unknown setting{}: {}", if keys.len() == 1 { "" } else { "s" }, describe_unknown(keys))]
    Unknown {
        path: PathBuf,
        keys: Vec<(String, Option<String>)>,
    },
}

fn describe_unknown(keys: &[(String, Option<String>)]) -> String {
    keys.iter()
        .map(|(k, near)| match near {
            Some(n) => format!("{k} (did you mean {n}?)"),
            None => k.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A secret setting: its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub source: Option<PathBuf>,
    pub nats_url: String,
    /// NATS credentials file (`.creds`: JWT and nkey seed).
    pub nats_creds_file: Option<PathBuf>,
    /// NATS nkey seed; a secret, from the environment only.
    pub nats_nkey_seed: Option<Secret>,
    /// CA certificate for a `tls://` NATS server.
    pub nats_tls_ca: Option<PathBuf>,
    /// This connection's inbox prefix instead of `_INBOX` (a tenant's, e.g. `_INBOX_desk1`,
    /// which the workers must answer on: `CANDLEPIPE_REPLY_PREFIXES`).
    pub nats_inbox_prefix: Option<String>,
    pub redis_url: String,
    /// CA certificate (PEM) for a `rediss://` server not signed by a public CA.
    pub redis_tls_ca: Option<PathBuf>,
    pub prefix: String,
    /// Inbox prefixes workers answer on besides `_INBOX.` (`reply_prefixes`, comma-separated).
    pub replies: candlepipe_core::ReplyPolicy,
    pub redis_prefix: String,
    pub exchanges: ExchangeSettings,
    pub l1_capacity: u64,
    pub history_cap: usize,
    pub fill_wait: Duration,
    pub max_timeout: Duration,
    pub admission_margin: Duration,
    pub fill_concurrency: usize,
    pub bulk_concurrency: usize,
    pub streams: StreamSettings,
    /// How often each process adds its counts to the cluster totals.
    pub stats_flush: Duration,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    pub keyring: Keyring,
    pub insecure_dev_key: bool,
    pub analysis_concurrency: usize,
    pub analysis_timeout: Duration,
    pub markets: MarketSettings,
    pub llm: LlmSettings,
    pub live: LiveSettings,
    /// Requests a minute for a series' latest candles that make ingest want it streamed.
    pub hot_per_minute: u32,
    /// Where the gateway role listens for HTTP, and how its clients share it.
    pub gateway: GatewaySettings,
}

/// Looks a setting up in the environment, then the file table, then takes the default.
struct Lookup {
    table: toml::Table,
    /// Every key looked up: what the file may hold.
    known: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl Lookup {
    fn env_name(key: &str) -> String {
        format!("CANDLEPIPE_{}", key.to_ascii_uppercase())
    }

    fn raw(&self, key: &str) -> Option<String> {
        self.known.borrow_mut().insert(key.to_string());
        if let Ok(v) = std::env::var(Self::env_name(key)) {
            return Some(v);
        }
        self.table.get(key).map(|v| match v {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    fn get<T: FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                key: key.to_string(),
                env: Self::env_name(key),
                value: v,
                why: e.to_string(),
            }),
        }
    }

    fn millis(&self, key: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.get(key, default_ms).map(Duration::from_millis)
    }

    /// The file's keys no setting read (a typo, or a setting of another version), each with
    /// the known key it is closest to, if one is near.
    fn unknown(&self) -> Vec<(String, Option<String>)> {
        let known = self.known.borrow();
        self.table
            .keys()
            .filter(|k| !known.contains(*k))
            .map(|k| {
                let near = known
                    .iter()
                    .map(|n| (edit_distance(k, n), n))
                    .filter(|(d, _)| *d <= 2)
                    .min()
                    .map(|(_, n)| n.clone());
                (k.clone(), near)
            })
            .collect()
    }
}

/// Levenshtein distance: the single-character edits turning `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Default request budget per exchange, from their published public limits:
/// Binance 6,000 request weight a minute with klines weighing 2 (we keep well under),
/// Coinbase 10 public requests a second, Kraken about 1 a second.
fn default_rps(ex: Exchange) -> u32 {
    match ex {
        Exchange::Binance => 20,
        Exchange::Coinbase => 10,
        Exchange::Kraken => 1,
    }
}

/// How long after an interval closes its candle is surely published: an interval still
/// without a candle then has no trades. Binance publishes at once, Coinbase's candles can
/// lag by tens of seconds, Kraken commits a row when the next interval starts.
fn default_publish_delay(ex: Exchange) -> Duration {
    Duration::from_secs(match ex {
        Exchange::Binance => 15,
        Exchange::Coinbase => 60,
        Exchange::Kraken => 30,
    })
}

fn default_url(ex: Exchange) -> &'static str {
    match ex {
        Exchange::Binance => "https://api.binance.com",
        Exchange::Coinbase => "https://api.exchange.coinbase.com",
        Exchange::Kraken => "https://api.kraken.com",
    }
}

impl Config {
    /// Loads `path`, or `$CANDLEPIPE_CONFIG`, or `./candlepipe.toml` if it exists.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("CANDLEPIPE_CONFIG").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("candlepipe.toml")).filter(|p| p.exists()));
        let table = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                toml::from_str::<toml::Table>(&text).map_err(|source| ConfigError::Toml {
                    path: p.clone(),
                    source,
                })?
            }
            None => toml::Table::new(),
        };
        for secret in [
            "hmac_key",
            "hmac_previous_keys",
            "hmac_next_keys",
            "llm_api_key",
            "llm_canary_api_key",
            "nats_nkey_seed",
        ] {
            if table.contains_key(secret) {
                return Err(ConfigError::SecretInFile(secret.to_string()));
            }
        }
        let l = Lookup {
            table,
            known: Default::default(),
        };
        let endpoint = |ex: Exchange| -> Result<Endpoint, ConfigError> {
            let rps = l.get(&format!("{ex}_rps"), default_rps(ex))?;
            Ok(Endpoint {
                url: l.get(&format!("{ex}_url"), default_url(ex).to_string())?,
                rps,
                burst: l.get(&format!("{ex}_burst"), 1)?,
                publish_delay: Duration::from_millis(l.get(
                    &format!("{ex}_publish_delay_ms"),
                    default_publish_delay(ex).as_millis() as u64,
                )?),
            })
        };
        let (keyring, insecure_dev_key) = keyring(&l)?;
        let defaults = StreamSettings::default();
        let cfg = Config {
            source: path,
            nats_url: l.get("nats_url", "nats://127.0.0.1:4222".to_string())?,
            nats_creds_file: l.raw("nats_creds_file").map(PathBuf::from),
            nats_nkey_seed: std::env::var("CANDLEPIPE_NATS_NKEY_SEED").ok().map(Secret),
            nats_tls_ca: l.raw("nats_tls_ca").map(PathBuf::from),
            nats_inbox_prefix: inbox_prefix(&l)?,
            redis_url: l.get("redis_url", "redis://127.0.0.1:6379".to_string())?,
            redis_tls_ca: l.raw("redis_tls_ca").map(PathBuf::from),
            prefix: l.get("prefix", "candlepipe".to_string())?,
            replies: reply_prefixes(&l)?,
            redis_prefix: l.get("redis_prefix", "cp:".to_string())?,
            exchanges: ExchangeSettings {
                binance: endpoint(Exchange::Binance)?,
                coinbase: endpoint(Exchange::Coinbase)?,
                kraken: endpoint(Exchange::Kraken)?,
                binance_archive: Archive {
                    url: l.get(
                        "binance_archive_url",
                        candlepipe_exchange::binance_archive::DEFAULT_URL.to_string(),
                    )?,
                    rps: l.get("binance_archive_rps", 10)?,
                },
                timeout: l.millis("exchange_timeout_ms", 10_000)?,
                breaker: BreakerSettings {
                    window: l.millis("breaker_window_ms", 30_000)?,
                    min_samples: l.get("breaker_min_samples", 10)?,
                    failure_ratio: l.get("breaker_failure_ratio", 0.5)?,
                    cool_down: l.millis("breaker_cool_down_ms", 5_000)?,
                },
            },
            l1_capacity: l.get("l1_capacity", 256 << 20)?,
            history_cap: l.get("history_cap", 10_000)?,
            fill_wait: l.millis("fill_wait_ms", 8_000)?,
            max_timeout: l.millis("max_timeout_ms", 120_000)?,
            admission_margin: l.millis("admission_margin_ms", 500)?,
            fill_concurrency: l.get("fill_concurrency", 16)?,
            bulk_concurrency: l.get("bulk_concurrency", 2)?,
            streams: StreamSettings {
                replicas: l.get("stream_replicas", defaults.replicas)?,
                dedup_window: l
                    .millis("dedup_window_ms", defaults.dedup_window.as_millis() as u64)?,
                ack_wait: l.millis("ack_wait_ms", defaults.ack_wait.as_millis() as u64)?,
                max_deliver: l.get("max_deliver", defaults.max_deliver)?,
                max_ack_pending: l.get("max_ack_pending", defaults.max_ack_pending)?,
                jobs_max_messages: l.get("jobs_max_messages", defaults.jobs_max_messages)?,
                jobs_max_per_subject: l
                    .get("jobs_max_per_subject", defaults.jobs_max_per_subject)?,
                jobs_max_bytes: l.get("jobs_max_bytes", defaults.jobs_max_bytes)?,
            },
            stats_flush: l.millis("stats_flush_ms", 5_000)?,
            retry_base: l.millis("retry_base_ms", 500)?,
            retry_cap: l.millis("retry_max_ms", 30_000)?,
            keyring,
            insecure_dev_key,
            analysis_concurrency: l.get("analysis_concurrency", 8)?,
            analysis_timeout: l.millis("analysis_timeout_ms", 60_000)?,
            markets: MarketSettings {
                refresh: l.millis("markets_refresh_ms", 3_600_000)?,
                unknown_ttl: l.millis("unknown_symbol_ttl_ms", 600_000)?,
            },
            llm: llm(&l)?,
            hot_per_minute: l.get("stream_hot_per_minute", 30)?,
            gateway: GatewaySettings {
                addr: l.get(
                    "gateway_addr",
                    std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
                )?,
                answer_ttl: l.millis("gateway_cache_ms", 250)?,
                fairness: FairnessSettings {
                    concurrency: l.get("gateway_client_concurrency", 64)?,
                    queue: l.get("gateway_client_queue", 4096)?,
                    client_header: match l.raw("gateway_client_header") {
                        None => None,
                        Some(v) if v.trim().is_empty() => None,
                        Some(v) => Some(v.trim().parse().map_err(
                            |e: axum::http::header::InvalidHeaderName| ConfigError::Invalid {
                                key: "gateway_client_header".into(),
                                env: Lookup::env_name("gateway_client_header"),
                                value: v.clone(),
                                why: e.to_string(),
                            },
                        )?),
                    },
                },
            },
            live: LiveSettings {
                binance_ws_url: l.get(
                    "binance_ws_url",
                    "wss://stream.binance.com:9443".to_string(),
                )?,
                kraken_ws_url: l.get("kraken_ws_url", "wss://ws.kraken.com/v2".to_string())?,
                coinbase_ws_url: l.get(
                    "coinbase_ws_url",
                    "wss://ws-feed.exchange.coinbase.com".to_string(),
                )?,
                silence: l.millis("stream_silence_ms", 10_000)?,
                watch_ttl: l.millis("watch_ttl_ms", 90_000)?,
                max_series: l.get("stream_max_series", 2_000)?,
                confirm_paces: HashMap::new(),
            },
        };
        let unknown = l.unknown();
        match (&cfg.source, unknown.is_empty()) {
            (Some(path), false) => Err(ConfigError::Unknown {
                path: path.clone(),
                keys: unknown,
            }),
            _ => Ok(cfg),
        }
    }

    /// For commands that sign Redis values: an error naming the setting when no key is set,
    /// unless `dev` allows the public development key (with a warning).
    pub fn require_hmac_key(&self, dev: bool) -> anyhow::Result<()> {
        match (self.insecure_dev_key, dev) {
            (false, _) => Ok(()),
            (true, true) => {
                tracing::warn!("CANDLEPIPE_HMAC_KEY is not set: --dev signs Redis values with the public development key; never use it beyond a local trial");
                Ok(())
            }
            (true, false) => anyhow::bail!(
                "CANDLEPIPE_HMAC_KEY is not set: Redis values would be signed with a public key \
                 anyone can forge. Set CANDLEPIPE_HMAC_KEY (at least {MIN_KEY_BYTES} bytes) or \
                 CANDLEPIPE_HMAC_KEY_FILE; for a local trial only, pass --dev"
            ),
        }
    }

    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            subjects: Subjects::new(&self.prefix),
            replies: self.replies.clone(),
            redis_prefix: self.redis_prefix.clone(),
            streams: self.streams.clone(),
            fill_wait: self.fill_wait,
            max_timeout: self.max_timeout.max(self.fill_wait),
            admission_margin: self.admission_margin,
            fill_concurrency: self.fill_concurrency,
            bulk_concurrency: self.bulk_concurrency,
            retry: RetryPolicy {
                max_deliver: self.streams.max_deliver.max(1) as u64,
                base: self.retry_base,
                cap: self.retry_cap,
            },
            analysis_concurrency: self.analysis_concurrency,
            analysis_timeout: self.analysis_timeout,
            markets: self.markets,
            hot_per_minute: self.hot_per_minute,
            stream_silence: self.live.silence,
        }
    }

    /// The settings only one role reads.
    pub fn role_settings(&self) -> RoleSettings {
        RoleSettings {
            // Set where the process connects (`connect::write_signals`).
            ingest: Default::default(),
            gateway: self.gateway.clone(),
            llm: self.llm.clone(),
            live: LiveSettings {
                confirm_paces: [Exchange::Kraken, Exchange::Coinbase]
                    .into_iter()
                    .map(|ex| {
                        let e = self.exchanges.endpoint(ex);
                        let pace = Pace {
                            rps: e.rps,
                            publish_delay: e.publish_delay.as_millis() as i64,
                        };
                        (ex, pace)
                    })
                    .collect(),
                ..self.live.clone()
            },
        }
    }
}

/// The primary LLM (`llm_*`) and the optional canary (`llm_canary_*`); API keys from the
/// environment only.
/// `nats_inbox_prefix`: a subject prefix without wildcards, `$` or a trailing dot.
fn inbox_prefix(l: &Lookup) -> Result<Option<String>, ConfigError> {
    let Some(raw) = l.raw("nats_inbox_prefix").filter(|p| !p.trim().is_empty()) else {
        return Ok(None);
    };
    let prefix = raw.trim().to_string();
    let policy = candlepipe_core::ReplyPolicy::with_prefixes([format!("{prefix}.")]);
    match policy {
        Ok(_) => Ok(Some(prefix)),
        Err(why) => Err(ConfigError::Invalid {
            key: "nats_inbox_prefix".into(),
            env: Lookup::env_name("nats_inbox_prefix"),
            value: raw,
            why: format!("{why} (give it without the trailing dot, e.g. _INBOX_desk1)"),
        }),
    }
}

fn reply_prefixes(l: &Lookup) -> Result<candlepipe_core::ReplyPolicy, ConfigError> {
    let raw = l.raw("reply_prefixes").unwrap_or_default();
    candlepipe_core::ReplyPolicy::with_prefixes(raw.split(',')).map_err(|why| {
        ConfigError::Invalid {
            key: "reply_prefixes".into(),
            env: Lookup::env_name("reply_prefixes"),
            value: raw.clone(),
            why,
        }
    })
}

fn llm(l: &Lookup) -> Result<LlmSettings, ConfigError> {
    let provider = |tag: &str, default_name: &str| -> Result<Option<Provider>, ConfigError> {
        // Read before the URL decides, so that each is a known setting either way.
        let name = l.get(&format!("{tag}_provider"), default_name.to_string())?;
        let model = l.get(&format!("{tag}_model"), "gpt-4o-mini".to_string())?;
        let Some(url) = l
            .raw(&format!("{tag}_url"))
            .filter(|u| !u.trim().is_empty())
        else {
            return Ok(None);
        };
        Ok(Some(Provider {
            name,
            url,
            model,
            api_key: std::env::var(Lookup::env_name(&format!("{tag}_api_key")))
                .ok()
                .filter(|k| !k.is_empty()),
        }))
    };
    // Built in, then a LiteLLM price file, then `model=input:output` pairs: the later wins.
    let mut prices = Prices::built_in();
    let prices_file: String = l.get("llm_prices_file", String::new())?;
    if !prices_file.is_empty() {
        let invalid = |why: String| ConfigError::Invalid {
            key: "llm_prices_file".into(),
            env: Lookup::env_name("llm_prices_file"),
            value: prices_file.clone(),
            why,
        };
        let text = std::fs::read_to_string(&prices_file).map_err(|e| invalid(e.to_string()))?;
        prices.extend(Prices::from_litellm(&text).map_err(invalid)?);
    }
    let prices_text: String = l.get("llm_prices", String::new())?;
    let extra = Prices::parse(&prices_text).map_err(|why| ConfigError::Invalid {
        key: "llm_prices".into(),
        env: Lookup::env_name("llm_prices"),
        value: prices_text.clone(),
        why,
    })?;
    prices.extend(extra);
    let weight: u8 = l.get("llm_canary_initial_weight", 10)?;
    Ok(LlmSettings {
        primary: provider("llm", "primary")?,
        canary: provider("llm_canary", "canary")?,
        prices,
        limits: SpendLimits {
            daily_budget_usd: l.get("llm_daily_budget_usd", 5.0)?,
            rpm: l.get("llm_rpm", 60)?,
            tpm: l.get("llm_tpm", 100_000)?,
            max_wait: l.millis("llm_max_wait_ms", 5_000)?,
        },
        max_tokens: l.get("llm_max_tokens", 300)?,
        timeout: l.millis("llm_timeout_ms", 20_000)?,
        ramp: RampSettings {
            window: l.millis("llm_canary_window_ms", 300_000)?,
            min_requests: l.get("llm_canary_min_requests", 20)?,
            initial_weight: weight.min(100),
        },
    })
}

/// The shortest HMAC key accepted, current or not.
const MIN_KEY_BYTES: usize = 16;

/// `CANDLEPIPE_HMAC_KEY` (or `CANDLEPIPE_HMAC_KEY_FILE`) signs; `CANDLEPIPE_HMAC_KEY_ID`
/// names it. `CANDLEPIPE_HMAC_PREVIOUS_KEYS` and `CANDLEPIPE_HMAC_NEXT_KEYS` (`id:key,…`)
/// only verify: the keys of before a rotation, and of after it while it rolls out.
fn keyring(l: &Lookup) -> Result<(Keyring, bool), ConfigError> {
    let id: String = l.get("hmac_key_id", "k1".to_string())?;
    let invalid = |key: &str, why: String| ConfigError::Invalid {
        key: key.into(),
        env: Lookup::env_name(key),
        value: "<secret>".into(),
        why,
    };
    let key = match (
        std::env::var("CANDLEPIPE_HMAC_KEY"),
        std::env::var_os("CANDLEPIPE_HMAC_KEY_FILE"),
    ) {
        (Ok(k), _) => Some(k.into_bytes()),
        (Err(_), Some(file)) => Some(
            std::fs::read_to_string(&file)
                .map_err(|e| invalid("hmac_key_file", e.to_string()))?
                .trim()
                .as_bytes()
                .to_vec(),
        ),
        _ => None,
    };
    if key.as_ref().is_some_and(|k| k.len() < MIN_KEY_BYTES) {
        return Err(invalid(
            "hmac_key",
            format!("must be at least {MIN_KEY_BYTES} bytes"),
        ));
    }
    let insecure = key.is_none();
    let mut ring = Keyring::new(&id, key.as_deref().unwrap_or(DEV_HMAC_KEY))
        .remembering(l.get("verified_capacity", 32 << 20)?);
    for setting in ["hmac_previous_keys", "hmac_next_keys"] {
        let Ok(list) = std::env::var(Lookup::env_name(setting)) else {
            continue;
        };
        for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
            let (other_id, other) = pair
                .split_once(':')
                .ok_or_else(|| invalid(setting, "expected id:key pairs".into()))?;
            let other = other.trim().as_bytes();
            if other.len() < MIN_KEY_BYTES {
                return Err(invalid(
                    setting,
                    format!(
                        "key {:?} must be at least {MIN_KEY_BYTES} bytes",
                        other_id.trim()
                    ),
                ));
            }
            ring = ring.with_previous(other_id.trim(), other);
        }
    }
    Ok((ring, insecure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let seed = "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY";
        let shown = format!("{:?}", Some(Secret(seed.into())));
        assert!(!shown.contains("SUAC"), "{shown}");
        assert_eq!(shown, "Some(<secret>)");
    }
}
