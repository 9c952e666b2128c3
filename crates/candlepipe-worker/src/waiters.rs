//! Producers waiting for a fill, coalesced per series.
//!
//! All waiters of one series in this process share one entry: the first publishes the fill
//! job, the others only wait. When a `ready` event arrives, the series is read from Redis
//! once for the union of the waiters' windows and handed to all of them through a `watch`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use candlepipe_core::{Millis, ReadyEvent, SeriesKey};
use candlepipe_store::Snapshot;
use tokio::sync::watch;

/// What a `ready` event brought: the event and, on success, the freshly read series.
#[derive(Debug)]
pub struct Outcome {
    pub event: ReadyEvent,
    pub snapshot: Option<Arc<Snapshot>>,
}

struct Pending {
    tx: watch::Sender<Option<Arc<Outcome>>>,
    /// Waiters, their union window and the job ids this process already published.
    /// std's lock: held only for a few field updates, never across `.await`.
    state: Mutex<PendingState>,
}

struct PendingState {
    waiters: usize,
    from: Millis,
    to: Millis,
    published: HashSet<String>,
}

#[derive(Clone, Default)]
pub struct Waiters {
    map: Arc<Mutex<HashMap<SeriesKey, Arc<Pending>>>>,
}

/// One producer's place in line; leaving (drop) removes the entry when it was the last.
pub struct Waiter {
    waiters: Waiters,
    series: SeriesKey,
    pending: Arc<Pending>,
    pub rx: watch::Receiver<Option<Arc<Outcome>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Waiters {
    pub fn register(&self, series: &SeriesKey, from: Millis, to: Millis) -> Waiter {
        let mut map = lock(&self.map);
        let pending = map
            .entry(series.clone())
            .or_insert_with(|| {
                Arc::new(Pending {
                    tx: watch::channel(None).0,
                    state: Mutex::new(PendingState {
                        waiters: 0,
                        from,
                        to,
                        published: HashSet::new(),
                    }),
                })
            })
            .clone();
        {
            let mut st = lock(&pending.state);
            st.waiters += 1;
            st.from = st.from.min(from);
            st.to = st.to.max(to);
        }
        let rx = pending.tx.subscribe();
        Waiter {
            waiters: self.clone(),
            series: series.clone(),
            pending,
            rx,
        }
    }

    /// The union window of the series' waiters, if any wait.
    pub fn window(&self, series: &SeriesKey) -> Option<(Millis, Millis)> {
        let map = lock(&self.map);
        let p = map.get(series)?;
        let st = lock(&p.state);
        Some((st.from, st.to))
    }

    pub fn deliver(&self, series: &SeriesKey, outcome: Outcome) {
        let pending = lock(&self.map).get(series).cloned();
        if let Some(p) = pending {
            p.tx.send_replace(Some(Arc::new(outcome)));
        }
    }
}

impl Waiter {
    /// True the first time this process asks to publish job `id` for the series.
    pub fn claim_publish(&self, id: &str) -> bool {
        lock(&self.pending.state).published.insert(id.to_string())
    }

    /// Lets a later waiter publish `id` again (the publish failed).
    pub fn release_publish(&self, id: &str) {
        lock(&self.pending.state).published.remove(id);
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut map = lock(&self.waiters.map);
        let last = {
            let mut st = lock(&self.pending.state);
            st.waiters -= 1;
            st.waiters == 0
        };
        if last {
            if let Some(p) = map.get(&self.series) {
                if Arc::ptr_eq(p, &self.pending) {
                    map.remove(&self.series);
                }
            }
        }
    }
}
