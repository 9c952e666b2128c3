//! The benchmark harness behind `candlepipe bench`, kept out of the product's commands (as
//! `nats bench` is a harness beside the server): it only drives a running deployment over
//! NATS and reads the simulator's counters, never the worker's internals.
//!
//! - [`load`]: the load generator for `candlepipe.candles.get` (hot, cold, Zipf, direct and
//!   echo workloads), HDR histograms, and the echo responder measuring the transport alone;
//! - [`scenarios`]: how candlepipe spends an exchange's budget under pressure;
//! - [`streams`]: watched series asked for every second, each answer checked against the
//!   simulator's record;
//! - [`live`]: the latency of live candles from the exchange's event to a subscriber;
//! - [`sim_log`]: the simulator's count of the exchange calls it served.
//!
//! Files import downwards only: `load` → `scenarios` → `streams` → `sim_log`, `load` → `live`,
//! and each of them → [`setup`].

pub mod live;
pub mod load;
pub mod scenarios;
pub mod setup;
pub mod sim_log;
pub mod streams;

pub use load::{run, Args};
pub use setup::{Connect, Setup};
