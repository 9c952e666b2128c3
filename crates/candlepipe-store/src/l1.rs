//! L1: the in-process cache in front of Redis, bounded by bytes: each snapshot weighs its
//! candles as held in memory and the encoded replies it keeps.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use candlepipe_core::request::Window;
use candlepipe_core::{Candle, Millis, SeriesKey, SeriesState};

/// A read-only copy of part of a series: its state and the candles of `[from, to]`.
#[derive(Debug)]
pub struct Snapshot {
    pub series: SeriesKey,
    pub state: SeriesState,
    /// Open times whose candles were loaded; `candles` holds all stored ones in between.
    pub from: Millis,
    pub to: Millis,
    /// Ascending by open time.
    pub candles: Vec<Candle>,
    /// Replies already encoded from this snapshot, so that repeated hits skip encoding.
    /// They live and die with the snapshot, so they can never outlive its data. std's
    /// lock: held for a lookup or a push, never across `.await`.
    replies: Mutex<Vec<(ReplyKey, Bytes)>>,
}

/// Which reply: the window and an opaque tag the caller chooses (its encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyKey {
    pub from: Millis,
    pub to: Millis,
    pub tag: u8,
}

/// Encoded replies kept per snapshot (different limits and encodings of one series).
const MAX_REPLIES: usize = 8;

impl Snapshot {
    pub fn new(
        series: SeriesKey,
        state: SeriesState,
        from: Millis,
        to: Millis,
        candles: Vec<Candle>,
    ) -> Self {
        Snapshot {
            series,
            state,
            from,
            to,
            candles,
            replies: Mutex::new(Vec::new()),
        }
    }

    fn replies(&self) -> std::sync::MutexGuard<'_, Vec<(ReplyKey, Bytes)>> {
        self.replies.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn reply(&self, key: ReplyKey) -> Option<Bytes> {
        self.replies()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, b)| b.clone())
    }

    /// Keeps an encoded reply; whether it was new (the snapshot then weighs more).
    fn remember_reply(&self, key: ReplyKey, bytes: Bytes) -> bool {
        let mut replies = self.replies();
        if replies.iter().any(|(k, _)| *k == key) {
            return false;
        }
        if replies.len() == MAX_REPLIES {
            replies.remove(0);
        }
        replies.push((key, bytes));
        true
    }

    /// Bytes this snapshot holds: its candles and the replies it keeps.
    fn weight(&self) -> u64 {
        let candles = self.candles.capacity() * std::mem::size_of::<Candle>();
        let replies: usize = self.replies().iter().map(|(_, b)| b.len()).sum();
        (std::mem::size_of::<Snapshot>() + candles + replies) as u64
    }

    /// The candles of `[from, to]`.
    pub fn slice(&self, from: Millis, to: Millis) -> &[Candle] {
        let lo = self.candles.partition_point(|c| c.t < from);
        let hi = self.candles.partition_point(|c| c.t <= to);
        &self.candles[lo..hi.max(lo)]
    }

    /// Whether every candle of the window was loaded.
    pub fn holds(&self, w: &Window) -> bool {
        self.from <= w.from && w.to <= self.to
    }

    /// Two loads of the same version that touch or overlap, as one.
    fn merged(&self, other: &Snapshot) -> Option<Snapshot> {
        let step = self.series.interval.millis();
        let touch = other.from <= self.to + step && self.from <= other.to + step;
        if self.state.version != other.state.version || !touch {
            return None;
        }
        let mut candles: Vec<Candle> = self.candles.iter().chain(&other.candles).cloned().collect();
        candles.sort_by_key(|c| c.t);
        candles.dedup_by_key(|c| c.t);
        Some(Snapshot::new(
            self.series.clone(),
            self.state.clone(),
            self.from.min(other.from),
            self.to.max(other.to),
            candles,
        ))
    }
}

/// Cheap to clone; every clone shares one cache.
#[derive(Clone)]
pub struct L1Cache {
    cache: moka::sync::Cache<SeriesKey, Arc<Snapshot>>,
    enabled: bool,
}

impl L1Cache {
    /// At most `max_bytes` of snapshots (0: no L1).
    pub fn new(max_bytes: u64) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_k: &SeriesKey, v: &Arc<Snapshot>| {
                u32::try_from(v.weight()).unwrap_or(u32::MAX)
            })
            .build();
        L1Cache {
            cache,
            enabled: max_bytes > 0,
        }
    }

    /// False when configured without room (`CANDLEPIPE_L1_CAPACITY=0`): nothing is kept.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Keeps an encoded reply on `snap`, and weighs the snapshot again if L1 still holds
    /// it (a new reply at most [`MAX_REPLIES`] times a snapshot, never on a hit).
    pub fn remember_reply(&self, snap: &Arc<Snapshot>, key: ReplyKey, bytes: Bytes) {
        if !snap.remember_reply(key, bytes) {
            return;
        }
        if let Some(held) = self.cache.get(&snap.series) {
            if Arc::ptr_eq(&held, snap) {
                self.cache.insert(snap.series.clone(), held);
            }
        }
    }

    /// Bytes held now (after pending evictions).
    pub fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }

    pub fn get(&self, key: &SeriesKey) -> Option<Arc<Snapshot>> {
        self.cache.get(key)
    }

    /// Stores a load and returns what L1 now holds for the series: the newer version wins;
    /// loads of the same version merge when their ranges touch.
    pub fn put(&self, key: &SeriesKey, snap: Snapshot) -> Arc<Snapshot> {
        let snap = match self.cache.get(key) {
            Some(old) if old.state.version > snap.state.version => return Arc::new(snap),
            Some(old) => match old.merged(&snap) {
                Some(m) => Arc::new(m),
                None => Arc::new(snap),
            },
            None => Arc::new(snap),
        };
        self.cache.insert(key.clone(), snap.clone());
        snap
    }

    pub fn entries(&self) -> u64 {
        self.cache.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candlepipe_core::{Exchange, Interval, Symbol};

    fn snapshot(symbol: &str, n: i64) -> (SeriesKey, Snapshot) {
        let series = SeriesKey::new(
            Exchange::Binance,
            Symbol::parse(symbol).unwrap(),
            Interval::M1,
        );
        let candles = (0..n)
            .map(|i| Candle {
                t: i * 60_000,
                o: "1.5".parse().unwrap(),
                h: "2.5".parse().unwrap(),
                l: "0.5".parse().unwrap(),
                c: "1.5".parse().unwrap(),
                v: "10".parse().unwrap(),
                closed: true,
                synthetic: false,
                ..Default::default()
            })
            .collect();
        let snap = Snapshot::new(
            series.clone(),
            SeriesState::default(),
            0,
            (n - 1) * 60_000,
            candles,
        );
        (series, snap)
    }

    #[test]
    fn replies_kept_on_a_snapshot_count_towards_the_bound() {
        let l1 = L1Cache::new(10 << 20);
        let (series, snap) = snapshot("BTC/USDT", 100);
        let snap = l1.put(&series, snap);
        let bare = l1.weighted_size();
        assert!(bare >= 100 * std::mem::size_of::<Candle>() as u64, "{bare}");
        for i in 0..3 {
            let key = ReplyKey {
                from: 0,
                to: i,
                tag: 0,
            };
            l1.remember_reply(&snap, key, Bytes::from(vec![b'x'; 10_000]));
        }
        assert_eq!(l1.weighted_size(), bare + 30_000);
    }

    #[test]
    fn the_bound_is_bytes() {
        let cap = 200_000;
        let l1 = L1Cache::new(cap);
        for i in 0..50 {
            let (series, snap) = snapshot(&format!("TEST{i}/USDT"), 100);
            let snap = l1.put(&series, snap);
            l1.remember_reply(
                &snap,
                ReplyKey {
                    from: 0,
                    to: 0,
                    tag: 0,
                },
                Bytes::from(vec![b'x'; 11_000]),
            );
        }
        let held = l1.weighted_size();
        assert!(held <= cap, "{held} bytes held, capacity {cap}");
        assert!(l1.entries() < 50);
    }
}
