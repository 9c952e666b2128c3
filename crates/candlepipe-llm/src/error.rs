use std::time::Duration;

use crate::Usage;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("rate limited by the provider (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    #[error("provider answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request may have reached the provider (the connection broke after it was sent).
    #[error("the call to the provider broke off: {0}")]
    Transport(String),
    /// No connection was made: the provider never saw the request.
    #[error("cannot reach the provider: {0}")]
    Unreachable(String),
    #[error("the provider's answer is not an OpenAI chat completion: {0}")]
    BadResponse(String),
    #[error("the answer is not the JSON asked for, even after a repair: {0}")]
    InvalidOutput(String),
    /// A 200 with `usage` but no `choices`: nothing to use, but billed.
    #[error("the provider answered without choices ({} prompt + {} completion tokens billed)", .0.prompt_tokens, .0.completion_tokens)]
    NoChoices(Usage),
}

impl LlmError {
    /// Whether the provider may have billed the call although its usage is unknown: it
    /// timed out, broke off after the request was sent, failed on the provider's side
    /// (5xx), or answered unreadably. Such a call is billed at its worst case.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            LlmError::Timeout(_) | LlmError::Transport(_) | LlmError::BadResponse(_) => true,
            LlmError::Status { status, .. } => *status >= 500,
            LlmError::RateLimited { .. }
            | LlmError::Unreachable(_)
            | LlmError::InvalidOutput(_)
            | LlmError::NoChoices(_) => false,
        }
    }

    /// What the provider billed for the failed call, when known.
    pub fn billed(&self) -> Usage {
        match self {
            LlmError::NoChoices(usage) => *usage,
            _ => Usage::default(),
        }
    }
}
