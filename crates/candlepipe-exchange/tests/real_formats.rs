//! Real responses recorded by third parties (`../shared/real-formats`, see its MANIFEST.json;
//! never copied into this repository) parse into exactly the candles they hold: every row,
//! ascending, each decimal with the very digits the exchange sent, and Kraken's rows after
//! `last` open.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use candlepipe_core::Candle;
use candlepipe_exchange::{binance, coinbase, kraken};
use serde_json::value::RawValue;
use serde_json::Value;

/// Where the recordings are: `CANDLEPIPE_REAL_FORMATS`, or `shared/real-formats` next to
/// the checkout.
fn recordings() -> Option<PathBuf> {
    let dir = std::env::var_os("CANDLEPIPE_REAL_FORMATS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/real-formats")
        });
    dir.join("MANIFEST.json").exists().then_some(dir)
}

/// The text of each raw token of each row.
fn raw_rows(rows: &str) -> Vec<Vec<String>> {
    let rows: Vec<Vec<&RawValue>> = serde_json::from_str(rows).unwrap();
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|v| v.get().trim_matches('"').to_string())
                .collect()
        })
        .collect()
}

fn texts(c: &Candle) -> [String; 5] {
    [c.o, c.h, c.l, c.c, c.v].map(|d| d.to_string())
}

/// The text of the extra fields a candle kept: quote volume, trades, taker-buy base and
/// quote, vwap (those it has, in that order).
fn extra_texts(c: &Candle) -> Vec<String> {
    let d = |d: Option<rust_decimal::Decimal>| d.map(|d| d.to_string());
    [
        d(c.quote_volume),
        c.trades.map(|n| n.to_string()),
        d(c.taker_buy_base),
        d(c.taker_buy_quote),
        d(c.vwap),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Candles, the raw rows, where OHLCV sit in a row, where the extra fields sit.
type Parsed = (Vec<Candle>, Vec<Vec<String>>, [usize; 5], &'static [usize]);

#[test]
fn every_recorded_response_parses_exactly() {
    let Some(dir) = recordings() else {
        eprintln!("no real-formats recordings next to the checkout; set CANDLEPIPE_REAL_FORMATS");
        return;
    };
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("MANIFEST.json")).unwrap()).unwrap();
    let mut seen = 0;
    for rec in manifest["recordings"].as_array().unwrap() {
        let file = rec["file"].as_str().unwrap();
        let body = std::fs::read(dir.join(file)).unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        let (candles, rows, fields, extras): Parsed = match rec["exchange"].as_str().unwrap() {
            "binance" => (
                binance::parse(&body, i64::MAX).unwrap(),
                raw_rows(&text),
                [1, 2, 3, 4, 5],
                &[7, 8, 9, 10],
            ),
            "coinbase" => {
                let mut rows = raw_rows(&text);
                rows.reverse(); // newest first on the wire
                (
                    coinbase::parse(&body, i64::MAX).unwrap(),
                    rows,
                    [3, 2, 1, 4, 5],
                    &[],
                )
            }
            "kraken" => {
                let v: Value = serde_json::from_str(&text).unwrap();
                let result = v["result"].as_object().unwrap();
                let (_, rows) = result.iter().find(|(k, _)| *k != "last").unwrap();
                let rows = raw_rows(&rows.to_string());
                let candles = kraken::parse(&body, i64::MAX).unwrap();
                let last = match &result["last"] {
                    Value::String(s) => s.parse::<i64>().unwrap(),
                    other => other.as_i64().unwrap(),
                } * 1000;
                for c in &candles {
                    assert_eq!(c.closed, c.t <= last, "{file}: row {} vs last {last}", c.t);
                }
                assert!(
                    !candles.last().unwrap().closed,
                    "{file}: the last row is open"
                );
                (candles, rows, [1, 2, 3, 4, 6], &[7, 5])
            }
            other => panic!("{file}: exchange {other}"),
        };
        assert_eq!(candles.len(), rows.len(), "{file}");
        assert!(
            candles.windows(2).all(|w| w[0].t < w[1].t),
            "{file}: ascending"
        );
        for (c, row) in candles.iter().zip(&rows) {
            let want = fields.map(|i| row[i].clone());
            assert_eq!(texts(c), want, "{file} at {}", c.t);
            let want: Vec<String> = extras.iter().map(|i| row[*i].clone()).collect();
            assert_eq!(extra_texts(c), want, "{file} at {}: every field kept", c.t);
        }
        seen += 1;
    }
    assert!(seen >= 13, "{seen} recordings");
}

/// The messages of a recording: one object, or an array of them in arrival order.
fn messages(text: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(text).unwrap();
    match v {
        Value::Array(_) => {
            let raw: Vec<&RawValue> = serde_json::from_str(text).unwrap();
            raw.iter().map(|m| m.get().to_string()).collect()
        }
        _ => vec![text.to_string()],
    }
}

/// The exact text of `field` in a JSON object's raw text.
fn raw_field(object: &str, field: &str) -> String {
    try_raw_field(object, field).unwrap_or_else(|| panic!("no {field} in {object}"))
}

fn try_raw_field(object: &str, field: &str) -> Option<String> {
    let m: std::collections::HashMap<String, &RawValue> = serde_json::from_str(object).unwrap();
    m.get(field).map(|v| v.get().trim_matches('"').to_string())
}

#[test]
fn every_recorded_stream_message_parses_exactly() {
    use candlepipe_core::Exchange;
    use candlepipe_exchange::stream::{self, Event};
    let Some(dir) = recordings() else {
        eprintln!("no real-formats recordings next to the checkout; set CANDLEPIPE_REAL_FORMATS");
        return;
    };
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("MANIFEST.json")).unwrap()).unwrap();
    let (mut candles, mut closes, mut others) = (0, 0, 0);
    for rec in manifest["ws_recordings"].as_array().unwrap() {
        let file = rec["file"].as_str().unwrap();
        let kind = rec["kind"].as_str().unwrap_or_default();
        let ex = match rec["exchange"].as_str().unwrap() {
            e if e.starts_with("binance") => Exchange::Binance,
            "kraken" => Exchange::Kraken,
            _ => continue,
        };
        if kind.contains("client->server") {
            continue;
        }
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for message in messages(&text) {
            let events =
                stream::parse(ex, &message).unwrap_or_else(|e| panic!("{file}: {e}: {message}"));
            for event in events {
                match event {
                    Event::Candle { candle, topic, .. } => {
                        candles += 1;
                        let raw: Vec<String> = match ex {
                            Exchange::Binance => {
                                let data = try_raw_field(&message, "data")
                                    .unwrap_or_else(|| message.clone());
                                let k = raw_field(&data, "k");
                                assert_eq!(raw_field(&k, "s"), topic.native, "{file}");
                                assert_eq!(candle.closed, raw_field(&k, "x") == "true", "{file}");
                                closes += usize::from(candle.closed);
                                let extras: Vec<String> = ["q", "n", "V", "Q"]
                                    .iter()
                                    .filter_map(|f| try_raw_field(&k, f))
                                    .collect();
                                assert_eq!(extra_texts(&candle), extras, "{file}");
                                ["o", "h", "l", "c", "v"].map(|f| raw_field(&k, f)).to_vec()
                            }
                            _ => {
                                let v: Value = serde_json::from_str(&message).unwrap();
                                let data = raw_field(&message, "data");
                                let rows: Vec<&RawValue> = serde_json::from_str(&data).unwrap();
                                let row = rows
                                    .iter()
                                    .find(|r| {
                                        let begin = raw_field(r.get(), "interval_begin");
                                        time::OffsetDateTime::parse(
                                            &begin,
                                            &time::format_description::well_known::Rfc3339,
                                        )
                                        .unwrap()
                                        .unix_timestamp()
                                            * 1000
                                            == candle.t
                                            && raw_field(r.get(), "symbol") == topic.native
                                    })
                                    .unwrap_or_else(|| panic!("{file}: row {} in {v}", candle.t));
                                let extras: Vec<String> = ["trades", "vwap"]
                                    .iter()
                                    .filter_map(|f| try_raw_field(row.get(), f))
                                    .collect();
                                assert_eq!(extra_texts(&candle), extras, "{file}");
                                ["open", "high", "low", "close", "volume"]
                                    .map(|f| raw_field(row.get(), f))
                                    .to_vec()
                            }
                        };
                        assert_eq!(texts(&candle).to_vec(), raw, "{file} at {}", candle.t);
                    }
                    _ => others += 1,
                }
            }
        }
    }
    assert!(
        candles >= 90 && closes >= 3 && others >= 8,
        "{candles} {closes} {others}"
    );
}

/// Kraken's recorded trades page of XBTUSDT overlaps its recorded 1m OHLC page: for every
/// whole minute inside the trades' range, the candle built from the trades is the OHLC row
/// exactly, as Kraken wrote it (272 minutes with trades, 137 without).
#[test]
fn krakens_recorded_trades_make_its_recorded_ohlc_rows() {
    use candlepipe_exchange::kraken_list::KrakenList;
    use candlepipe_exchange::kraken_trades::{self, Decimals};
    let Some(dir) = recordings() else {
        eprintln!("no recordings: skipped");
        return;
    };
    let read = |f: &str| std::fs::read(dir.join("kraken").join(f)).unwrap();
    let page = kraken_trades::parse(&read("nautilus-XBTUSDT-trades-1000.json")).unwrap();
    assert_eq!(page.trades.len(), 1000);
    assert_eq!(page.next_since, "1762820035982277754");
    let ohlc = read("nautilus-XBTUSDT-1m-721rows.json");
    let recorded = kraken::parse(&ohlc, i64::MAX).unwrap();
    let pairs = String::from_utf8(read("asset-pairs-4pairs.json")).unwrap();
    let pairs = KrakenList::parse(&pairs, "AssetPairs").unwrap();
    let pair: Value =
        serde_json::from_str(pairs.write(Some(&["XBTUSDT".into()])).unwrap().as_str()).unwrap();
    let entry = &pair["result"]["XBTUSDT"];
    let d = Decimals {
        price: entry["pair_decimals"].as_u64().unwrap() as u32,
        volume: entry["lot_decimals"].as_u64().unwrap() as u32,
    };

    // Whole minutes: after the one the first trade falls in, before the one of the last.
    const M: i64 = 60_000;
    let first = page.trades[0].t.div_euclid(M) * M + M;
    let last = page.trades.last().unwrap().t.div_euclid(M) * M - M;
    let built = kraken_trades::candles(&page.trades, M, first, last, d);
    let rows: Vec<&Candle> = recorded
        .iter()
        .filter(|c| c.t >= first && c.t <= last)
        .collect();
    assert_eq!(built.len(), rows.len());
    let all = |c: &Candle| (c.t, texts(c), extra_texts(c));
    let mut with_trades = 0;
    for (b, r) in built.iter().zip(&rows) {
        assert_eq!(all(b), all(r));
        with_trades += usize::from(b.trades != Some(0));
    }
    assert_eq!((with_trades, built.len() - with_trades), (272, 137));
}
