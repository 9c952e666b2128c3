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
    #[error("cannot reach the provider: {0}")]
    Transport(String),
    #[error("the provider's answer is not an OpenAI chat completion: {0}")]
    BadResponse(String),
    #[error("the answer is not the JSON asked for, even after a repair: {0}")]
    InvalidOutput(String),
    /// A 200 with `usage` but no `choices`: nothing to use, but billed.
    #[error("the provider answered without choices ({} prompt + {} completion tokens billed)", .0.prompt_tokens, .0.completion_tokens)]
    NoChoices(Usage),
}

impl LlmError {
    /// What the provider billed for the failed call.
    pub fn billed(&self) -> Usage {
        match self {
            LlmError::NoChoices(usage) => *usage,
            _ => Usage::default(),
        }
    }
}
