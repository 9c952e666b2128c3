//! Small signed values kept for a while: analysis results and LLM commentary. Each is a
//! MessagePack body in the same HMAC envelope as the series, under `<prefix><name>`, with a
//! time to live. A value that fails verification is never returned: deleted, counted, logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::Redis;
use candlepipe_core::now_ms;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::envelope::Unusable;
use crate::{Keyring, StoreError};

#[derive(Clone)]
pub struct Records {
    conn: Redis,
    keyring: Keyring,
    prefix: Arc<str>,
    tampered: Arc<AtomicU64>,
}

impl Records {
    pub fn new(conn: Redis, keyring: Keyring, prefix: &str) -> Self {
        Records {
            conn,
            keyring,
            prefix: prefix.into(),
            tampered: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Stores `value` under `name` for `ttl` (at least 1 ms).
    pub async fn put<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = self.key(name);
        let body = rmp_serde::to_vec_named(value).map_err(|e| StoreError::Encode(e.to_string()))?;
        let sealed = self.keyring.seal(&key, 1, now_ms(), &body);
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(&key)
            .arg(sealed)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// The value under `name`, if present and verified.
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        let key = self.key(name);
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        let Some(raw) = raw else { return Ok(None) };
        let value = self
            .keyring
            .open(&key, &raw)
            .map_err(Unusable::from)
            .and_then(|o| rmp_serde::from_slice::<T>(&o.body).map_err(Unusable::undecodable));
        match value {
            Ok(v) => Ok(Some(v)),
            Err(why) => {
                if discard(&mut conn, &key, &why).await {
                    self.tampered.fetch_add(1, Ordering::Relaxed);
                }
                Ok(None)
            }
        }
    }

    pub fn tampered_total(&self) -> u64 {
        self.tampered.load(Ordering::Relaxed)
    }
}

/// Values logged as unusable lately, by Redis key, so that each is logged once a minute
/// however often it is read. std's lock: held for one map update, never across `.await`.
static LOGGED: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
> = std::sync::LazyLock::new(Default::default);

/// Whether `key` was not logged in the last minute (and notes that it is now).
fn log_now(key: &str) -> bool {
    let now = std::time::Instant::now();
    let mut logged = LOGGED.lock().unwrap_or_else(|p| p.into_inner());
    if logged.len() > 10_000 {
        logged.retain(|_, at| now.duration_since(*at) < Duration::from_secs(60));
    }
    match logged.get(key) {
        Some(at) if now.duration_since(*at) < Duration::from_secs(60) => false,
        _ => {
            logged.insert(key.to_string(), now);
            true
        }
    }
}

/// A value that cannot be used is never served. Tampered ones are deleted and counted
/// (returns true then), outdated ones deleted quietly; one signed with a key this worker
/// lacks, or a chunk its meta does not name, is left for the next write to replace. Each
/// key is logged at most once a minute.
pub(crate) async fn discard(conn: &mut Redis, key: &str, why: &Unusable) -> bool {
    let log = log_now(key);
    let (tampered, delete) = match why {
        Unusable::Tampered(reason) => {
            metrics::counter!("candlepipe_redis_tampered_total").increment(1);
            if log {
                tracing::warn!(
                    key,
                    reason,
                    "redis value failed verification; deleted, will refetch"
                );
            }
            (true, true)
        }
        Unusable::Outdated(format) => {
            if log {
                tracing::info!(
                    key,
                    format,
                    "redis value has an older format; deleted, will refetch"
                );
            }
            (false, true)
        }
        Unusable::ForeignKey(kid) => {
            if log {
                tracing::warn!(key, kid, "redis value signed with a key this worker does not hold (is a key rotation half done?); not served, will refetch");
            }
            (false, false)
        }
        Unusable::NotCurrent(reason) => {
            if log {
                tracing::warn!(
                    key,
                    reason,
                    "redis chunk is not the one its series names; not served, will refetch"
                );
            }
            (false, false)
        }
    };
    if delete {
        let deleted: Result<i64, _> = redis::cmd("DEL").arg(key).query_async(conn).await;
        if let Err(e) = deleted {
            tracing::warn!(key, error = %e, "could not delete unusable value");
        }
    }
    tampered
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unusable_value_is_logged_once_a_minute_per_key() {
        assert!(super::log_now("cp:test:a"));
        assert!(
            !super::log_now("cp:test:a"),
            "the same key within the minute"
        );
        assert!(super::log_now("cp:test:b"), "another key");
    }
}
