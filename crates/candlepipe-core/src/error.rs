//! The error codes of the wire contract (SPEC §3) and the error payload that carries them.

use serde::{Deserialize, Serialize};

/// Every error a producer can receive. The wire name is the snake_case variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    UnknownExchange,
    InvalidSymbol,
    UnknownSymbol,
    UnsupportedInterval,
    LimitOutOfRange,
    RateLimited,
    UpstreamError,
    Timeout,
    Unavailable,
    HistoryUnavailable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownExchange,
        ErrorCode::InvalidSymbol,
        ErrorCode::UnknownSymbol,
        ErrorCode::UnsupportedInterval,
        ErrorCode::LimitOutOfRange,
        ErrorCode::RateLimited,
        ErrorCode::UpstreamError,
        ErrorCode::Timeout,
        ErrorCode::Unavailable,
        ErrorCode::HistoryUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownExchange => "unknown_exchange",
            ErrorCode::InvalidSymbol => "invalid_symbol",
            ErrorCode::UnknownSymbol => "unknown_symbol",
            ErrorCode::UnsupportedInterval => "unsupported_interval",
            ErrorCode::LimitOutOfRange => "limit_out_of_range",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UpstreamError => "upstream_error",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::HistoryUnavailable => "history_unavailable",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether asking again later may succeed. Input errors and "the exchange says no such
    /// symbol/interval" never change by retrying.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::UpstreamError
                | ErrorCode::Timeout
                | ErrorCode::Unavailable
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"code":"invalid_symbol","message":"..."}`, and for `rate_limited` when the service
/// knows when to try again, `"retry_after_ms"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// `rate_limited`, to be tried again after `retry_after_ms`.
    pub fn rate_limited(message: impl Into<String>, retry_after_ms: u64) -> Self {
        WireError {
            retry_after_ms: Some(retry_after_ms),
            ..WireError::new(ErrorCode::RateLimited, message)
        }
    }
}
