//! Kraken's lists — `GET /0/public/AssetPairs` and `GET /0/public/Assets` — kept as Kraken
//! wrote them, to be served again (the gateway): each entry's object verbatim under its key
//! (`XXBTZUSD`, `XXBT`), found by key or `altname` (`XBTUSD`, `XBT`).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::exchange_info::Fields;
use crate::kraken_trades::Decimals;
use crate::FetchError;

pub struct KrakenList {
    /// Key, altname and object of each entry, in Kraken's order.
    entries: Vec<Entry>,
    /// Key or altname → place in `entries`.
    by_name: HashMap<String, usize>,
}

pub struct Entry {
    /// Kraken's own name (`XXBTZUSD`, `XXBT`): what OHLC keys its result by.
    pub key: String,
    /// The other name (`XBTUSD`, `XBT`); a pair's candle endpoint is asked with it.
    pub altname: String,
    raw: Box<RawValue>,
}

impl Entry {
    /// How a pair writes its numbers (`pair_decimals`, `lot_decimals`); `None` for an
    /// entry without them (an asset, or a pair Kraken wrote without).
    pub fn decimals(&self) -> Option<Decimals> {
        #[derive(Deserialize)]
        struct Written {
            pair_decimals: u32,
            lot_decimals: u32,
        }
        let w: Written = serde_json::from_str(self.raw.get()).ok()?;
        // A decimal has at most 28 places.
        (w.pair_decimals <= 28 && w.lot_decimals <= 28).then_some(Decimals {
            price: w.pair_decimals,
            volume: w.lot_decimals,
        })
    }
}

/// A name asked for that the list does not hold.
#[derive(Debug, PartialEq, Eq)]
pub struct Unknown(pub String);

impl KrakenList {
    /// `what` names the list in errors (`AssetPairs`, `Assets`).
    pub fn parse(body: &str, what: &str) -> Result<KrakenList, FetchError> {
        let malformed = |e: serde_json::Error| FetchError::Malformed(format!("{what}: {e}"));
        #[derive(Deserialize)]
        struct Body {
            result: Fields,
        }
        #[derive(Deserialize)]
        struct Names {
            altname: String,
        }
        let body: Body = serde_json::from_str(body).map_err(malformed)?;
        let mut entries = Vec::with_capacity(body.result.0.len());
        let mut by_name = HashMap::new();
        for (key, raw) in body.result.0 {
            let names: Names = serde_json::from_str(raw.get()).map_err(malformed)?;
            by_name.insert(key.clone(), entries.len());
            by_name.insert(names.altname.clone(), entries.len());
            entries.push(Entry {
                key,
                altname: names.altname,
                raw,
            });
        }
        Ok(KrakenList { entries, by_name })
    }

    /// The entry Kraken knows by `name` (its key or altname).
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).map(|i| &self.entries[*i])
    }

    /// The body Kraken answers for `only` those entries (every one when `None`), each under
    /// its key, in the list's order.
    pub fn write(&self, only: Option<&[String]>) -> Result<String, Unknown> {
        let chosen: Vec<&Entry> = match only {
            None => self.entries.iter().collect(),
            Some(names) => {
                let mut at = Vec::with_capacity(names.len());
                for name in names {
                    at.push(
                        *self
                            .by_name
                            .get(name)
                            .ok_or_else(|| Unknown(name.clone()))?,
                    );
                }
                at.sort_unstable();
                at.dedup();
                at.into_iter().map(|i| &self.entries[i]).collect()
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
        let pairs = KrakenList::parse(body, "AssetPairs").unwrap();
        assert_eq!(pairs.write(None).unwrap(), body);
        assert_eq!(pairs.get("XBTUSD").unwrap().key, "XXBTZUSD");
        assert_eq!(pairs.get("XXBTZUSD").unwrap().altname, "XBTUSD");
        assert_eq!(
            pairs.write(Some(&["XBTUSD".into()])).unwrap(),
            r#"{"error":[],"result":{"XXBTZUSD":{"altname":"XBTUSD","wsname":"XBT/USD","pair_decimals":1}}}"#
        );
        assert_eq!(
            pairs.write(Some(&["NOPE".into()])),
            Err(Unknown("NOPE".into()))
        );
        // Without lot_decimals the pair's candles cannot be built from its trades.
        assert_eq!(pairs.get("XBTUSD").unwrap().decimals(), None);
        let full = r#"{"error":[],"result":{"XBTUSDT":{"altname":"XBTUSDT","pair_decimals":1,"lot_decimals":8}}}"#;
        let pairs = KrakenList::parse(full, "AssetPairs").unwrap();
        assert_eq!(
            pairs.get("XBTUSDT").unwrap().decimals(),
            Some(Decimals {
                price: 1,
                volume: 8
            })
        );
    }
}
