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
        let (candles, rows, fields): (Vec<Candle>, Vec<Vec<String>>, [usize; 5]) =
            match rec["exchange"].as_str().unwrap() {
                "binance" => (
                    binance::parse(&body, i64::MAX).unwrap(),
                    raw_rows(&text),
                    [1, 2, 3, 4, 5],
                ),
                "coinbase" => {
                    let mut rows = raw_rows(&text);
                    rows.reverse(); // newest first on the wire
                    (
                        coinbase::parse(&body, i64::MAX).unwrap(),
                        rows,
                        [3, 2, 1, 4, 5],
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
                    (candles, rows, [1, 2, 3, 4, 6])
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
        }
        seen += 1;
    }
    assert!(seen >= 13, "{seen} recordings");
}
