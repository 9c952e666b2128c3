//! The cluster's clock. Freshness, coverage, fill jobs and pauses are all judged by
//! [`now_ms`], so that every process of a cluster must agree on it: a process that talks to
//! Redis sets its offset to Redis's `TIME` (`candlepipe_worker::cluster::clock`), so that a host
//! clock seconds off changes no answer and no pause. A process that never sets it (the
//! sim, a test) runs on its host's clock.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::Millis;

static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// The cluster's time in milliseconds since the Unix epoch, UTC.
pub fn now_ms() -> Millis {
    host_ms() + OFFSET_MS.load(Ordering::Relaxed)
}

/// This host's own clock.
pub fn host_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// Sets how far the cluster's clock is ahead of this host's.
pub fn set_offset(ms: Millis) {
    OFFSET_MS.store(ms, Ordering::Relaxed);
}

/// How far the cluster's clock is ahead of this host's.
pub fn offset() -> Millis {
    OFFSET_MS.load(Ordering::Relaxed)
}
