//! L1: the in-process cache in front of Redis, bounded by a number of candles.

use std::sync::Arc;

use candlepipe_core::request::Window;
use candlepipe_core::{Candle, Millis, SeriesKey, SeriesState};

/// A read-only copy of part of a series: its state and the candles of `[from, to]`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub series: SeriesKey,
    pub state: SeriesState,
    /// Open times whose candles were loaded; `candles` holds all stored ones in between.
    pub from: Millis,
    pub to: Millis,
    /// Ascending by open time.
    pub candles: Vec<Candle>,
}

impl Snapshot {
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
        Some(Snapshot {
            series: self.series.clone(),
            state: self.state.clone(),
            from: self.from.min(other.from),
            to: self.to.max(other.to),
            candles,
        })
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
