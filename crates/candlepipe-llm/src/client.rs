//! The HTTP side of an OpenAI-compatible API: `POST /v1/chat/completions` and
//! `GET /v1/models`. The API key goes in the `Authorization` header and nowhere else.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{LlmError, Provider};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Message {
        Message {
            role: "system",
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Message {
        Message {
            role: "user",
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Message {
        Message {
            role: "assistant",
            content: content.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens + o.prompt_tokens,
            completion_tokens: self.completion_tokens + o.completion_tokens,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub content: String,
    pub usage: Usage,
}

/// Rough token count of text (about four characters a token), for estimates before a call.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// The most tokens `text` can be: byte-level BPE tokenizers (those of OpenAI, Anthropic,
/// Llama, DeepSeek…) never make more tokens than the text has bytes, even where they do
/// worst (long runs of digits). Money is reserved against this, never the estimate.
pub fn most_tokens(text: &str) -> u64 {
    text.len() as u64
}

/// Tokens a chat format adds around each message, at most (OpenAI's adds 3 or 4).
pub const MESSAGE_OVERHEAD_TOKENS: u64 = 8;

#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl LlmClient {
    pub fn new(timeout: Duration) -> Result<LlmClient, LlmError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| LlmError::Unreachable(e.to_string()))?;
        Ok(LlmClient { http, timeout })
    }

    fn request(&self, p: &Provider, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &p.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    async fn send(
        &self,
        p: &Provider,
        builder: reqwest::RequestBuilder,
    ) -> Result<Value, LlmError> {
        let resp = self
            .request(p, builder)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status();
        if status.as_u16() == 429 {
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(LlmError::RateLimited { retry_after });
        }
        let body = resp.bytes().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(LlmError::Status {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| LlmError::BadResponse(e.to_string()))
    }

    fn transport(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout(self.timeout)
        } else if e.is_connect() {
            LlmError::Unreachable(e.without_url().to_string())
        } else {
            // Without the URL's query; the key is in a header and never in the error.
            LlmError::Transport(e.without_url().to_string())
        }
    }

    /// One chat completion asking for a JSON object.
    pub async fn chat(
        &self,
        p: &Provider,
        messages: &[Message],
        max_tokens: u32,
    ) -> Result<Completion, LlmError> {
        let body = json!({
            "model": p.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.2,
            "response_format": {"type": "json_object"},
        });
        let v = self
            .send(
                p,
                self.http.post(p.endpoint("/chat/completions")).json(&body),
            )
            .await?;
        let reported = serde_json::from_value::<Usage>(v["usage"].clone()).ok();
        let Some(content) = v["choices"][0]["message"]["content"].as_str() else {
            // Still billed by the provider when it reports usage.
            return Err(match reported {
                Some(usage) => LlmError::NoChoices(usage),
                None => LlmError::BadResponse("no choices[0].message.content".into()),
            });
        };
        let usage = reported.unwrap_or_else(|| {
            // Spend must still be counted: the most the provider can have billed.
            tracing::warn!(provider = %p.name, "completion without usage; counting the most tokens it can be");
            Usage {
                prompt_tokens: messages
                    .iter()
                    .map(|m| most_tokens(&m.content) + MESSAGE_OVERHEAD_TOKENS)
                    .sum(),
                completion_tokens: most_tokens(content),
            }
        });
        Ok(Completion {
            content: content.to_string(),
            usage,
        })
    }

    /// The model ids the endpoint serves.
    pub async fn models(&self, p: &Provider) -> Result<Vec<String>, LlmError> {
        let v = self.send(p, self.http.get(p.endpoint("/models"))).await?;
        let data = v["data"]
            .as_array()
            .ok_or_else(|| LlmError::BadResponse("no data array".into()))?;
        Ok(data
            .iter()
            .filter_map(|m| m["id"].as_str().map(String::from))
            .collect())
    }
}
