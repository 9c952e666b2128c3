//! Prices per million input (prompt) and output (completion) tokens, per model.

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

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices(pub BTreeMap<String, Price>);

impl Prices {
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

    pub fn get(&self, model: &str) -> Option<Price> {
        self.0.get(model).copied()
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
}
