//! The hook through which a cluster-wide request budget gates every exchange request.
//! The client needs no knowledge of how the budget is kept (the worker keeps it in Redis).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use candlepipe_core::{Exchange, Priority};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who an exchange request is for. The budget serves live work before bulk work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demand<'a> {
    /// For the live fill job `job` (its `Nats-Msg-Id`); refused with
    /// [`BudgetError::NoWaiter`] once no producer waits for that job any more.
    Live { job: &'a str },
    /// Nobody waits (abandoned jobs, refreshes, backfill pages): served only while no live
    /// job of the exchange is waiting.
    Bulk,
    /// The service's own upkeep that live work depends on (market lists): takes its turn
    /// in order, neither yielding to live work nor tied to a producer.
    Upkeep,
}

impl Demand<'_> {
    /// The queue it waits in: upkeep is rare and waits with live work.
    pub fn priority(self) -> Priority {
        match self {
            Demand::Live { .. } | Demand::Upkeep => Priority::Live,
            Demand::Bulk => Priority::Bulk,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The budget's store cannot be consulted; nothing may be sent.
    #[error("request budget unavailable: {0}")]
    Unavailable(String),
    /// The live job's producers have all stopped waiting.
    #[error("no producer waits for this job any more")]
    NoWaiter,
}

pub trait Budget: Send + Sync {
    /// Waits until `cost` more requests to `ex` fit the budget for `demand` and no pause is
    /// in force. A cost of 0 waits for the turn without taking it.
    fn acquire<'a>(
        &'a self,
        ex: Exchange,
        demand: Demand<'a>,
        cost: u32,
    ) -> BoxFuture<'a, Result<(), BudgetError>>;

    /// Takes one request's turn for `demand` if the budget grants it at once, in one try
    /// (false: nothing was taken). A turn taken so, ahead of its request, is settled with
    /// [`Budget::settle_ahead`]: counted when its request went out, given back when not.
    fn try_now<'a>(
        &'a self,
        ex: Exchange,
        demand: Demand<'a>,
    ) -> BoxFuture<'a, Result<bool, BudgetError>>;

    /// Settles a turn [`Budget::try_now`] took: `used` counts it as a request sent;
    /// otherwise it is given back, as if it had never been taken.
    fn settle_ahead(&self, ex: Exchange, used: bool) -> BoxFuture<'_, ()>;

    /// Holds every worker off `ex` for `hold` (after a 429/418 or a weight warning).
    fn pause(&self, ex: Exchange, hold: Duration, reason: String) -> BoxFuture<'_, ()>;
}
