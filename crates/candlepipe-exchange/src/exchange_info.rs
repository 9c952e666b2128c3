//! Binance's `GET /api/v3/exchangeInfo` kept as Binance wrote it, to be served again (the
//! gateway): the top-level fields in their order and each symbol's object verbatim, found
//! by its id. Only `serverTime` is written anew.

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::FetchError;

pub struct ExchangeInfo {
    /// Every top-level field but `symbols`, in Binance's order.
    head: Vec<(String, Box<RawValue>)>,
    /// Each symbol's object, in Binance's order.
    symbols: Vec<Box<RawValue>>,
    /// Symbol id → its place in `symbols`.
    by_id: HashMap<String, usize>,
}

/// A symbol asked for that the list does not hold.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownSymbol(pub String);

/// A JSON object's fields in the order written, values untouched.
pub(crate) struct Fields(pub(crate) Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push(entry);
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl ExchangeInfo {
    pub fn parse(body: &str) -> Result<ExchangeInfo, FetchError> {
        let malformed = |e: serde_json::Error| FetchError::Malformed(format!("exchangeInfo: {e}"));
        let Fields(top) = serde_json::from_str(body).map_err(malformed)?;
        let (mut head, mut symbols): (_, Vec<Box<RawValue>>) = (Vec::new(), Vec::new());
        for (k, v) in top {
            match k.as_str() {
                "symbols" => symbols = serde_json::from_str(v.get()).map_err(malformed)?,
                _ => head.push((k, v)),
            }
        }
        #[derive(serde::Deserialize)]
        struct Id {
            symbol: String,
        }
        let mut by_id = HashMap::with_capacity(symbols.len());
        for (i, s) in symbols.iter().enumerate() {
            let id: Id = serde_json::from_str(s.get()).map_err(malformed)?;
            by_id.insert(id.symbol, i);
        }
        Ok(ExchangeInfo {
            head,
            symbols,
            by_id,
        })
    }

    /// The body Binance answers at `server_time` for `only` those symbols (every one when
    /// `None`), in the list's order; a symbol it does not hold is an error.
    pub fn write(
        &self,
        server_time: i64,
        only: Option<&[String]>,
    ) -> Result<String, UnknownSymbol> {
        let chosen: Vec<&RawValue> = match only {
            None => self.symbols.iter().map(|s| &**s).collect(),
            Some(ids) => {
                let mut at = Vec::with_capacity(ids.len());
                for id in ids {
                    let i = self
                        .by_id
                        .get(id)
                        .ok_or_else(|| UnknownSymbol(id.clone()))?;
                    at.push(*i);
                }
                at.sort_unstable();
                at.dedup();
                at.into_iter().map(|i| &*self.symbols[i]).collect()
            }
        };
        let mut out =
            String::with_capacity(512 + chosen.iter().map(|s| s.get().len() + 1).sum::<usize>());
        out.push('{');
        let mut first = true;
        let mut field = |out: &mut String, key: &str, value: &str| {
            if !std::mem::take(&mut first) {
                out.push(',');
            }
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
            out.push_str(value);
        };
        for (k, v) in &self.head {
            match k.as_str() {
                "serverTime" => field(&mut out, k, &server_time.to_string()),
                _ => field(&mut out, k, v.get()),
            }
        }
        let list: Vec<&str> = chosen.iter().map(|s| s.get()).collect();
        field(&mut out, "symbols", &format!("[{}]", list.join(",")));
        out.push('}');
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"timezone":"UTC","serverTime":1764000000000,"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000}],"exchangeFilters":[],"symbols":[{"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH","filters":[{"filterType":"PRICE_FILTER","minPrice":"0.00001000"}]},{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","filters":[]}]}"#;

    #[test]
    fn served_again_as_written_but_for_the_time() {
        let info = ExchangeInfo::parse(BODY).unwrap();
        assert_eq!(info.len(), 2);
        assert_eq!(
            info.write(1764000000000, None).unwrap(),
            BODY,
            "the same bytes at the same time"
        );
        let one = info.write(1, Some(&["BTCUSDT".to_string()])).unwrap();
        assert_eq!(
            one,
            r#"{"timezone":"UTC","serverTime":1,"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000}],"exchangeFilters":[],"symbols":[{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","filters":[]}]}"#
        );
        assert_eq!(
            info.write(1, Some(&["NOPE".to_string()])),
            Err(UnknownSymbol("NOPE".into()))
        );
    }
}
