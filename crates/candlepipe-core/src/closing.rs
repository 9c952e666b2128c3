//! When a candle is closed. A candle counts as closed once [`CLOSE_MARGIN_MS`] has passed
//! after its close time, so a clock slightly ahead of the exchange never stores a forming
//! candle as final; on an exchange that may still change a candle for a while after its
//! close (Coinbase's publishing delay), only once that delay has passed. Requests (which
//! window a query wants), freshness and the exchange parsers all ask here.

use crate::{Interval, Millis};

pub const CLOSE_MARGIN_MS: Millis = 3_000;

/// Newest open time that is surely closed at time `at`.
pub fn closed_bound(interval: Interval, at: Millis) -> Millis {
    final_bound(interval, at, CLOSE_MARGIN_MS)
}

/// Newest open time whose candle is final at time `at` on an exchange that may still
/// change a candle until `delay` after its close (Coinbase); never later than
/// [`closed_bound`].
pub fn final_bound(interval: Interval, at: Millis, delay: Millis) -> Millis {
    interval.open_of(at - delay.max(CLOSE_MARGIN_MS)) - interval.millis()
}
