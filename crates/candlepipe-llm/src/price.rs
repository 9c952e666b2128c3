//! Prices per million input (prompt) and output (completion) tokens, per model: built in
//! for the common models ([`BUILT_IN`]), read from a LiteLLM
//! `model_prices_and_context_window.json` ([`Prices::from_litellm`]), or configured as
//! `model=input:output` ([`Prices::parse`]). A model without a price is never called.

use std::collections::BTreeMap;

use crate::Usage;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input_per_m: f64,
    pub output_per_m: f64,
}

impl Price {
    pub fn cost_usd(&self, u: &Usage) -> f64 {
        (u.prompt_tokens as f64 * self.input_per_m + u.completion_tokens as f64 * self.output_per_m)
            / 1e6
    }
}

/// Built-in list prices, USD per million input and output tokens (text, standard tier,
/// input at cache miss), with where and when each was read.
pub const BUILT_IN: &[(&str, f64, f64)] = &[
    // OpenAI, https://openai.com/api/pricing/ (read 2025-08-01).
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    // DeepSeek, https://api-docs.deepseek.com/quick_start/pricing (DeepSeek-V3.2 for both
    // names, from 2025-12-09).
    ("deepseek-chat", 0.28, 0.42),
    ("deepseek-reasoner", 0.28, 0.42),
    // Anthropic, https://www.anthropic.com/pricing#api (read 2025-10-20).
    ("claude-sonnet-4-5", 3.00, 15.00),
    ("claude-sonnet-4-5-20250929", 3.00, 15.00),
    ("claude-sonnet-4-20250514", 3.00, 15.00),
    ("claude-haiku-4-5", 1.00, 5.00),
    ("claude-haiku-4-5-20251001", 1.00, 5.00),
    ("claude-3-5-haiku-20241022", 0.80, 4.00),
    // Google, https://ai.google.dev/gemini-api/docs/pricing (read 2025-07-22; 2.5 Pro for
    // prompts up to 200k tokens).
    ("gemini-2.5-flash", 0.30, 2.50),
    ("gemini-2.5-pro", 1.25, 10.00),
    ("gemini-2.0-flash", 0.10, 0.40),
    // The simulator's models (`candlepipe sim`), priced like gpt-4o-mini and gpt-4o.
    ("sim-small", 0.15, 0.60),
    ("sim-large", 2.50, 10.00),
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices(pub BTreeMap<String, Price>);

impl Prices {
    /// The built-in prices.
    pub fn built_in() -> Prices {
        Prices(
            BUILT_IN
                .iter()
                .map(|(model, input, output)| {
                    (
                        model.to_string(),
                        Price {
                            input_per_m: *input,
                            output_per_m: *output,
                        },
                    )
                })
                .collect(),
        )
    }

    /// LiteLLM's `model_prices_and_context_window.json`: per model, `input_cost_per_token`
    /// and `output_cost_per_token` in USD (entries without both, and the file's own
    /// `sample_spec`, are skipped). Keys are kept as they are (`gpt-4o`, `gemini/gemini-2.5-flash`).
    pub fn from_litellm(json: &str) -> Result<Prices, String> {
        let all: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|e| format!("not a LiteLLM price file: {e}"))?;
        let per_m = |v: &serde_json::Value, key: &str| {
            v.get(key)
                .and_then(serde_json::Value::as_f64)
                .filter(|p| p.is_finite() && *p >= 0.0)
                .map(|p| p * 1e6)
        };
        Ok(Prices(
            all.iter()
                .filter(|(model, _)| *model != "sample_spec")
                .filter_map(|(model, v)| {
                    Some((
                        model.clone(),
                        Price {
                            input_per_m: per_m(v, "input_cost_per_token")?,
                            output_per_m: per_m(v, "output_cost_per_token")?,
                        },
                    ))
                })
                .collect(),
        ))
    }

    /// Adds `other`'s prices, replacing this one's for the same model.
    pub fn extend(&mut self, other: Prices) {
        self.0.extend(other.0);
    }

    /// `model=input:output,model=input:output` in USD per million tokens.
    pub fn parse(s: &str) -> Result<Prices, String> {
        let mut out = BTreeMap::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (model, rates) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?}: expected model=input:output"))?;
            let (i, o) = rates
                .split_once(':')
                .ok_or_else(|| format!("{item:?}: expected model=input:output"))?;
            let num = |v: &str| -> Result<f64, String> {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| p.is_finite() && *p >= 0.0)
                    .ok_or_else(|| format!("{item:?}: {v:?} is not a price"))
            };
            out.insert(
                model.trim().to_string(),
                Price {
                    input_per_m: num(i)?,
                    output_per_m: num(o)?,
                },
            );
        }
        Ok(Prices(out))
    }

    /// The price of `model`; a gateway's `provider/model` name (`openai/gpt-4o`) falls
    /// back to the model's own.
    pub fn get(&self, model: &str) -> Option<Price> {
        self.0.get(model).copied().or_else(|| {
            model
                .rsplit_once('/')
                .and_then(|(_, bare)| self.0.get(bare).copied())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_cost() {
        let p = Prices::parse("gpt-4o-mini=0.15:0.60, sim-large = 2.5:10").unwrap();
        let u = Usage {
            prompt_tokens: 1_000,
            completion_tokens: 200,
        };
        let price = p.get("sim-large").unwrap();
        assert!((price.cost_usd(&u) - (1_000.0 * 2.5 + 200.0 * 10.0) / 1e6).abs() < 1e-15);
        assert!(p.get("other").is_none());
        assert!(Prices::parse("m=1").is_err());
        assert!(Prices::parse("m=1:-2").is_err());
        assert_eq!(Prices::parse("").unwrap(), Prices::default());
    }

    #[test]
    fn the_common_models_are_priced_and_a_gateway_prefix_falls_back() {
        let p = Prices::built_in();
        for model in [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "deepseek-chat",
            "deepseek-reasoner",
            "claude-sonnet-4-5",
            "claude-haiku-4-5",
            "gemini-2.5-flash",
            "gemini-2.5-pro",
            "deepseek/deepseek-chat",
        ] {
            assert!(p.get(model).is_some(), "{model}");
        }
        assert_eq!(p.get("deepseek-chat").unwrap().output_per_m, 0.42);
        assert!(p.get("some-unpriced-model").is_none());
    }

    #[test]
    fn litellm_files_are_read_per_token() {
        let file = r#"{
            "sample_spec": {"max_tokens": "LEGACY", "input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": "one of https://docs.litellm.ai/docs/providers", "mode": "chat"},
            "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "mode": "chat"},
            "text-embedding-3-small": {"input_cost_per_token": 2e-08, "mode": "embedding"}
        }"#;
        let p = Prices::from_litellm(file).unwrap();
        let gpt = p.get("gpt-4o").unwrap();
        assert!((gpt.input_per_m - 2.5).abs() < 1e-9 && (gpt.output_per_m - 10.0).abs() < 1e-9);
        assert!(p.get("text-embedding-3-small").is_none());
        assert!(Prices::from_litellm("[1,2]").is_err());
    }
}
