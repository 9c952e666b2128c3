//! L1: the in-process cache in front of Redis, bounded by a number of candles.

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

    pub fn remember_reply(&self, key: ReplyKey, bytes: Bytes) {
        let mut replies = self.replies();
        if replies.iter().any(|(k, _)| *k == key) {
            return;
        }
        if replies.len() == MAX_REPLIES {
            replies.remove(0);
        }
        replies.push((key, bytes));
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
}

impl L1Cache {
    /// `max_candles` bounds memory: each entry weighs its candle count (plus one).
    pub fn new(max_candles: u64) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_candles)
            .weigher(|_k: &SeriesKey, v: &Arc<Snapshot>| {
                u32::try_from(v.candles.len() + 1).unwrap_or(u32::MAX)
            })
            .build();
        L1Cache { cache }
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
