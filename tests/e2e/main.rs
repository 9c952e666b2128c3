//! End-to-end tests: the real `candlepipe` binary against real nats-server and redis-server
//! processes, with `candlepipe sim` standing in for the exchanges.

#![allow(clippy::unwrap_used)]

mod analysis;
mod backfill;
mod bench;
mod candles;
mod cli;
mod client;
mod clock;
mod cluster;
mod errors;
mod export;
mod faithful;
mod formats;
mod gateway;
mod history;
mod hostile;
mod lanes;
mod markets;
mod native;
mod ops;
mod producers;
mod reliability;
mod restarts;
mod security;
mod streams;
mod support;
mod tamper;
mod telemetry;
mod trust;
