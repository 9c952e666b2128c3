//! NATS subject and stream names, all derived from one configurable prefix.

use crate::lane::{Lane, Priority};
use crate::{Exchange, SeriesKey};

/// Queue group shared by every ingest process.
pub const INGEST_QUEUE_GROUP: &str = "ingest";
/// The single fill consumer (`jobs.fill.>`) of earlier versions; lanes replace it, and a
/// fill worker deletes it at start (a work-queue stream refuses overlapping consumers).
pub const LEGACY_FILL_CONSUMER: &str = "fill";
/// Queue group of `analysis.run` and durable consumer of `jobs.analyze`, shared by every
/// analysis process.
pub const ANALYZE_GROUP: &str = "analyze";

#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Subjects::new("candlepipe")
    }
}

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        Subjects {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn candles_get(&self) -> String {
        format!("{}.candles.get", self.prefix)
    }

    pub fn ready(&self, series: &SeriesKey) -> String {
        format!("{}.candles.ready.{}", self.prefix, series.subject_tokens())
    }

    pub fn ready_all(&self) -> String {
        format!("{}.candles.ready.>", self.prefix)
    }

    /// Live fill jobs of an exchange (a producer waits for them).
    pub fn fill_job(&self, exchange: Exchange) -> String {
        format!("{}.jobs.fill.{}", self.prefix, exchange)
    }

    /// The subject of a lane: `jobs.fill.<exchange>` (live), `jobs.fill.<exchange>.bulk`.
    pub fn lane(&self, lane: Lane) -> String {
        match lane.priority {
            Priority::Live => self.fill_job(lane.exchange),
            Priority::Bulk => format!("{}.bulk", self.fill_job(lane.exchange)),
        }
    }

    /// The lane a fill job's subject belongs to.
    pub fn lane_of(&self, subject: &str) -> Option<Lane> {
        Lane::all().find(|l| self.lane(*l) == subject)
    }

    /// Asks the `stream` role to keep a series live (request-reply).
    pub fn candles_watch(&self) -> String {
        format!("{}.candles.watch", self.prefix)
    }

    pub fn candles_unwatch(&self) -> String {
        format!("{}.candles.unwatch", self.prefix)
    }

    /// Where a streamed series' changes are published (JSON).
    pub fn live(&self, series: &SeriesKey) -> String {
        format!("{}.candles.live.{}", self.prefix, series.subject_tokens())
    }

    /// The same changes in MessagePack, published while a watch asked for that encoding.
    pub fn live_msgpack(&self, series: &SeriesKey) -> String {
        format!("{}.msgpack", self.live(series))
    }

    pub fn analysis_run(&self) -> String {
        format!("{}.analysis.run", self.prefix)
    }

    /// An async job's answer by its id ([`crate::analysis::ResultRequest`]).
    pub fn analysis_result(&self) -> String {
        format!("{}.analysis.result", self.prefix)
    }

    pub fn analyze_job(&self) -> String {
        format!("{}.jobs.analyze", self.prefix)
    }

    /// The roll call every worker process answers with its roles (`candlepipe check`).
    pub fn roll_call(&self) -> String {
        format!("{}.control.ping", self.prefix)
    }

    /// Broadcast of the LLM route (canary weight) to every analysis worker.
    pub fn llm_route(&self) -> String {
        format!("{}.control.llm.route", self.prefix)
    }

    pub fn jobs_all(&self) -> String {
        format!("{}.jobs.>", self.prefix)
    }

    /// Where a job that failed for good is kept: `<prefix>.dlq.<subject without prefix>`.
    pub fn dead_letter_for(&self, original: &str) -> String {
        let rest = original
            .strip_prefix(&self.prefix)
            .map(|r| r.trim_start_matches('.'))
            .unwrap_or(original);
        format!("{}.dlq.{}", self.prefix, rest)
    }

    pub fn dlq_all(&self) -> String {
        format!("{}.dlq.>", self.prefix)
    }

    pub fn jobs_stream(&self) -> String {
        format!(
            "{}_JOBS",
            self.prefix.to_ascii_uppercase().replace(['.', '-'], "_")
        )
    }

    pub fn dlq_stream(&self) -> String {
        format!(
            "{}_DLQ",
            self.prefix.to_ascii_uppercase().replace(['.', '-'], "_")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Interval, Symbol};

    #[test]
    fn names_follow_the_spec() {
        let s = Subjects::default();
        let series = SeriesKey::new(
            Exchange::Kraken,
            Symbol::parse("BTC/USD").unwrap(),
            Interval::H1,
        );
        assert_eq!(
            s.ready(&series),
            "candlepipe.candles.ready.kraken.BTC-USD.1h"
        );
        assert_eq!(
            s.fill_job(Exchange::Binance),
            "candlepipe.jobs.fill.binance"
        );
        assert_eq!(
            s.dead_letter_for("candlepipe.jobs.fill.binance"),
            "candlepipe.dlq.jobs.fill.binance"
        );
        let bulk = Lane::new(Exchange::Kraken, Priority::Bulk);
        assert_eq!(s.lane(bulk), "candlepipe.jobs.fill.kraken.bulk");
        assert_eq!(s.lane_of("candlepipe.jobs.fill.kraken.bulk"), Some(bulk));
        assert_eq!(s.lane_of("candlepipe.jobs.fill.nope"), None);
        assert_eq!(s.jobs_stream(), "CANDLEPIPE_JOBS");
        assert_eq!(s.live(&series), "candlepipe.candles.live.kraken.BTC-USD.1h");
        assert_eq!(s.candles_watch(), "candlepipe.candles.watch");
        assert_eq!(s.dlq_stream(), "CANDLEPIPE_DLQ");
    }
}
