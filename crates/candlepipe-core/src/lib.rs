//! Domain and wire types of candlepipe: exchanges, symbols, intervals, candles, the NATS
//! request/reply/event payloads and their encodings. No I/O happens in this crate.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod aggregate;
pub mod analysis;
pub mod candle;
pub mod candles_json;
pub mod clock;
pub mod closing;
pub mod confirm;
pub mod coverage;
pub mod decimal_text;
pub mod encoding;
pub mod error;
pub mod exchange;
pub mod freshness;
pub mod interval;
pub mod job;
pub mod lane;
pub mod reply_parts;
pub mod reply_to;
pub mod request;
pub mod series;
pub mod subjects;
pub mod symbol;
pub mod trace;
pub mod watch;

pub use analysis::{AnalysisReply, AnalysisRequest};
pub use candle::{BuiltFrom, Candle};
pub use confirm::Fetched;
pub use coverage::Coverage;
pub use encoding::Encoding;
pub use error::{ErrorCode, WireError};
pub use exchange::Exchange;
pub use freshness::{Completeness, SeriesState, Verdict};
pub use interval::Interval;
pub use job::{FillJob, ReadyEvent};
pub use lane::{Lane, Priority};
pub use reply_to::ReplyPolicy;
pub use request::{CandleQuery, CandlesReply, CandlesRequest, FillGaps, Source};
pub use series::SeriesKey;
pub use subjects::Subjects;
pub use symbol::Symbol;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

pub use clock::now_ms;
