//! Producers waiting for a fill, coalesced per series.
//!
//! All waiters of one series in this process share one entry: the first publishes the fill
//! job, the others only wait. When a write is announced (on Redis as it lands, then by its
//! `ready` event on NATS), the series is read from Redis once for the union of the waiters'
//! windows and handed to all of them through a `watch`.
//!
//! A hot series may always have a waiter, so its entry never goes: what it holds stays
//! bounded anyway. The union is that of the waiters waiting now (each waiter's window goes
//! with it), and the job ids published are remembered for a minute at most.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// The window of every waiter waiting now, by its number.
    windows: HashMap<u64, (Millis, Millis)>,
    next_waiter: u64,
    /// Job ids this process published for the series, and when: a later waiter of the same
    /// job does not publish it again. Forgotten after [`PUBLISHED_MEMORY`] (job ids carry
    /// their time bucket, so an older one is never asked for again).
    published: HashMap<String, Instant>,
    /// The newest write version a read was started for, and `next_waiter` then: the same
    /// write is announced twice (on Redis as it lands, then on NATS) and read once, unless
    /// a waiter came since (a job that found the series fresh announces the version it
    /// found, and its waiter may have come after that version's read).
    read_version: u64,
    read_for: u64,
}

/// How long a published job id is remembered.
const PUBLISHED_MEMORY: Duration = Duration::from_secs(60);

#[derive(Clone, Default)]
pub struct Waiters {
    map: Arc<Mutex<HashMap<SeriesKey, Arc<Pending>>>>,
}

/// One producer's place in line; leaving (drop) takes its window out, and the entry when it
/// was the last.
pub struct Waiter {
    waiters: Waiters,
    series: SeriesKey,
    pending: Arc<Pending>,
    number: u64,
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
                        windows: HashMap::new(),
                        next_waiter: 0,
                        published: HashMap::new(),
                        read_version: 0,
                        read_for: 0,
                    }),
                })
            })
            .clone();
        let number = {
            let mut st = lock(&pending.state);
            let n = st.next_waiter;
            st.next_waiter += 1;
            st.windows.insert(n, (from, to));
            n
        };
        let rx = pending.tx.subscribe();
        Waiter {
            waiters: self.clone(),
            series: series.clone(),
            pending,
            number,
            rx,
        }
    }

    /// The union window to read for the series' write `version`, unless nobody waits or a
    /// read for that version or a newer one was started already and no waiter came since
    /// (`version` 0, a failure, is never a repeat).
    pub fn claim_read(&self, series: &SeriesKey, version: u64) -> Option<(Millis, Millis)> {
        let map = lock(&self.map);
        let p = map.get(series)?;
        let mut st = lock(&p.state);
        if version != 0 {
            if version <= st.read_version && st.read_for == st.next_waiter {
                return None;
            }
            st.read_version = st.read_version.max(version);
            st.read_for = st.next_waiter;
        }
        let from = st.windows.values().map(|w| w.0).min()?;
        let to = st.windows.values().map(|w| w.1).max()?;
        Some((from, to))
    }

    pub fn deliver(&self, series: &SeriesKey, outcome: Outcome) {
        let pending = lock(&self.map).get(series).cloned();
        if let Some(p) = pending {
            p.tx.send_replace(Some(Arc::new(outcome)));
        }
    }
}

impl Waiter {
    /// True the first time (in the last minute) this process asks to publish job `id` for
    /// the series.
    pub fn claim_publish(&self, id: &str) -> bool {
        self.claim_publish_at(id, Instant::now())
    }

    fn claim_publish_at(&self, id: &str, now: Instant) -> bool {
        let mut st = lock(&self.pending.state);
        st.published
            .retain(|_, at| now.duration_since(*at) < PUBLISHED_MEMORY);
        match st.published.contains_key(id) {
            true => false,
            false => {
                st.published.insert(id.to_string(), now);
                true
            }
        }
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
            st.windows.remove(&self.number);
            st.windows.is_empty()
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

#[cfg(test)]
mod tests {
    use super::*;
    use candlepipe_core::{Exchange, Interval, Symbol};

    const MINUTE: Millis = 60_000;

    fn btc() -> SeriesKey {
        SeriesKey::new(
            Exchange::Binance,
            Symbol::parse("BTC/USDT").unwrap(),
            Interval::M1,
        )
    }

    #[test]
    fn a_write_announced_twice_is_read_once_unless_a_waiter_came_since() {
        let waiters = Waiters::default();
        let series = btc();
        assert_eq!(waiters.claim_read(&series, 7), None, "nobody waits");
        let _first = waiters.register(&series, 0, 10 * MINUTE);
        // The write's signal on Redis, then its `ready` on NATS: one read.
        assert_eq!(waiters.claim_read(&series, 7), Some((0, 10 * MINUTE)));
        assert_eq!(waiters.claim_read(&series, 7), None);
        // An older version heard late: no read either.
        assert_eq!(waiters.claim_read(&series, 6), None);
        // A waiter came since, and a job of its found the series fresh at version 7: read.
        let _second = waiters.register(&series, 5 * MINUTE, 20 * MINUTE);
        assert_eq!(waiters.claim_read(&series, 7), Some((0, 20 * MINUTE)));
        assert_eq!(waiters.claim_read(&series, 7), None);
        // A newer write, and failures (version 0), are always read.
        assert_eq!(waiters.claim_read(&series, 8), Some((0, 20 * MINUTE)));
        assert_eq!(waiters.claim_read(&series, 0), Some((0, 20 * MINUTE)));
        assert_eq!(waiters.claim_read(&series, 0), Some((0, 20 * MINUTE)));
    }

    #[test]
    fn a_series_that_always_has_a_waiter_holds_bounded_state() {
        let waiters = Waiters::default();
        let series = SeriesKey::new(
            Exchange::Binance,
            Symbol::parse("BTC/USDT").unwrap(),
            Interval::M1,
        );
        let start = Instant::now();
        let mut alive = std::collections::VecDeque::new();
        // Ten minutes of overlapping misses, one a second, each for the latest 100 candles
        // as time passes: the entry never empties.
        for second in 0..600i64 {
            let to = (second / 60) * MINUTE;
            let w = waiters.register(&series, to - 99 * MINUTE, to);
            assert!(w.claim_publish_at(
                &format!("job-{second}"),
                start + Duration::from_secs(second as u64)
            ));
            alive.push_back(w);
            if alive.len() > 3 {
                alive.pop_front();
            }
            let (from, until) = waiters.claim_read(&series, 0).unwrap();
            assert!(
                until - from <= 100 * MINUTE,
                "second {second}: the union grew to {} candles",
                (until - from) / MINUTE
            );
            let st = lock(&alive[0].pending.state);
            assert!(
                st.published.len() <= 61,
                "second {second}: {} ids kept",
                st.published.len()
            );
            assert_eq!(st.windows.len(), alive.len());
        }
        alive.clear();
        assert!(
            waiters.claim_read(&series, 0).is_none(),
            "the last waiter took the entry with it"
        );
    }
}
