//! What can go wrong when asking an exchange for candles.

use std::time::Duration;

use crate::budget::BudgetError;

/// Callers decide what to do by the variant; the messages are for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("exchange does not know the symbol: {0}")]
    UnknownSymbol(String),
    #[error("exchange does not serve this interval: {0}")]
    UnsupportedInterval(String),
    /// 429 (or Kraken's `EAPI:Rate limit exceeded`); `banned` for Binance's 418 IP ban.
    #[error("rate limited (retry after {retry_after:?}, banned: {banned}): {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        banned: bool,
        message: String,
    },
    /// Any other non-success status.
    #[error("HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("request timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connect(String),
    /// The exchange's circuit breaker is open: it failed too often just now.
    #[error("circuit open: the exchange failed too often; not asking it for a moment")]
    CircuitOpen,
    /// The request budget could not be consulted (its store is down); nothing was sent.
    #[error("request budget unavailable: {0}")]
    Budget(String),
    /// A live job's producers all stopped waiting before it got its turn; nothing was sent.
    #[error("no producer waits for this request any more")]
    NoWaiter,
    /// A 200 whose body is not what the exchange documents.
    #[error("malformed response: {0}")]
    Malformed(String),
}

impl FetchError {
    /// Whether this outcome says the exchange itself is unwell (for the circuit breaker).
    pub fn is_exchange_failure(&self) -> bool {
        matches!(
            self,
            FetchError::Status { status: 500.., .. }
                | FetchError::Timeout
                | FetchError::Connect(_)
                | FetchError::Malformed(_)
        )
    }

    /// Whether the exchange refused the request itself for good: a 4xx other than 429/418
    /// (those are rate limits) will be refused again however often it is asked.
    pub fn is_permanent_rejection(&self) -> bool {
        matches!(
            self,
            FetchError::Status {
                status: 400..=499,
                ..
            }
        )
    }

    pub(crate) fn from_reqwest(e: reqwest::Error) -> FetchError {
        if e.is_timeout() {
            FetchError::Timeout
        } else if e.is_decode() || e.is_body() {
            FetchError::Malformed(e.to_string())
        } else {
            FetchError::Connect(e.without_url().to_string())
        }
    }
}

impl From<BudgetError> for FetchError {
    fn from(e: BudgetError) -> Self {
        match e {
            BudgetError::Unavailable(why) => FetchError::Budget(why),
            BudgetError::NoWaiter => FetchError::NoWaiter,
        }
    }
}
