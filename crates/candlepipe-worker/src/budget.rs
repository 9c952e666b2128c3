//! The cluster-wide request budget per exchange, kept in Redis so that any number of fill
//! processes together stay within it.
//!
//! Each request asks the cluster-wide limiter ([`crate::gcra`]), which refuses while a pause
//! is set. With burst 1, requests are spaced 1/rps apart, so no 1-second window holds more
//! than `rps`.
//! A 429/418 sets the pause for everyone, and is announced on
//! `<prefix>.control.pause.<exchange>` so each process stops asking until it passes.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candlepipe_core::{now_ms, Exchange, Millis};
use candlepipe_exchange::budget::BoxFuture;
use candlepipe_exchange::client::Endpoint;
use candlepipe_exchange::{Budget, ExchangeSettings};
use candlepipe_store::Redis;
use futures::StreamExt;

use crate::cluster_stats::{Counters, Field};
use crate::gcra::{self, Rate};
use serde::{Deserialize, Serialize};

/// Announced on `<prefix>.control.pause.<exchange>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PauseNotice {
    pub exchange: Exchange,
    pub until_ms: Millis,
    pub reason: String,
}

pub struct RedisBudget {
    conn: Redis,
    prefix: String,
    rates: [Rate; 3],
    nats: async_nats::Client,
    control_prefix: String,
    /// Pauses heard on the control subject: no need to ask Redis before they end.
    paused_until: Arc<[AtomicI64; 3]>,
    /// Each permit is one exchange request: counted for `candlepipe stats`.
    stats: Arc<Counters>,
}

fn slot(ex: Exchange) -> usize {
    match ex {
        Exchange::Binance => 0,
        Exchange::Coinbase => 1,
        Exchange::Kraken => 2,
    }
}

fn rate(e: &Endpoint) -> Rate {
    Rate::new(u64::from(e.rps), Duration::from_secs(1), u64::from(e.burst))
}

impl RedisBudget {
    /// Builds the budget and starts listening for pauses other processes announce.
    pub async fn start(
        conn: Redis,
        redis_prefix: &str,
        nats: async_nats::Client,
        subject_prefix: &str,
        settings: &ExchangeSettings,
        stats: Arc<Counters>,
    ) -> Result<Arc<RedisBudget>, async_nats::SubscribeError> {
        let budget = Arc::new(RedisBudget {
            conn,
            prefix: redis_prefix.to_string(),
            rates: [
                rate(&settings.binance),
                rate(&settings.coinbase),
                rate(&settings.kraken),
            ],
            control_prefix: format!("{subject_prefix}.control.pause"),
            paused_until: Arc::new([AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)]),
            nats: nats.clone(),
            stats,
        });
        let mut sub = nats
            .subscribe(format!("{}.*", budget.control_prefix))
            .await?;
        let paused = budget.paused_until.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                if let Ok(n) = serde_json::from_slice::<PauseNotice>(&msg.payload) {
                    paused[slot(n.exchange)].fetch_max(n.until_ms, Ordering::Relaxed);
                    tracing::info!(exchange = %n.exchange, until_ms = n.until_ms, reason = %n.reason, "exchange paused");
                }
            }
        });
        Ok(budget)
    }

    fn keys(&self, ex: Exchange) -> (String, String) {
        let base = format!("{}rl:{{{ex}}}", self.prefix);
        (base.clone(), format!("{base}:pause"))
    }

    async fn try_acquire(&self, ex: Exchange) -> Result<u64, redis::RedisError> {
        let (bucket, pause) = self.keys(ex);
        gcra::try_acquire(&self.conn, &bucket, &pause, self.rates[slot(ex)], 1).await
    }
}

impl Budget for RedisBudget {
    fn acquire(&self, ex: Exchange) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            loop {
                let heard = self.paused_until[slot(ex)].load(Ordering::Relaxed) - now_ms();
                if heard > 0 {
                    tokio::time::sleep(Duration::from_millis(heard as u64)).await;
                    continue;
                }
                match self.try_acquire(ex).await {
                    Ok(0) => {
                        self.stats.add(Field::ExchangeCalls(ex), 1);
                        return Ok(());
                    }
                    Ok(wait_us) => tokio::time::sleep(Duration::from_micros(wait_us)).await,
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
    }

    fn pause(&self, ex: Exchange, hold: Duration, reason: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let until = now_ms() + hold.as_millis() as Millis;
            self.paused_until[slot(ex)].fetch_max(until, Ordering::Relaxed);
            let (_, pause) = self.keys(ex);
            if let Err(e) = gcra::pause(&self.conn, &pause, hold, until).await {
                tracing::warn!(error = %e, exchange = %ex, "pause not stored in Redis; announced only");
            }
            let notice = PauseNotice {
                exchange: ex,
                until_ms: until,
                reason,
            };
            let payload = serde_json::to_vec(&notice).unwrap_or_default();
            if let Err(e) = self
                .nats
                .publish(format!("{}.{ex}", self.control_prefix), payload.into())
                .await
            {
                tracing::warn!(error = %e, "pause not announced");
            }
        })
    }
}
