//! Which provider a commentary goes to: the primary, or the canary with probability
//! `weight / 100`. The weight lives in Redis (`<prefix>llm:route`), so it survives restarts;
//! changes are broadcast on `<prefix>.control.llm.route` and every worker also re-reads it
//! twice a second, so a rollback reaches all of them within a second even if a broadcast is
//! missed.
//!
//! Canary outcomes are counted per window in Redis (`<prefix>llm:win:<n>`). When a window
//! ends, the first worker to claim it applies [`candlepipe_llm::ramp::next_weight`] and
//! writes the new weight only if no one changed it meanwhile (compare-and-set).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candlepipe_core::{now_ms, Subjects};
use candlepipe_llm::ramp::next_weight;
use candlepipe_store::Redis;
use futures::StreamExt;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

const POLL: Duration = Duration::from_millis(500);

/// Sets the weight if it is still `ARGV[1]` (`-1`: unconditionally); returns 1 if set.
const SET_SCRIPT: &str = r#"
local cur = redis.call('HGET', KEYS[1], 'weight')
if ARGV[1] ~= '-1' and cur ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'weight', ARGV[2], 'updated_ms', ARGV[3], 'by', ARGV[4])
return 1
"#;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteState {
    pub weight: u8,
    pub updated_ms: i64,
    pub by: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Primary,
    Canary,
}

#[derive(Debug, Clone)]
pub struct RampSettings {
    pub window: Duration,
    pub min_requests: u64,
    pub initial_weight: u8,
}

pub fn route_key(prefix: &str) -> String {
    format!("{prefix}llm:route")
}

fn window_key(prefix: &str, n: i64) -> String {
    format!("{prefix}llm:win:{n}")
}

pub async fn read(conn: &Redis, prefix: &str) -> Result<Option<RouteState>, redis::RedisError> {
    let mut conn = conn.clone();
    let (weight, updated_ms, by): (Option<u8>, Option<i64>, Option<String>) = redis::cmd("HMGET")
        .arg(route_key(prefix))
        .arg("weight")
        .arg("updated_ms")
        .arg("by")
        .query_async(&mut conn)
        .await?;
    Ok(weight.map(|weight| RouteState {
        weight: weight.min(100),
        updated_ms: updated_ms.unwrap_or(0),
        by: by.unwrap_or_default(),
    }))
}

/// Sets the canary weight (if it is still `expect`, when given) and announces it. Returns
/// whether it was set.
pub async fn set(
    conn: &Redis,
    nats: &async_nats::Client,
    subjects: &Subjects,
    prefix: &str,
    expect: Option<u8>,
    weight: u8,
    by: &str,
) -> Result<bool, redis::RedisError> {
    let weight = weight.min(100);
    let state = RouteState {
        weight,
        updated_ms: now_ms(),
        by: by.to_string(),
    };
    let mut c = conn.clone();
    let set: i64 = redis::Script::new(SET_SCRIPT)
        .key(route_key(prefix))
        .arg(expect.map_or(-1, i64::from))
        .arg(weight)
        .arg(state.updated_ms)
        .arg(by)
        .invoke_async(&mut c)
        .await?;
    if set == 1 {
        let payload = serde_json::to_vec(&state).unwrap_or_default();
        if let Err(e) = nats.publish(subjects.llm_route(), payload.into()).await {
            tracing::warn!(error = %e, "route change not broadcast; workers will read it from Redis");
        }
    }
    Ok(set == 1)
}

pub struct Route {
    conn: Redis,
    nats: async_nats::Client,
    subjects: Subjects,
    prefix: String,
    ramp: RampSettings,
    has_canary: bool,
    weight: AtomicU8,
}

impl Route {
    /// Reads (or first sets) the weight and keeps it current until `shutdown`.
    pub async fn start(
        conn: Redis,
        nats: async_nats::Client,
        subjects: Subjects,
        prefix: &str,
        ramp: RampSettings,
        has_canary: bool,
        shutdown: CancellationToken,
    ) -> Result<Arc<Route>, crate::error::BoxError> {
        let mut c = conn.clone();
        let _: i64 = redis::cmd("HSETNX")
            .arg(route_key(prefix))
            .arg("weight")
            .arg(if has_canary {
                ramp.initial_weight.min(100)
            } else {
                0
            })
            .query_async(&mut c)
            .await?;
        let weight = read(&conn, prefix).await?.map_or(0, |s| s.weight);
        let route = Arc::new(Route {
            conn,
            nats: nats.clone(),
            subjects: subjects.clone(),
            prefix: prefix.to_string(),
            ramp,
            has_canary,
            weight: AtomicU8::new(weight),
        });
        route.apply(weight);
        let mut sub = nats.subscribe(subjects.llm_route()).await?;
        let heard = route.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    msg = sub.next() => match msg {
                        Some(m) => match serde_json::from_slice::<RouteState>(&m.payload) {
                            Ok(s) => heard.apply(s.weight),
                            Err(e) => tracing::warn!(error = %e, "undecodable route broadcast"),
                        },
                        None => break,
                    },
                    _ = stop.cancelled() => break,
                }
            }
        });
        let ticking = route.clone();
        tokio::spawn(async move { ticking.tick(shutdown).await });
        Ok(route)
    }

    fn apply(&self, weight: u8) {
        let old = self.weight.swap(weight, Ordering::Relaxed);
        if old != weight {
            tracing::info!(from = old, to = weight, "LLM canary weight changed");
        }
        metrics::gauge!("candlepipe_llm_canary_weight").set(f64::from(weight));
    }

    pub fn weight(&self) -> u8 {
        self.weight.load(Ordering::Relaxed)
    }

    pub fn pick(&self) -> Pick {
        let w = self.weight();
        if self.has_canary && w > 0 && rand::rng().random_range(0..100u8) < w {
            Pick::Canary
        } else {
            Pick::Primary
        }
    }

    fn window_of(&self, t: i64) -> i64 {
        t.div_euclid(self.ramp.window.as_millis().max(1) as i64)
    }

    /// Counts one canary call in the current window.
    pub async fn record_canary(&self, ok: bool) {
        let key = window_key(&self.prefix, self.window_of(now_ms()));
        let mut pipe = redis::pipe();
        pipe.hincr(&key, if ok { "ok" } else { "failed" }, 1)
            .ignore()
            .pexpire(&key, (self.ramp.window.as_millis() as i64 * 10).max(10_000))
            .ignore();
        let mut conn = self.conn.clone();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::debug!(error = %e, "canary outcome not recorded");
        }
    }

    /// Re-reads the weight; at each window's end, the first worker decides the ramp.
    async fn tick(&self, shutdown: CancellationToken) {
        let mut decided = self.window_of(now_ms()) - 1;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.cancelled() => return,
            }
            match read(&self.conn, &self.prefix).await {
                Ok(Some(s)) => self.apply(s.weight),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "route not readable; keeping the last weight")
                }
            }
            let ended = self.window_of(now_ms()) - 1;
            if self.has_canary && ended > decided {
                decided = ended;
                if let Err(e) = self.decide(ended).await {
                    tracing::warn!(error = %e, "canary ramp not decided");
                }
            }
        }
    }

    async fn decide(&self, window: i64) -> Result<(), redis::RedisError> {
        let key = window_key(&self.prefix, window);
        let mut conn = self.conn.clone();
        let claimed: Option<String> = redis::cmd("SET")
            .arg(format!("{key}:decided"))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg((self.ramp.window.as_millis() as u64 * 10).max(10_000))
            .query_async(&mut conn)
            .await?;
        if claimed.is_none() {
            return Ok(());
        }
        let (ok, failed): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(&key)
            .arg("ok")
            .arg("failed")
            .query_async(&mut conn)
            .await?;
        let (ok, failed) = (ok.unwrap_or(0), failed.unwrap_or(0));
        let Some(current) = read(&self.conn, &self.prefix).await? else {
            return Ok(());
        };
        let next = next_weight(current.weight, ok, failed, self.ramp.min_requests);
        if next != current.weight {
            let set = set(
                &self.conn,
                &self.nats,
                &self.subjects,
                &self.prefix,
                Some(current.weight),
                next,
                &format!("ramp: {ok} ok, {failed} failed"),
            )
            .await?;
            if set {
                self.apply(next);
                tracing::info!(
                    window,
                    ok,
                    failed,
                    from = current.weight,
                    to = next,
                    "canary ramp"
                );
            }
        }
        Ok(())
    }
}
