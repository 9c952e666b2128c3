//! What every worker process shares with the others through Redis (and, for the roll
//! call, NATS), whatever its roles:
//! - [`clock`]: the cluster's clock (Redis `TIME`), which budgets and leases are read on;
//! - [`stats`]: counters added to the cluster totals (`<prefix>stats`) for `candlepipe stats`;
//! - [`markets`]: each exchange's market list (`<prefix>mk:<exchange>`, signed), so no
//!   call is spent on a symbol an exchange does not list;
//! - [`leases`]: which series are wanted live and which `stream` process holds each
//!   (`cp:stream:{live}:*`): ingest and watches want them, stream processes hold them.
//! - [`roll_call`]: each process answers `<prefix>.control.ping` with its roles, for
//!   `candlepipe check`.
//!
//! Imports nothing from the roles or the job queue.

pub mod clock;
pub mod leases;
pub mod markets;
pub mod roll_call;
pub mod stats;
