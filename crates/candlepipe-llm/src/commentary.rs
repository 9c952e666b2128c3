//! The commentary prompt: indicator facts in as JSON, `{"commentary": "..."}` out. An answer
//! that is not that JSON gets one repair request quoting the problem; a second bad answer is
//! `InvalidOutput`. Tokens of every call are counted, failed or not.

use serde_json::Value;

use crate::client::{LlmClient, Message, Usage};
use crate::{LlmError, Provider};

pub const SYSTEM_PROMPT: &str = "You are a concise crypto market analyst. You receive \
indicators that were computed from OHLCV candles, as JSON. Refer only to the numbers given; \
never invent prices. Answer with only a JSON object of the form \
{\"commentary\": \"<two or three sentences for a trader>\"}.";

pub const MAX_COMMENTARY_CHARS: usize = 2_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Commented {
    pub text: Result<String, LlmError>,
    /// Summed over the calls made (1, or 2 with a repair), as far as known.
    pub usage: Usage,
    pub calls: u32,
    /// A call's outcome is unknown ([`LlmError::outcome_unknown`]): the provider may have
    /// billed more than `usage`.
    pub unknown: bool,
}

pub fn user_prompt(facts: &Value) -> String {
    format!("Indicators: {facts}\nWrite the commentary.")
}

/// The commentary in `content`, or why it is not acceptable.
pub fn validate(content: &str) -> Result<String, String> {
    let trimmed = content.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|s| s.strip_suffix("```"))
        .unwrap_or(trimmed);
    let v: Value =
        serde_json::from_str(unfenced).map_err(|e| format!("not a JSON object ({e})"))?;
    let text = v
        .get("commentary")
        .and_then(Value::as_str)
        .ok_or("the object has no string field \"commentary\"")?
        .trim();
    if text.is_empty() {
        return Err("\"commentary\" is empty".into());
    }
    if text.chars().count() > MAX_COMMENTARY_CHARS {
        return Err(format!(
            "\"commentary\" is longer than {MAX_COMMENTARY_CHARS} characters"
        ));
    }
    Ok(text.to_string())
}

pub async fn commentary(
    client: &LlmClient,
    provider: &Provider,
    facts: &Value,
    max_tokens: u32,
) -> Commented {
    let mut messages = vec![
        Message::system(SYSTEM_PROMPT),
        Message::user(user_prompt(facts)),
    ];
    let first = match client.chat(provider, &messages, max_tokens).await {
        Ok(c) => c,
        Err(e) => {
            return Commented {
                usage: e.billed(),
                unknown: e.outcome_unknown(),
                text: Err(e),
                calls: 1,
            }
        }
    };
    let why = match validate(&first.content) {
        Ok(text) => {
            return Commented {
                text: Ok(text),
                usage: first.usage,
                calls: 1,
                unknown: false,
            }
        }
        Err(why) => why,
    };
    tracing::debug!(provider = %provider.name, reason = %why, "asking the LLM to repair its answer");
    messages.push(Message::assistant(first.content));
    messages.push(Message::user(format!(
        "That answer was not usable: {why}. Reply with only the JSON object \
         {{\"commentary\": \"...\"}}."
    )));
    let (text, usage) = match client.chat(provider, &messages, max_tokens).await {
        Ok(second) => (
            validate(&second.content).map_err(LlmError::InvalidOutput),
            first.usage + second.usage,
        ),
        Err(e) => {
            let billed = first.usage + e.billed();
            (Err(e), billed)
        }
    };
    Commented {
        unknown: text.as_ref().is_err_and(LlmError::outcome_unknown),
        text,
        usage,
        calls: 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert_eq!(validate(r#"{"commentary":" ok "}"#).unwrap(), "ok");
        assert_eq!(
            validate("```json\n{\"commentary\":\"fenced\"}\n```").unwrap(),
            "fenced"
        );
        assert!(validate("Sure! Here is my take").is_err());
        assert!(validate(r#"{"text":"x"}"#).is_err());
        assert!(validate(r#"{"commentary":""}"#).is_err());
        assert!(validate(&format!(r#"{{"commentary":"{}"}}"#, "x".repeat(2001))).is_err());
    }
}
