//! What can go wrong for a producer: the service's own error codes (SPEC §3), or NATS.

use std::time::Duration;

use candlepipe_core::{ErrorCode, WireError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// candlepipe answered with an error code.
    #[error("{code}: {message}")]
    Service {
        code: ErrorCode,
        message: String,
        /// When to ask again, when the service knows (`rate_limited`).
        retry_after: Option<Duration>,
    },
    /// Nobody serves the subject: no candlepipe worker of that role is running.
    #[error("nobody serves {subject}: is candlepipe running?")]
    NoResponders { subject: String },
    /// No answer within the request's own deadline (candlepipe always answers before it,
    /// so this is the network or a worker that died mid-request).
    #[error("no answer on {subject} within {after:?}")]
    TimedOut { subject: String, after: Duration },
    /// The connection to NATS, or a publish, failed.
    #[error("nats: {0}")]
    Nats(String),
    /// The answer could not be read.
    #[error("undecodable answer: {0}")]
    Decode(String),
}

impl Error {
    /// The service's error code, when it gave one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Service { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// When the service says to ask again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Service { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether asking the same again later may succeed (the request itself was fine).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Service { code, .. } => matches!(
                code,
                ErrorCode::RateLimited
                    | ErrorCode::UpstreamError
                    | ErrorCode::Timeout
                    | ErrorCode::Unavailable
            ),
            Error::NoResponders { .. } | Error::TimedOut { .. } | Error::Nats(_) => true,
            Error::Decode(_) => false,
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        Error::Service {
            code: e.code,
            message: e.message,
            retry_after: e.retry_after_ms.map(Duration::from_millis),
        }
    }
}
