//! Keeps this process on the cluster's clock ([`candlepipe_core::clock`]): Redis's `TIME`,
//! which the exchange budget's scripts use too. Read at start and every
//! [`RESYNC`] after, corrected by half the round trip.

use std::time::Duration;

use candlepipe_core::clock::{host_ms, set_offset};
use candlepipe_core::Millis;
use candlepipe_store::{Redis, StoreError};

/// How often the offset is read again (host clocks drift and get stepped).
pub const RESYNC: Duration = Duration::from_secs(10);
/// A host clock this far off Redis's is logged as a warning.
const WARN_SKEW_MS: Millis = 1_000;

/// Reads Redis's time and sets the cluster offset; returns it.
pub async fn sync(redis: &Redis) -> Result<Millis, StoreError> {
    let mut conn = redis.clone();
    let before = host_ms();
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
    let after = host_ms();
    let offset = secs * 1000 + micros / 1000 - (before + after) / 2;
    set_offset(offset);
    metrics::gauge!("candlepipe_clock_offset_seconds").set(offset as f64 / 1000.0);
    Ok(offset)
}

/// Syncs now, then keeps syncing in the background for the life of the process.
pub async fn follow(redis: Redis) -> Result<(), StoreError> {
    let offset = sync(&redis).await?;
    if offset.abs() >= WARN_SKEW_MS {
        tracing::warn!(
            offset_ms = offset,
            "this host's clock differs from Redis's; candlepipe keeps Redis's time"
        );
    } else {
        tracing::debug!(offset_ms = offset, "on Redis's clock");
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RESYNC).await;
            if let Err(e) = sync(&redis).await {
                tracing::debug!(error = %e, "clock not resynced; keeping the last offset");
            }
        }
    });
    Ok(())
}
