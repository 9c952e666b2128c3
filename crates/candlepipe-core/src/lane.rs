//! Lanes: every exchange's fill jobs travel on their own subjects and are pulled by their own
//! consumers, so one exchange's backlog or pause never holds capacity another could use.
//! Each exchange has two lanes: `live` (a producer waits for the job) and `bulk` (nobody
//! waits: abandoned jobs, background refreshes), which runs only on budget live work does
//! not need.

use crate::Exchange;

/// Who is waiting for an exchange request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// A producer waits for it.
    Live,
    /// Nobody waits: abandoned jobs, background refreshes, backfill pages, market lists.
    Bulk,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Live => "live",
            Priority::Bulk => "bulk",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lane {
    pub exchange: Exchange,
    pub priority: Priority,
}

impl Lane {
    pub const fn new(exchange: Exchange, priority: Priority) -> Lane {
        Lane { exchange, priority }
    }

    /// Every lane: each exchange's live lane, then its bulk lane.
    pub fn all() -> impl Iterator<Item = Lane> {
        Exchange::ALL.into_iter().flat_map(|ex| {
            [Priority::Live, Priority::Bulk]
                .into_iter()
                .map(move |p| Lane::new(ex, p))
        })
    }

    /// The durable consumer every fill process shares for this lane: `fill-binance`,
    /// `fill-binance-bulk`.
    pub fn consumer(self) -> String {
        match self.priority {
            Priority::Live => format!("fill-{}", self.exchange),
            Priority::Bulk => format!("fill-{}-bulk", self.exchange),
        }
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.exchange, self.priority.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_lanes_with_distinct_consumers() {
        let names: std::collections::BTreeSet<String> = Lane::all().map(Lane::consumer).collect();
        assert_eq!(names.len(), 6);
        assert!(names.contains("fill-kraken") && names.contains("fill-kraken-bulk"));
    }
}
