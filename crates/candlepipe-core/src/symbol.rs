//! Unified symbols (`BASE/QUOTE`) and their validation.
//!
//! The charset is bounded (`A-Z 0-9`, one `/`, at most 20 characters) so that a symbol can
//! never inject tokens (`.`, `*`, `>`, spaces) into a NATS subject or a Redis key.

use serde::{Deserialize, Serialize};

use crate::exchange::truncate;
use crate::{ErrorCode, WireError};

pub const MAX_SYMBOL_LEN: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Symbol {
    /// `BASE/QUOTE`, validated.
    text: String,
    slash: usize,
}

impl Symbol {
    pub fn parse(s: &str) -> Result<Symbol, WireError> {
        let invalid = |why: &str| {
            WireError::new(
                ErrorCode::InvalidSymbol,
                format!(
                    "symbol must be BASE/QUOTE, got '{}': {why}",
                    truncate(s, 40)
                ),
            )
        };
        if s.len() > MAX_SYMBOL_LEN {
            return Err(invalid("longer than 20 characters"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '/'))
        {
            return Err(invalid(&format!(
                "character {c:?} is not allowed (A-Z, 0-9, /)"
            )));
        }
        let slash = match s.match_indices('/').map(|(i, _)| i).collect::<Vec<_>>()[..] {
            [i] => i,
            _ => return Err(invalid("exactly one '/' is required")),
        };
        if slash == 0 || slash == s.len() - 1 {
            return Err(invalid("base and quote must not be empty"));
        }
        Ok(Symbol {
            text: s.to_string(),
            slash,
        })
    }

    pub fn base(&self) -> &str {
        &self.text[..self.slash]
    }

    pub fn quote(&self) -> &str {
        &self.text[self.slash + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The form used in NATS subjects and Redis keys: `BASE-QUOTE`.
    pub fn token(&self) -> String {
        format!("{}-{}", self.base(), self.quote())
    }

    /// Parses the subject form `BASE-QUOTE` back.
    pub fn from_token(token: &str) -> Result<Symbol, WireError> {
        Symbol::parse(&token.replacen('-', "/", 1))
    }
}

impl TryFrom<String> for Symbol {
    type Error = WireError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Symbol::parse(&s)
    }
}

impl From<Symbol> for String {
    fn from(s: Symbol) -> String {
        s.text
    }
}

impl std::fmt::Display for Symbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, ok: bool) {
        assert_eq!(Symbol::parse(input).is_ok(), ok, "{input:?}");
    }

    #[test]
    fn accepts_unified_symbols() {
        check("BTC/USDT", true);
        check("1INCH/USD", true);
        check("ABCDEFGHIJ/KLMNOPQRS", true);
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "BTC.USDT",
            "BTC/USD*",
            "BTC/>",
            "BTC USDT",
            "btc/usdt",
            "BTCUSDT",
            "BTC//USDT",
            "/USDT",
            "BTC/",
            "BTC/USDT/X",
            "",
            "ABCDEFGHIJK/KLMNOPQRS",
            "BTC-USDT",
            "ÄBC/USD",
        ] {
            check(bad, false);
        }
    }

    #[test]
    fn token_round_trips() {
        let s = Symbol::parse("ETH/USD").unwrap();
        assert_eq!(s.token(), "ETH-USD");
        assert_eq!(Symbol::from_token("ETH-USD").unwrap(), s);
        assert_eq!((s.base(), s.quote()), ("ETH", "USD"));
    }
}
