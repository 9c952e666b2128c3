//! A simulated OpenAI-compatible LLM: `GET /v1/models` and `POST /v1/chat/completions`.
//!
//! Answers follow the OpenAI schema (`choices[0].message.content`, `usage`). Token counts
//! are realistic rather than exact: about one token per four characters plus a few per
//! message, as tokenizers of English text average. The commentary is built from the
//! indicator JSON found in the last user message, so it reads like a real answer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::{Admit, Sim, LLM};

/// The models the sim serves (`/v1/models`): its own two, and stand-ins under two real
/// models' names, so a configuration meant for a real provider can be tried against it.
pub const MODELS: [&str; 4] = ["sim-small", "sim-large", "deepseek-chat", "gpt-4o-mini"];

fn error(status: StatusCode, kind: &str, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind, "code": code}})),
    )
        .into_response()
}

pub(crate) async fn models() -> Json<Value> {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|m| json!({"id": m, "object": "model", "created": 1_764_000_000, "owned_by": "candlepipe-sim"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// About four characters a token, at least one.
fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// A tokenizer at its worst: a token per byte.
fn worst_tokens(text: &str) -> u64 {
    (text.len() as u64).max(1)
}

/// A provider finishes (and bills) a call it has taken even when the caller hangs up
/// meanwhile: the work runs on its own task, so a client timeout does not cancel it.
pub(crate) async fn chat_completions(State(sim): State<Sim>, body: axum::body::Bytes) -> Response {
    tokio::spawn(complete(sim, body))
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn complete(sim: Sim, body: axum::body::Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_json",
            "request body is not JSON".into(),
        );
    };
    let model = req["model"].as_str().unwrap_or_default().to_string();
    let admit = sim.admit(LLM, &model, Some(&model)).await;
    let (malformed, no_choices) = match admit {
        Admit::Refuse(r) => return r,
        Admit::Serve => (false, false),
        Admit::Malformed => (true, false),
        Admit::NoChoices => (false, true),
    };
    let count: fn(&str) -> u64 = match sim.worst_tokenizer() {
        true => worst_tokens,
        false => tokens,
    };
    if !MODELS.contains(&model.as_str()) {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!("The model `{model}` does not exist"),
        );
    }
    let Some(messages) = req["messages"].as_array().filter(|m| !m.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_messages",
            "messages must be a non-empty array".into(),
        );
    };
    let prompt_tokens: u64 = 3 + messages
        .iter()
        .map(|m| 4 + count(m["content"].as_str().unwrap_or_default()))
        .sum::<u64>();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    let content = if malformed {
        format!("Sure! Here is my take: {}", commentary(last_user))
    } else {
        json!({"commentary": commentary(last_user)}).to_string()
    };
    let completion_tokens = count(&content);
    sim.count_usage(prompt_tokens, completion_tokens);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens
    });
    if no_choices {
        return Json(json!({"id": "chatcmpl-sim-empty", "object": "chat.completion", "model": model, "choices": [], "usage": usage})).into_response();
    }
    Json(json!({
        "id": format!("chatcmpl-sim-{}", candlepipe_core::now_ms()),
        "object": "chat.completion",
        "created": candlepipe_core::now_ms() / 1000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": usage
    }))
    .into_response()
}

/// Two sentences from the indicator JSON in `prompt` (the first `{` to the last `}`).
fn commentary(prompt: &str) -> String {
    let facts: Value = prompt
        .find('{')
        .zip(prompt.rfind('}'))
        .and_then(|(a, b)| serde_json::from_str(&prompt[a..=b]).ok())
        .unwrap_or(Value::Null);
    let field = |k: &str| match &facts[k] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => a
            .first()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            })
            .unwrap_or_else(|| "n/a".into()),
        _ => "n/a".into(),
    };
    format!(
        "{} is {} with {} volatility and RSI {}; the rule-based signal is {}. \
         Watch support near {} and resistance near {}.",
        field("symbol"),
        field("trend"),
        field("volatility"),
        field("rsi14"),
        field("signal"),
        field("support"),
        field("resistance"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commentary_reads_the_facts() {
        let text = commentary(
            r#"Indicators: {"symbol":"BTC/USDT","trend":"bullish","volatility":"low","rsi14":61.2,"signal":"buy","support":["90100.00"],"resistance":[]}"#,
        );
        assert_eq!(
            text,
            "BTC/USDT is bullish with low volatility and RSI 61.2; the rule-based signal is buy. \
             Watch support near 90100.00 and resistance near n/a."
        );
        assert!(commentary("no json here").starts_with("n/a is n/a"));
        assert_eq!(tokens(""), 1);
        assert_eq!(tokens("abcde"), 2);
    }
}
