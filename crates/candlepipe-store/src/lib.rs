//! Where candles are kept: the in-process L1 cache and the signed Redis series store; and
//! the signed records (analysis results, LLM commentary) kept beside them.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod envelope;
pub mod fragments;
pub mod l1;
pub mod packed;
pub mod records;
pub mod redis_conn;
pub mod series_store;
pub mod verified;
pub mod write_signal;

pub use candlepipe_core::Fetched;
pub use envelope::Keyring;
pub use l1::{L1Cache, ReplyKey, Snapshot};
pub use records::Records;
pub use redis_conn::Redis;
pub use series_store::{
    FragmentRow, JobWrite, ReplyRead, Runs, SeriesRead, SeriesStore, StoredReply, WriteBasis,
    Written, CHUNK_CANDLES, RUN_CANDLES,
};
pub use write_signal::WriteSignal;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("series kept changing under concurrent writers")]
    Conflict,
    /// A stream holder's write carried an older lease fence than the series has seen: the
    /// lease went to another holder.
    #[error("lease lost: the series is held with a newer fence")]
    Fenced,
    #[error("redis answered unexpectedly: {0}")]
    Unexpected(String),
    #[error("cannot encode value: {0}")]
    Encode(String),
}
