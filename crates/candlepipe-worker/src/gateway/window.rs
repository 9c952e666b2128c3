//! The window an exchange-style query names (a start, an end, a count, each optional) as a
//! `candles.get` request: `limit` candles ending at `end` (closed candles only), or the
//! latest `limit` (the forming one included) when the window reaches the forming candle.

use candlepipe_core::{Interval, Millis};

/// A window of whole intervals, oldest and newest open time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub first: Millis,
    pub last: Millis,
}

impl Window {
    /// How many candles it holds.
    pub fn count(&self, iv: Interval) -> i64 {
        (self.last - self.first) / iv.millis() + 1
    }

    /// As `candles.get` asks for it: `(limit, end)`, without `end` when the window reaches
    /// the forming candle at `now`.
    pub fn request(&self, iv: Interval, now: Millis) -> (i64, Option<Millis>) {
        let forming = iv.open_of(now);
        match self.last >= forming {
            true => ((forming - self.first) / iv.millis() + 1, None),
            false => (self.count(iv), Some(self.last)),
        }
    }
}

/// The window of at most `limit` candles that a request with `start` and/or `end` (open
/// times, ms) names at `now`, as Binance reads them: from the first open time at or after
/// `start`, up to the one holding `end` (never past the forming one); without `start`,
/// the newest `limit` up to `end`. `None` when it holds no candle.
pub fn between(
    iv: Interval,
    start: Option<Millis>,
    end: Option<Millis>,
    limit: i64,
    now: Millis,
) -> Option<Window> {
    let step = iv.millis();
    let newest = iv.open_of(end.unwrap_or(now).min(now));
    let window = match start {
        Some(start) => {
            let open = iv.open_of(start);
            let first = if open < start { open + step } else { open };
            Window {
                first,
                last: newest.min(first + (limit - 1) * step),
            }
        }
        None => Window {
            first: newest - (limit - 1) * step,
            last: newest,
        },
    };
    (window.first <= window.last && limit > 0).then_some(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Millis = 60_000;

    #[test]
    fn windows_are_read_as_binance_reads_them() {
        let iv = Interval::M1;
        let now = 1_000 * M + 30_000; // inside the forming minute 1000
                                      // Neither: the newest `limit`, the forming one included.
        let w = between(iv, None, None, 3, now).unwrap();
        assert_eq!((w.first, w.last), (998 * M, 1000 * M));
        assert_eq!(w.request(iv, now), (3, None));
        // A start inside a minute begins at the next one; `limit` from there.
        let w = between(iv, Some(10 * M + 1), None, 5, now).unwrap();
        assert_eq!((w.first, w.last), (11 * M, 15 * M));
        assert_eq!(w.request(iv, now), (5, Some(15 * M)));
        // An end: the minute holding it is the newest.
        let w = between(iv, Some(10 * M), Some(12 * M + 59_999), 500, now).unwrap();
        assert_eq!((w.first, w.last), (10 * M, 12 * M));
        let w = between(iv, None, Some(20 * M + 5), 2, now).unwrap();
        assert_eq!((w.first, w.last), (19 * M, 20 * M));
        // Reaching now: the latest candles from the start, the forming one included.
        let w = between(iv, Some(999 * M), None, 500, now).unwrap();
        assert_eq!(w.request(iv, now), (2, None));
        // Nothing: a start after the end, or in the future.
        assert_eq!(between(iv, Some(20 * M), Some(19 * M), 5, now), None);
        assert_eq!(between(iv, Some(2000 * M), None, 5, now), None);
    }
}
