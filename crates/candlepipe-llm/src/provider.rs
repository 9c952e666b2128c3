//! One OpenAI-compatible endpoint and the model used there.

use std::fmt;

#[derive(Clone, PartialEq)]
pub struct Provider {
    /// A name for metrics and cost accounting (`openai`, `primary`, ...).
    pub name: String,
    /// Base URL; `/v1` is appended unless it already ends with it.
    pub url: String,
    pub model: String,
    /// From the environment only; never logged (see the `Debug` impl).
    pub api_key: Option<String>,
}

impl Provider {
    pub fn endpoint(&self, path: &str) -> String {
        let base = self.url.trim_end_matches('/');
        if base.ends_with("/v1") {
            format!("{base}{path}")
        } else {
            format!("{base}/v1{path}")
        }
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_no_key_in_debug() {
        let mut p = Provider {
            name: "p".into(),
            url: "https://api.example.com/".into(),
            model: "m".into(),
            api_key: Some("sk-secret".into()),
        };
        assert_eq!(p.endpoint("/models"), "https://api.example.com/v1/models");
        p.url = "https://api.example.com/openai/v1".into();
        assert_eq!(
            p.endpoint("/chat/completions"),
            "https://api.example.com/openai/v1/chat/completions"
        );
        assert!(!format!("{p:?}").contains("sk-secret"));
    }
}
