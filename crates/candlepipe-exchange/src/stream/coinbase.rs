//! Coinbase Exchange feed (`wss://ws-feed.exchange.coinbase.com`): it has no candles
//! channel, so candles are built from the `matches` channel's trades. A subscribe names
//! products and channels and is acknowledged by a `subscriptions` message listing *all*
//! channels subscribed so far, in any order, with no id. Each product then gets one
//! `last_match` (its last trade before the subscription, possibly minutes old), then a
//! `match` per trade. `trade_id` is contiguous per product, so a jump means lost trades;
//! `sequence` counts the product's whole feed and skips on `matches` alone. The
//! `heartbeat` channel says each product's `last_trade_id` every second (0 on some
//! recordings: only a non-zero one counts). Prices and sizes are strings, parsed exactly;
//! which side took the trade (`side` is the maker's) does not matter to a candle.

use std::collections::BTreeSet;

use candlepipe_core::Millis;
use serde::Deserialize;
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Event, Request, Topic};
use crate::parse::decimal;
use crate::FetchError;

/// Products named in one subscribe.
pub const PRODUCTS_PER_MESSAGE: usize = 100;
/// Series kept on one connection.
pub const TOPICS_PER_CONNECTION: usize = 500;

/// The subscribe (or unsubscribe) messages for the products of `topics`, to `matches` and
/// `heartbeat`: ids are ours (Coinbase's acks carry none), from `first_id` up.
pub fn requests(topics: &[Topic], subscribe: bool, first_id: u64) -> Vec<Request> {
    let products: Vec<&str> = topics
        .iter()
        .map(|t| t.native.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    products
        .chunks(PRODUCTS_PER_MESSAGE)
        .enumerate()
        .map(|(i, chunk)| Request {
            id: first_id + i as u64,
            text: serde_json::json!({
                "type": if subscribe { "subscribe" } else { "unsubscribe" },
                "product_ids": chunk,
                "channels": ["matches", "heartbeat"],
            })
            .to_string(),
            topics: topics
                .iter()
                .filter(|t| chunk.contains(&t.native.as_str()))
                .cloned()
                .collect(),
        })
        .collect()
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    product_id: Option<String>,
    #[serde(default)]
    trade_id: Option<u64>,
    #[serde(default)]
    last_trade_id: Option<u64>,
    #[serde(borrow, default)]
    price: Option<&'a RawValue>,
    #[serde(borrow, default)]
    size: Option<&'a RawValue>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    channels: Option<Vec<Channel>>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct Channel {
    name: String,
    #[serde(default)]
    product_ids: Vec<String>,
}

fn millis(rfc3339: &str) -> Result<Millis, FetchError> {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as Millis)
        .map_err(|_| FetchError::Malformed(format!("coinbase time {rfc3339}")))
}

fn need<T>(v: Option<T>, what: &str) -> Result<T, FetchError> {
    v.ok_or_else(|| FetchError::Malformed(format!("coinbase message without {what}")))
}

pub fn parse(text: &str) -> Result<Vec<Event>, FetchError> {
    let m: Message = serde_json::from_str(text)
        .map_err(|e| FetchError::Malformed(format!("coinbase feed message: {e}")))?;
    let event = match m.kind.as_str() {
        "match" => Event::Trade {
            native: need(m.product_id, "product_id")?,
            id: need(m.trade_id, "trade_id")?,
            t: millis(&need(m.time, "time")?)?,
            price: decimal(need(m.price, "price")?)?,
            size: decimal(need(m.size, "size")?)?,
        },
        "last_match" => Event::LastTrade {
            native: need(m.product_id, "product_id")?,
            id: need(m.trade_id, "trade_id")?,
        },
        "heartbeat" => Event::Alive {
            native: need(m.product_id, "product_id")?,
            last_trade_id: m.last_trade_id.filter(|id| *id > 0),
        },
        "subscriptions" => Event::Subscribed {
            natives: m
                .channels
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.name == "matches")
                .map(|c| c.product_ids)
                .unwrap_or_default(),
        },
        "error" => Event::Refused {
            id: None,
            native: None,
            message: [m.message, m.reason]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": "),
        },
        _ => Event::Other,
    };
    Ok(vec![event])
}

#[cfg(test)]
mod tests {
    use super::*;
    use candlepipe_core::Interval;

    #[test]
    fn matches_heartbeats_and_acks() {
        let m = r#"{"type":"match","trade_id":298130,"maker_order_id":"48e3e5b7","taker_order_id":"3e5b4921","side":"sell","size":"0.22815391","price":"90.34000000","product_id":"ZEC-USDC","sequence":127066231,"time":"2019-06-01T00:00:10.382000Z"}"#;
        match &parse(m).unwrap()[0] {
            Event::Trade {
                native,
                id,
                t,
                price,
                size,
            } => {
                assert_eq!(native, "ZEC-USDC");
                assert_eq!(*id, 298130);
                assert_eq!(*t, 1559347210382);
                assert_eq!(price.to_string(), "90.34000000");
                assert_eq!(size.to_string(), "0.22815391");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(r#"{"type":"heartbeat","last_trade_id":0,"product_id":"BTC-USD","sequence":14011426656,"time":"2020-05-12T05:20:06.782635Z"}"#).unwrap(),
            vec![Event::Alive { native: "BTC-USD".into(), last_trade_id: None }]
        );
        let ack = r#"{"type":"subscriptions","channels":[{"name":"heartbeat","product_ids":["ETH-USD"]},{"name":"matches","product_ids":["ETH-USD","BTC-USD"]}]}"#;
        assert_eq!(
            parse(ack).unwrap(),
            vec![Event::Subscribed {
                natives: vec!["ETH-USD".into(), "BTC-USD".into()]
            }]
        );
        assert!(matches!(
            &parse(r#"{"type":"error","message":"Failed to subscribe","reason":"XYZ-USD is not a valid product"}"#).unwrap()[0],
            Event::Refused { id: None, native: None, message } if message.contains("XYZ-USD")
        ));
    }

    #[test]
    fn one_subscribe_per_product_set_with_both_channels() {
        let topic = |native: &str, interval| Topic {
            native: native.into(),
            interval,
        };
        let topics = [
            topic("BTC-USD", Interval::M1),
            topic("BTC-USD", Interval::M5),
            topic("ETH-USD", Interval::M1),
        ];
        let reqs = requests(&topics, true, 7);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].id, 7);
        assert_eq!(reqs[0].topics.len(), 3);
        let v: serde_json::Value = serde_json::from_str(&reqs[0].text).unwrap();
        assert_eq!(v["product_ids"], serde_json::json!(["BTC-USD", "ETH-USD"]));
        assert_eq!(v["channels"], serde_json::json!(["matches", "heartbeat"]));
        assert_eq!(v["type"], "subscribe");
    }
}
