//! The cluster-wide request budget per exchange, kept in Redis so that any number of fill
//! processes together stay within it, and the admission of live jobs to it.
//!
//! Each request asks the cluster-wide limiter ([`super::gcra`]), which refuses while a pause
//! is set. With burst 1, requests are spaced 1/rps apart, so no 1-second window holds more
//! than `rps`. Live requests are served while their job is in the exchange's waiting set
//! (the ingest put it there when it admitted a producer); bulk requests only while that set
//! is empty.
//! A 429/418 sets the pause for everyone, and is announced on
//! `<prefix>.control.pause.<exchange>` so each process stops asking until it passes.

use std::sync::Arc;
use std::time::Duration;

use candlepipe_core::{now_ms, Exchange, Millis};
use candlepipe_exchange::budget::{BoxFuture, BudgetError, Demand};
use candlepipe_exchange::client::Endpoint;
use candlepipe_exchange::{Budget, ExchangeSettings};
use candlepipe_store::Redis;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::gcra::{self, Admission, Grant, LaneKeys, Rate, Turn};
use crate::cluster::stats::{Counters, Field};

/// Announced on `<prefix>.control.pause.<exchange>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PauseNotice {
    pub exchange: Exchange,
    pub until_ms: Millis,
    pub reason: String,
}

/// One exchange's budget as it stands, for people (the gateway's page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetState {
    pub exchange: Exchange,
    /// Requests per second the cluster may make.
    pub rps: u32,
    /// Live jobs waiting for their turn.
    pub waiting: u64,
    /// How much longer the exchange is paused (after a 429/418), in ms; 0 when not.
    pub paused_ms: u64,
}

pub struct RedisBudget {
    conn: Redis,
    prefix: String,
    rates: [Rate; 3],
    /// Each exchange's requests per second, as configured.
    rps: [u32; 3],
    nats: async_nats::Client,
    control_prefix: String,
    /// Pauses heard on the control subject (or set here), per exchange: no need to ask
    /// Redis before they end, and waiting producers learn of them at once.
    paused_until: watch::Sender<[Millis; 3]>,
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
            rps: [
                settings.binance.rps,
                settings.coinbase.rps,
                settings.kraken.rps,
            ],
            control_prefix: format!("{subject_prefix}.control.pause"),
            paused_until: watch::Sender::new([0; 3]),
            nats: nats.clone(),
            stats,
        });
        let mut sub = nats
            .subscribe(format!("{}.*", budget.control_prefix))
            .await?;
        let heard = Arc::downgrade(&budget);
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(budget) = heard.upgrade() else { break };
                if let Ok(n) = serde_json::from_slice::<PauseNotice>(&msg.payload) {
                    budget.note_pause(n.exchange, n.until_ms);
                    tracing::info!(exchange = %n.exchange, until_ms = n.until_ms, reason = %n.reason, "exchange paused");
                }
            }
        });
        Ok(budget)
    }

    fn note_pause(&self, ex: Exchange, until_ms: Millis) {
        self.paused_until.send_if_modified(|p| {
            let later = until_ms > p[slot(ex)];
            if later {
                p[slot(ex)] = until_ms;
            }
            later
        });
    }

    /// Until when (ms) each exchange is paused, as far as this process has heard; changes
    /// whenever a longer pause is heard.
    pub fn pauses(&self) -> watch::Receiver<[Millis; 3]> {
        self.paused_until.subscribe()
    }

    /// Whether a pause of `ex` was heard (or set here) and has not ended yet.
    pub fn paused(&self, ex: Exchange) -> bool {
        self.paused_until.borrow()[slot(ex)] > now_ms()
    }

    /// Until when `ex` is paused, from a value of [`RedisBudget::pauses`].
    pub fn pause_of(pauses: &[Millis; 3], ex: Exchange) -> Millis {
        pauses[slot(ex)]
    }

    /// `ex`'s budget as it stands in Redis.
    pub async fn state(&self, ex: Exchange) -> Result<BudgetState, redis::RedisError> {
        let (waiting, paused_ms) = gcra::look(&self.conn, &self.keys(ex)).await?;
        Ok(BudgetState {
            exchange: ex,
            rps: self.rps[slot(ex)],
            waiting,
            paused_ms,
        })
    }

    fn keys(&self, ex: Exchange) -> LaneKeys {
        let base = format!("{}rl:{{{ex}}}", self.prefix);
        LaneKeys {
            pause: format!("{base}:pause"),
            waiting: format!("{base}:waiting"),
            bulk: format!("{base}:bulk"),
            bucket: base,
        }
    }

    /// Admits a producer waiting `remaining` for live job `job` of `ex`: whether the job's
    /// turn comes in time (see [`gcra::admit`]), and about when. With `take_turn`, a newly
    /// admitted job whose turn is free at once has its first turn taken as well
    /// (`turn_at`), unless a pause was heard: its fill uses it for its first request (see
    /// `candlepipe_exchange::ExchangeClient::adopt_turn`), and the ingest gives it back
    /// ([`RedisBudget::give_back`]) when no job of its own carries it.
    pub async fn admit(
        &self,
        ex: Exchange,
        job: &str,
        (remaining, margin): (Duration, Duration),
        take_turn: bool,
    ) -> Result<Admission, redis::RedisError> {
        let take_turn = take_turn && !self.paused(ex);
        gcra::admit(
            &self.conn,
            &self.keys(ex),
            self.rates[slot(ex)],
            job,
            (remaining, margin),
            take_turn,
        )
        .await
    }

    /// Gives back one turn of `ex` taken and not used (see [`gcra::give_back`]).
    pub async fn give_back(&self, ex: Exchange) {
        if let Err(e) = gcra::give_back(&self.conn, &self.keys(ex), self.rates[slot(ex)]).await {
            tracing::debug!(error = %e, exchange = %ex, "unused turn not given back; the budget is one request short for a moment");
        }
    }

    /// Takes a finished (or failed for good) live job out of the waiting set.
    pub async fn release(&self, ex: Exchange, job: &str) {
        if let Err(e) = gcra::release(&self.conn, &self.keys(ex), job).await {
            tracing::debug!(error = %e, exchange = %ex, "live job not released; it expires at its deadline");
        }
    }
}

impl RedisBudget {
    /// Takes live job `job` out of the waiting set while it waits for a series a bulk job
    /// holds, so that the bulk job's request, which the live job waits on, is not held back
    /// by the live job itself. Returns what [`RedisBudget::step_back`] needs.
    pub async fn step_aside(&self, ex: Exchange, job: &str) -> Option<f64> {
        match gcra::set_aside(&self.conn, &self.keys(ex), job).await {
            Ok(score) => score,
            Err(e) => {
                tracing::debug!(error = %e, exchange = %ex, "live job not set aside");
                None
            }
        }
    }

    /// Puts a job set aside by [`RedisBudget::step_aside`] back in the waiting set.
    pub async fn step_back(&self, ex: Exchange, job: &str, score: f64) {
        if let Err(e) = gcra::put_back(&self.conn, &self.keys(ex), job, score).await {
            tracing::debug!(error = %e, exchange = %ex, "live job not put back; it asks the budget all the same");
        }
    }
}

/// The budget script's turn for `demand`.
fn turn_of(demand: Demand<'_>) -> Turn<'_> {
    match demand {
        Demand::Live { job } => Turn::Live(job),
        Demand::Bulk => Turn::Bulk,
        Demand::Upkeep => Turn::Upkeep,
    }
}

impl Budget for RedisBudget {
    fn acquire<'a>(
        &'a self,
        ex: Exchange,
        demand: Demand<'a>,
        cost: u32,
    ) -> BoxFuture<'a, Result<(), BudgetError>> {
        Box::pin(async move {
            let turn = turn_of(demand);
            let keys = self.keys(ex);
            loop {
                let heard = self.paused_until.borrow()[slot(ex)] - now_ms();
                if heard > 0 {
                    tokio::time::sleep(Duration::from_millis(heard as u64)).await;
                    continue;
                }
                let grant =
                    gcra::acquire_turn(&self.conn, &keys, self.rates[slot(ex)], cost.into(), turn)
                        .await
                        .map_err(|e| BudgetError::Unavailable(e.to_string()))?;
                match grant {
                    Grant::Now => {
                        if cost > 0 {
                            self.stats.add(Field::ExchangeCalls(ex), 1);
                        }
                        return Ok(());
                    }
                    Grant::Wait(d) => tokio::time::sleep(d).await,
                    Grant::NoWaiter => return Err(BudgetError::NoWaiter),
                }
            }
        })
    }

    fn try_now<'a>(
        &'a self,
        ex: Exchange,
        demand: Demand<'a>,
    ) -> BoxFuture<'a, Result<bool, BudgetError>> {
        Box::pin(async move {
            if self.paused(ex) {
                return Ok(false);
            }
            let turn = turn_of(demand);
            let grant =
                gcra::acquire_turn(&self.conn, &self.keys(ex), self.rates[slot(ex)], 1, turn)
                    .await
                    .map_err(|e| BudgetError::Unavailable(e.to_string()))?;
            match grant {
                Grant::Now => Ok(true),
                Grant::Wait(_) => Ok(false),
                Grant::NoWaiter => Err(BudgetError::NoWaiter),
            }
        })
    }

    fn settle_ahead(&self, ex: Exchange, used: bool) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if used {
                self.stats.add(Field::ExchangeCalls(ex), 1);
            } else {
                self.give_back(ex).await;
            }
        })
    }

    fn pause(&self, ex: Exchange, hold: Duration, reason: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let until = now_ms() + hold.as_millis() as Millis;
            self.note_pause(ex, until);
            let pause = self.keys(ex).pause;
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
