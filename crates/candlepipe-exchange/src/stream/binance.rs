//! Binance combined kline streams (`/stream`, `<symbol>@kline_<interval>`): SUBSCRIBE and
//! UNSUBSCRIBE by id, `{"stream":…,"data":{"e":"kline",…,"k":{…}}}` updates whose `x` says
//! the candle is final, and `serverShutdown`. Decimals are strings whose scale varies
//! between messages: parsed exactly. Key order is never relied on.

use candlepipe_core::{Candle, Interval};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Event, Topic};
use crate::parse::decimal;
use crate::FetchError;

/// Streams named in one SUBSCRIBE.
pub const TOPICS_PER_MESSAGE: usize = 200;
/// Binance's limit of streams a connection.
pub const TOPICS_PER_CONNECTION: usize = 1024;

pub fn stream_name(topic: &Topic) -> String {
    format!(
        "{}@kline_{}",
        topic.native.to_ascii_lowercase(),
        topic.interval
    )
}

pub fn request(topics: &[Topic], subscribe: bool, id: u64) -> String {
    let params: Vec<String> = topics.iter().map(stream_name).collect();
    serde_json::json!({
        "method": if subscribe { "SUBSCRIBE" } else { "UNSUBSCRIBE" },
        "params": params,
        "id": id,
    })
    .to_string()
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    result: Option<serde_json::Value>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    e: Option<String>,
}

#[derive(Deserialize)]
struct Data<'a> {
    e: String,
    #[serde(rename = "E", default)]
    event_ms: Option<i64>,
    #[serde(borrow, default)]
    k: Option<Kline<'a>>,
}

#[derive(Deserialize)]
struct Kline<'a> {
    t: i64,
    s: String,
    i: String,
    #[serde(borrow)]
    o: &'a RawValue,
    #[serde(borrow)]
    h: &'a RawValue,
    #[serde(borrow)]
    l: &'a RawValue,
    #[serde(borrow)]
    c: &'a RawValue,
    #[serde(borrow)]
    v: &'a RawValue,
    /// Quote volume, trades, taker-buy base and quote volumes (as REST's row has them).
    #[serde(borrow, default, rename = "q")]
    quote: Option<&'a RawValue>,
    #[serde(default)]
    n: Option<u64>,
    #[serde(borrow, default, rename = "V")]
    taker_base: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "Q")]
    taker_quote: Option<&'a RawValue>,
    x: bool,
}

pub fn parse(text: &str) -> Result<Vec<Event>, FetchError> {
    let m: Message = serde_json::from_str(text)
        .map_err(|e| FetchError::Malformed(format!("binance stream message: {e}")))?;
    // A raw stream sends the data itself; a combined one wraps it.
    let data = match (m.data, &m.e) {
        (Some(d), _) => Some(d.get()),
        (None, Some(_)) => Some(text),
        (None, None) => None,
    };
    if let Some(data) = data {
        let d: Data = serde_json::from_str(data)
            .map_err(|e| FetchError::Malformed(format!("binance stream data: {e}")))?;
        return Ok(vec![match (d.e.as_str(), d.k) {
            ("kline", Some(k)) => {
                let interval = Interval::parse(&k.i).map_err(|e| {
                    FetchError::Malformed(format!("binance kline interval: {}", e.message))
                })?;
                Event::Candle {
                    topic: Topic {
                        native: k.s,
                        interval,
                    },
                    candle: Candle {
                        t: k.t,
                        o: decimal(k.o)?,
                        h: decimal(k.h)?,
                        l: decimal(k.l)?,
                        c: decimal(k.c)?,
                        v: decimal(k.v)?,
                        quote_volume: k.quote.map(decimal).transpose()?,
                        trades: k.n,
                        taker_buy_base: k.taker_base.map(decimal).transpose()?,
                        taker_buy_quote: k.taker_quote.map(decimal).transpose()?,
                        vwap: None,
                        built_from: None,
                        closed: k.x,
                        synthetic: false,
                    },
                    event_ms: d.event_ms,
                }
            }
            ("serverShutdown", _) => Event::Shutdown,
            _ => Event::Other,
        }]);
    }
    if m.code.is_some() || m.error.is_some() {
        let message = m
            .msg
            .or_else(|| m.error.map(|e| e.to_string()))
            .unwrap_or_else(|| "refused".into());
        return Ok(vec![Event::Refused {
            id: m.id,
            native: None,
            message,
        }]);
    }
    match m.id {
        // `{"result":null,"id":1}`: a SUBSCRIBE/UNSUBSCRIBE done (`result` holds a value
        // only for property requests).
        Some(id) if m.result.is_none_or(|r| r.is_null()) => {
            Ok(vec![Event::Ack { id, native: None }])
        }
        _ => Ok(vec![Event::Other]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kline_updates_keep_their_digits_and_only_x_closes() {
        let text = r#"{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1653818762502,"s":"BTCUSDT","k":{"t":1653818760000,"T":1653818819999,"s":"BTCUSDT","i":"1m","f":1,"L":2,"o":"29038.46000000","c":"29038.47","h":"29038.4700","l":"29038.46000000","v":"0.20926000","n":31,"x":false,"q":"1","V":"0","Q":"0","B":"0"}}}"#;
        match &parse(text).unwrap()[0] {
            Event::Candle {
                topic,
                candle,
                event_ms,
            } => {
                assert_eq!(topic.native, "BTCUSDT");
                assert_eq!(topic.interval, Interval::M1);
                assert_eq!(candle.t, 1653818760000);
                assert_eq!(candle.o.to_string(), "29038.46000000");
                assert_eq!(candle.c.to_string(), "29038.47");
                assert_eq!(candle.h.to_string(), "29038.4700");
                assert!(!candle.closed);
                assert_eq!(*event_ms, Some(1653818762502));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn acks_refusals_and_shutdown() {
        assert_eq!(
            parse(r#"{"id":7,"result":null}"#).unwrap(),
            vec![Event::Ack {
                id: 7,
                native: None
            }]
        );
        assert!(matches!(
            parse(r#"{"code":2,"msg":"Invalid request","id":3}"#).unwrap()[0],
            Event::Refused { id: Some(3), .. }
        ));
        assert_eq!(
            parse(r#"{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}"#).unwrap(),
            vec![Event::Shutdown]
        );
        assert!(parse("not json").is_err());
    }

    #[test]
    fn requests_name_lower_case_streams() {
        let t = Topic {
            native: "BTCUSDT".into(),
            interval: Interval::M5,
        };
        let r: serde_json::Value = serde_json::from_str(&request(&[t], true, 4)).unwrap();
        assert_eq!(
            r,
            serde_json::json!({"method":"SUBSCRIBE","params":["btcusdt@kline_5m"],"id":4})
        );
    }
}
