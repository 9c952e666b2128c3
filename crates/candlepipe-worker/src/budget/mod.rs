//! The exchanges' cluster-wide request budgets, shared by ingest (which admits live jobs to
//! them), fill (which spends them) and analyze's LLM rate limits:
//! - [`gcra`]: the Redis scripts — a GCRA limiter per exchange with a live and a bulk lane,
//!   the waiting set of admitted live jobs, and the shared pause after a 429/418;
//! - [`redis_budget`]: [`RedisBudget`], the exchange client's budget on those scripts, and
//!   the pause announced on `<prefix>.control.pause.<exchange>`.
//!
//! Redis keys: `<prefix>rl:{<exchange>}` and its `:pause`, `:waiting`, `:bulk`. Imports nothing from the roles.

pub mod gcra;
pub mod redis_budget;

pub use redis_budget::RedisBudget;
