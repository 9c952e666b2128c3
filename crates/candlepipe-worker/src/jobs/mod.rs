//! JetStream jobs, shared by the roles that publish them (ingest, stream) and those that
//! execute them (fill, analyze):
//! - [`streams`]: the jobs and dead-letter streams and their consumers, made at start;
//! - [`queue`]: publishing a fill job under its dedup id, acking and settling a failure;
//! - [`disposition`]: the one place deciding a failure's wire code and its ack, nak, term
//!   or dead letter;
//! - [`pull`]: the loop taking jobs from a durable consumer;
//! - [`last_delivery`]: jobs whose last delivery got no answer, dead-lettered from
//!   JetStream's advisory;
//! - [`dead_letters`]: reading, replaying and purging the dead-letter stream.
//!
//! Subjects: `<prefix>.jobs.*` (stream `CANDLEPIPE_JOBS`), `<prefix>.dlq.*` (stream
//! `CANDLEPIPE_DLQ`); Redis: `<prefix>jobfail:<stream>:<seq>` (a job's first failure).
//! Imports nothing from the roles.

pub mod dead_letters;
pub mod disposition;
pub mod last_delivery;
pub mod pull;
pub mod queue;
pub mod streams;

pub use queue::Queue;
pub use streams::StreamSettings;
