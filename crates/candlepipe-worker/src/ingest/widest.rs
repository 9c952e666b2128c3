//! The widest window producers asked for recently, per exchange and interval: a fill job is
//! widened to it (up to one exchange page), so that the call it makes also brings what the
//! next, wider request for the same series will want. A series asked for 50 and then 500
//! candles costs one call, not two.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use candlepipe_core::{Exchange, Interval};

/// How long a wide request is remembered.
const MEMORY: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct Widest {
    /// std's lock: held for one map update, never across `.await`.
    seen: Mutex<HashMap<(Exchange, Interval), (u32, Instant)>>,
}

impl Widest {
    /// Notes a miss for `limit` candles; returns the widest window asked for in the last
    /// ten minutes (at least `limit`).
    pub fn note(&self, ex: Exchange, iv: Interval, limit: u32) -> u32 {
        self.note_at(ex, iv, limit, Instant::now())
    }

    fn note_at(&self, ex: Exchange, iv: Interval, limit: u32, now: Instant) -> u32 {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let e = seen.entry((ex, iv)).or_insert((limit, now));
        if limit >= e.0 || now.duration_since(e.1) > MEMORY {
            *e = (limit, now);
        }
        e.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_widest_for_ten_minutes_per_exchange_and_interval() {
        let w = Widest::default();
        let t = Instant::now();
        let (b, m1) = (Exchange::Binance, Interval::M1);
        assert_eq!(w.note_at(b, m1, 500, t), 500);
        assert_eq!(w.note_at(b, m1, 50, t + Duration::from_secs(60)), 500);
        assert_eq!(w.note_at(Exchange::Kraken, m1, 50, t), 50);
        assert_eq!(w.note_at(b, Interval::H1, 100, t), 100);
        // Forgotten after ten minutes without a wide one.
        assert_eq!(w.note_at(b, m1, 50, t + Duration::from_secs(601)), 50);
    }
}
