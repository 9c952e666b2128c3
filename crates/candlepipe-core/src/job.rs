//! The fill job that ingest publishes on a miss, and the event fill workers announce.

use serde::{Deserialize, Serialize};

use crate::{Millis, SeriesKey, WireError};

/// Fetch what the store lacks of `[from, to]` for a series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillJob {
    pub series: SeriesKey,
    /// Oldest open time wanted.
    pub from: Millis,
    /// Newest open time wanted.
    pub to: Millis,
    /// Whether `to` is the forming candle (the job then reaches the forming candle of
    /// whenever it runs).
    pub includes_open: bool,
    /// Open times of the window that are not confirmed must have been asked of the exchange
    /// at or after this for the job to be already done.
    pub fresh_after: Millis,
    /// REST is asked also for open times only the stream confirmed: the stream role's
    /// confirmation of its closes (REST's rows become the record).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirm: bool,
}

/// Width of the time bucket folded into a job's `Nats-Msg-Id`: misses for the same window
/// within one bucket become one job everywhere in the cluster. Jobs of neighbouring buckets
/// run one after another (fill workers lock the series) and find the data already fresh.
pub const DEDUP_BUCKET_MS: Millis = 100;

fn bucket_end(t: Millis) -> Millis {
    (t + DEDUP_BUCKET_MS - 1).div_euclid(DEDUP_BUCKET_MS) * DEDUP_BUCKET_MS
}

impl FillJob {
    /// The job for a query's window at `now`. The required fetch time is rounded up to its
    /// bucket's end, so that one fetch made after that moment satisfies every request that
    /// shares the job.
    pub fn new(q: &crate::CandleQuery, w: crate::request::Window, now: Millis) -> FillJob {
        FillJob {
            series: q.series.clone(),
            from: w.from,
            to: w.to,
            includes_open: w.includes_open,
            fresh_after: bucket_end(now - q.max_age_ms),
            confirm: false,
        }
    }

    /// Widens the job to the newest `candles` candles up to its end, when that reaches
    /// further back: the fetch it makes then also holds what wider requests for the series
    /// will want, in the same exchange call.
    pub fn widen(&mut self, candles: i64) {
        let from = self.to - (candles.max(1) - 1) * self.series.interval.millis();
        self.from = self.from.min(from);
    }

    /// Whether the job must not fetch yet at `now`: a job for the forming candle fetches at
    /// or after its `fresh_after`, so that one fetch satisfies every request sharing it.
    pub fn must_wait(&self, now: Millis) -> bool {
        self.includes_open && self.fresh_after > now
    }

    /// The JetStream `Nats-Msg-Id`: the series, its window and the refresh bucket.
    pub fn msg_id(&self, now: Millis) -> String {
        let bucket = if self.includes_open {
            self.fresh_after
        } else {
            bucket_end(now)
        };
        format!(
            "fill.{}.{}.{}.{}.{}",
            self.series.subject_tokens(),
            self.from,
            self.to,
            u8::from(self.includes_open),
            bucket
        )
    }
}

/// Published on `candlepipe.candles.ready.<exchange>.<BASE-QUOTE>.<interval>` once Redis
/// holds the new data, or with `error` when a fill failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyEvent {
    #[serde(flatten)]
    pub series: SeriesKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_t: Option<Millis>,
    #[serde(default)]
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
    /// With `error`: no retry will follow, waiting producers should be answered now.
    #[serde(default, rename = "final", skip_serializing_if = "std::ops::Not::not")]
    pub is_final: bool,
}

impl ReadyEvent {
    /// The event as it is published (JSON).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Exchange, Interval, Symbol};

    #[test]
    fn ready_event_has_the_spec_fields() {
        let ev = ReadyEvent {
            series: SeriesKey::new(
                Exchange::Binance,
                Symbol::parse("BTC/USDT").unwrap(),
                Interval::M1,
            ),
            last_t: Some(60_000),
            version: 3,
            error: None,
            is_final: false,
        };
        let json = serde_json::to_string(&ev).unwrap();
        assert_eq!(
            json,
            r#"{"exchange":"binance","symbol":"BTC/USDT","interval":"1m","last_t":60000,"version":3}"#
        );
        let back: ReadyEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ev);
    }
}
