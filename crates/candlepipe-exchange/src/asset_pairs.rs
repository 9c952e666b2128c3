//! Kraken's `GET /0/public/AssetPairs` kept as Kraken wrote it, to be served again (the
//! gateway): each pair's object verbatim under its key, found by key or altname.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::exchange_info::Fields;
use crate::FetchError;

pub struct AssetPairs {
    /// Key, altname and object of each pair, in Kraken's order.
    pairs: Vec<Pair>,
    /// Key or altname → place in `pairs`.
    by_name: HashMap<String, usize>,
}

pub struct Pair {
    /// Kraken's own name for the pair (`XXBTZUSD`): what OHLC keys its result by.
    pub key: String,
    /// The name its candle endpoint is asked with (`XBTUSD`).
    pub altname: String,
    raw: Box<RawValue>,
}

/// A pair asked for that the list does not hold.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownPair(pub String);

impl AssetPairs {
    pub fn parse(body: &str) -> Result<AssetPairs, FetchError> {
        let malformed = |e: serde_json::Error| FetchError::Malformed(format!("AssetPairs: {e}"));
        #[derive(Deserialize)]
        struct Body {
            result: Fields,
        }
        #[derive(Deserialize)]
        struct Names {
            altname: String,
        }
        let body: Body = serde_json::from_str(body).map_err(malformed)?;
        let mut pairs = Vec::with_capacity(body.result.0.len());
        let mut by_name = HashMap::new();
        for (key, raw) in body.result.0 {
            let names: Names = serde_json::from_str(raw.get()).map_err(malformed)?;
            by_name.insert(key.clone(), pairs.len());
            by_name.insert(names.altname.clone(), pairs.len());
            pairs.push(Pair {
                key,
                altname: names.altname,
                raw,
            });
        }
        Ok(AssetPairs { pairs, by_name })
    }

    /// The pair Kraken knows by `name` (its key or altname).
    pub fn get(&self, name: &str) -> Option<&Pair> {
        self.by_name.get(name).map(|i| &self.pairs[*i])
    }

    /// The body Kraken answers for `only` those pairs (every one when `None`), each under
    /// its key, in the list's order.
    pub fn write(&self, only: Option<&[String]>) -> Result<String, UnknownPair> {
        let chosen: Vec<&Pair> = match only {
            None => self.pairs.iter().collect(),
            Some(names) => {
                let mut at = Vec::with_capacity(names.len());
                for name in names {
                    at.push(
                        *self
                            .by_name
                            .get(name)
                            .ok_or_else(|| UnknownPair(name.clone()))?,
                    );
                }
                at.sort_unstable();
                at.dedup();
                at.into_iter().map(|i| &self.pairs[i]).collect()
            }
        };
        let entries: Vec<String> = chosen
            .iter()
            .map(|p| format!("\"{}\":{}", p.key, p.raw.get()))
            .collect();
        Ok(format!(
            "{{\"error\":[],\"result\":{{{}}}}}",
            entries.join(",")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_again_as_written_and_found_by_either_name() {
        let body = r#"{"error":[],"result":{"XXBTZUSD":{"altname":"XBTUSD","wsname":"XBT/USD","pair_decimals":1},"ETHUSDT":{"altname":"ETHUSDT","wsname":"ETH/USDT","pair_decimals":2}}}"#;
        let pairs = AssetPairs::parse(body).unwrap();
        assert_eq!(pairs.write(None).unwrap(), body);
        assert_eq!(pairs.get("XBTUSD").unwrap().key, "XXBTZUSD");
        assert_eq!(pairs.get("XXBTZUSD").unwrap().altname, "XBTUSD");
        assert_eq!(
            pairs.write(Some(&["XBTUSD".into()])).unwrap(),
            r#"{"error":[],"result":{"XXBTZUSD":{"altname":"XBTUSD","wsname":"XBT/USD","pair_decimals":1}}}"#
        );
        assert_eq!(
            pairs.write(Some(&["NOPE".into()])),
            Err(UnknownPair("NOPE".into()))
        );
    }
}
