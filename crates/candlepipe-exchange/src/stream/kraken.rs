//! Kraken WebSocket v2 `ohlc` channel (`wss://ws.kraken.com/v2`): one subscribe per
//! interval, acknowledged by `req_id`; a snapshot of recent candles, then updates keyed by
//! `interval_begin` (RFC 3339, 9 fractional digits). Prices are JSON numbers whose text is
//! kept exactly. Nothing says a candle closed: it has when a later `interval_begin` of its
//! series arrives. `{"channel":"heartbeat"}` comes about every second while nothing else is sent. Each
//! symbol of a subscribe is acknowledged or refused on its own (`result.symbol`, `symbol`).

use std::collections::BTreeMap;

use candlepipe_core::{Candle, Interval, Millis};
use serde::Deserialize;
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Event, Request, Topic};
use crate::parse::decimal;
use crate::FetchError;

/// Symbols named in one subscribe.
pub const TOPICS_PER_MESSAGE: usize = 100;
/// Subscriptions kept on one connection.
pub const TOPICS_PER_CONNECTION: usize = 500;

/// The subscribe (or unsubscribe) messages for `topics`: one per interval and per
/// [`TOPICS_PER_MESSAGE`] symbols, ids from `first_id` up.
pub fn requests(topics: &[Topic], subscribe: bool, first_id: u64) -> Vec<Request> {
    let mut by_interval: BTreeMap<Interval, Vec<&Topic>> = BTreeMap::new();
    for t in topics {
        by_interval.entry(t.interval).or_default().push(t);
    }
    let mut out = Vec::new();
    for (iv, in_interval) in by_interval {
        for chunk in in_interval.chunks(TOPICS_PER_MESSAGE) {
            let symbols: Vec<&str> = chunk.iter().map(|t| t.native.as_str()).collect();
            let id = first_id + out.len() as u64;
            let mut params = serde_json::json!({
                "channel": "ohlc",
                "symbol": symbols,
                "interval": iv.minutes(),
            });
            if subscribe {
                params["snapshot"] = serde_json::json!(true);
            }
            let text = serde_json::json!({
                "method": if subscribe { "subscribe" } else { "unsubscribe" },
                "params": params,
                "req_id": id,
            })
            .to_string();
            out.push(Request {
                id,
                text,
                topics: chunk.iter().map(|t| (*t).clone()).collect(),
            });
        }
    }
    out
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    req_id: Option<u64>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    /// The symbol a refusal is for (each symbol of a request is answered on its own).
    #[serde(default)]
    symbol: Option<String>,
    /// An acknowledgement's subject: `{"channel","symbol",…}`.
    #[serde(default)]
    result: Option<Answered>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Answered {
    #[serde(default)]
    symbol: Option<String>,
}

#[derive(Deserialize)]
struct Row<'a> {
    symbol: String,
    #[serde(borrow)]
    open: &'a RawValue,
    #[serde(borrow)]
    high: &'a RawValue,
    #[serde(borrow)]
    low: &'a RawValue,
    #[serde(borrow)]
    close: &'a RawValue,
    #[serde(borrow)]
    volume: &'a RawValue,
    #[serde(borrow, default)]
    vwap: Option<&'a RawValue>,
    #[serde(default)]
    trades: Option<u64>,
    interval_begin: String,
    interval: i64,
}

fn millis(rfc3339: &str) -> Option<Millis> {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as Millis)
}

pub fn parse(text: &str) -> Result<Vec<Event>, FetchError> {
    let m: Message = serde_json::from_str(text)
        .map_err(|e| FetchError::Malformed(format!("kraken stream message: {e}")))?;
    if let Some(method) = &m.method {
        if method == "subscribe" || method == "unsubscribe" {
            return Ok(vec![match m.success {
                Some(true) => Event::Ack {
                    id: m.req_id.unwrap_or(0),
                    native: m.result.and_then(|r| r.symbol),
                },
                _ => Event::Refused {
                    id: m.req_id,
                    native: m.symbol,
                    message: m.error.unwrap_or_else(|| format!("{method} refused")),
                },
            }]);
        }
        return Ok(vec![Event::Other]);
    }
    match m.channel.as_deref() {
        Some("heartbeat") => Ok(vec![Event::Heartbeat]),
        Some("ohlc") => {
            let event_ms = m.timestamp.as_deref().and_then(millis);
            let rows: Vec<Row> = match m.data {
                Some(raw) => serde_json::from_str(raw.get())
                    .map_err(|e| FetchError::Malformed(format!("kraken ohlc rows: {e}")))?,
                None => Vec::new(),
            };
            rows.into_iter()
                .map(|row| {
                    let interval = Interval::ALL
                        .into_iter()
                        .find(|i| i.minutes() == row.interval)
                        .ok_or_else(|| {
                            FetchError::Malformed(format!("kraken ohlc interval {}", row.interval))
                        })?;
                    let t = millis(&row.interval_begin).ok_or_else(|| {
                        FetchError::Malformed(format!(
                            "kraken interval_begin {}",
                            row.interval_begin
                        ))
                    })?;
                    Ok(Event::Candle {
                        topic: Topic {
                            native: row.symbol,
                            interval,
                        },
                        candle: Candle {
                            t,
                            o: decimal(row.open)?,
                            h: decimal(row.high)?,
                            l: decimal(row.low)?,
                            c: decimal(row.close)?,
                            v: decimal(row.volume)?,
                            vwap: row.vwap.map(decimal).transpose()?,
                            trades: row.trades,
                            closed: false,
                            synthetic: false,
                            ..Default::default()
                        },
                        event_ms,
                    })
                })
                .collect()
        }
        _ => Ok(vec![Event::Other]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ohlc_rows_keep_the_number_text_and_key_by_interval_begin() {
        let text = r#"{"channel":"ohlc","type":"snapshot","timestamp":"2024-05-17T11:21:16.318303322Z","data":[{"symbol":"ETH/USD","open":3027.80,"high":3027.80,"low":3026.13,"close":3026.13,"trades":9,"volume":13.31603062,"vwap":3027.01,"interval_begin":"2024-05-17T11:12:00.000000000Z","interval":1,"timestamp":"2024-05-17T11:13:00.000000Z"}]}"#;
        match &parse(text).unwrap()[0] {
            Event::Candle {
                topic,
                candle,
                event_ms,
            } => {
                assert_eq!(topic.native, "ETH/USD");
                assert_eq!(candle.t, 1715944320000);
                assert_eq!(candle.o.to_string(), "3027.80");
                assert_eq!(candle.v.to_string(), "13.31603062");
                assert_eq!(
                    candle.vwap.map(|d| d.to_string()).as_deref(),
                    Some("3027.01")
                );
                assert_eq!(candle.trades, Some(9));
                assert!(!candle.closed);
                assert_eq!(*event_ms, Some(1715944876318));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn acks_heartbeats_and_requests() {
        assert_eq!(
            parse(
                r#"{"method":"subscribe","req_id":121,"result":{"channel":"ohlc"},"success":true}"#
            )
            .unwrap(),
            vec![Event::Ack {
                id: 121,
                native: None
            }]
        );
        assert_eq!(
            parse(r#"{"method":"subscribe","req_id":4,"result":{"channel":"ohlc","interval":5,"snapshot":true,"symbol":"ALGO/USD","warnings":["timestamp is deprecated, use interval_begin"]},"success":true,"time_in":"2023-10-04T16:26:01.802708Z","time_out":"2023-10-04T16:26:01.802791Z"}"#).unwrap(),
            vec![Event::Ack {
                id: 4,
                native: Some("ALGO/USD".into())
            }]
        );
        assert_eq!(
            parse(r#"{"error":"Currency pair not supported XBT/USD","method":"subscribe","req_id":2,"success":false,"symbol":"XBT/USD","time_in":"2018-11-12T21:14:59.545897Z","time_out":"2018-11-12T21:14:59.545901Z"}"#).unwrap(),
            vec![Event::Refused {
                id: Some(2),
                native: Some("XBT/USD".into()),
                message: "Currency pair not supported XBT/USD".into()
            }]
        );
        assert_eq!(
            parse(r#"{"channel":"heartbeat"}"#).unwrap(),
            vec![Event::Heartbeat]
        );
        assert_eq!(
            parse(r#"{"channel":"status","data":[{"api_version":"v2","connection_id":12393906104898154338,"system":"online","version":"2.0.4"}],"type":"update"}"#).unwrap(),
            vec![Event::Other]
        );
        let topics = [
            Topic {
                native: "BTC/USD".into(),
                interval: Interval::M1,
            },
            Topic {
                native: "ETH/USD".into(),
                interval: Interval::M5,
            },
            Topic {
                native: "XRP/USD".into(),
                interval: Interval::M1,
            },
        ];
        let reqs = requests(&topics, true, 10);
        assert_eq!(reqs.len(), 2);
        let first: serde_json::Value = serde_json::from_str(&reqs[0].text).unwrap();
        assert_eq!(reqs[0].topics.len(), 2);
        assert_eq!(
            first["params"]["symbol"],
            serde_json::json!(["BTC/USD", "XRP/USD"])
        );
        assert_eq!(first["params"]["interval"], 1);
        assert_eq!(first["req_id"], 10);
        assert_eq!(reqs[1].id, 11);
    }
}
