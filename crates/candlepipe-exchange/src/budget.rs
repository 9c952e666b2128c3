//! The hook through which a cluster-wide request budget gates every exchange request.
//! The client needs no knowledge of how the budget is kept (the worker keeps it in Redis).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use candlepipe_core::Exchange;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Budget: Send + Sync {
    /// Waits until one more request to `ex` fits the budget and no pause is in force.
    /// An error means the budget cannot be consulted; the request is not sent.
    fn acquire(&self, ex: Exchange) -> BoxFuture<'_, Result<(), String>>;

    /// Holds every worker off `ex` for `hold` (after a 429/418 or a weight warning).
    fn pause(&self, ex: Exchange, hold: Duration, reason: String) -> BoxFuture<'_, ()>;
}
