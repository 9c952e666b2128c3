//! Coinbase Exchange's lists — `GET /products` and `GET /currencies` — kept as Coinbase
//! wrote them, to be served again (the gateway): the whole list, or one object by its `id`.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::FetchError;

pub struct CoinbaseList {
    body: String,
    objects: Vec<Box<RawValue>>,
    by_id: HashMap<String, usize>,
}

impl CoinbaseList {
    /// `what` names the list in errors (`products`, `currencies`).
    pub fn parse(body: &str, what: &str) -> Result<CoinbaseList, FetchError> {
        let malformed = |e: serde_json::Error| FetchError::Malformed(format!("{what}: {e}"));
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        let objects: Vec<Box<RawValue>> = serde_json::from_str(body).map_err(malformed)?;
        let mut by_id = HashMap::with_capacity(objects.len());
        for (i, o) in objects.iter().enumerate() {
            let id: Id = serde_json::from_str(o.get()).map_err(malformed)?;
            by_id.insert(id.id, i);
        }
        Ok(CoinbaseList {
            body: body.to_string(),
            objects,
            by_id,
        })
    }

    /// The list as Coinbase wrote it.
    pub fn all(&self) -> &str {
        &self.body
    }

    /// One object as Coinbase wrote it.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.by_id.get(id).map(|i| self.objects[*i].get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_and_each_product_as_written() {
        let body = r#"[{"id":"BTC-USD","base_currency":"BTC","quote_currency":"USD","quote_increment":"0.01000000"},{"id":"ETH-EUR","base_currency":"ETH","quote_currency":"EUR"}]"#;
        let p = CoinbaseList::parse(body, "products").unwrap();
        assert_eq!(p.all(), body);
        assert_eq!(
            p.get("BTC-USD"),
            Some(
                r#"{"id":"BTC-USD","base_currency":"BTC","quote_currency":"USD","quote_increment":"0.01000000"}"#
            )
        );
        assert_eq!(p.get("NOPE-USD"), None);
    }
}
