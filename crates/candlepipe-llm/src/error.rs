use std::time::Duration;

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
}
