//! Talking to any OpenAI-compatible LLM: the HTTP client (`/v1/chat/completions`,
//! `/v1/models`), the commentary prompt with JSON validation and one repair, prices and
//! cost, and the canary ramp rule. No Redis or NATS here: spend and routing state across
//! the cluster live in `candlepipe-worker`.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod client;
pub mod commentary;
pub mod error;
pub mod price;
pub mod provider;
pub mod ramp;

pub use client::{Completion, LlmClient, Message, Usage};
pub use commentary::{commentary, Commented};
pub use error::LlmError;
pub use price::{Price, Prices};
pub use provider::Provider;
