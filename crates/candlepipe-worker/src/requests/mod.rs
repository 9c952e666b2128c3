//! How every role meets core NATS, shared by ingest, analyze and stream (and by the job
//! queue for traces):
//! - [`answer`]: the loop answering requests taken from a queue group, draining on shutdown,
//!   and the encoding a request names (`Content-Type`);
//! - [`replies`]: which reply subjects a worker answers on (inboxes only) and the one task
//!   publishing replies in batches;
//! - [`traces`]: the W3C `traceparent` carried from a request into the work it starts.
//!
//! Reads no Redis key and imports nothing else of this crate.

pub mod answer;
pub mod replies;
pub mod traces;
