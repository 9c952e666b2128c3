//! Against TA-Lib's own outputs (`fixtures/talib.json`, written by `fixtures/make_talib.py`
//! with the C library), to 1e-9; and properties on random series.
#![allow(clippy::unwrap_used)]

use candlepipe_indicators::{atr, ema, rsi, sma, summarize, Bar};
use proptest::prelude::*;
use serde_json::Value;

fn series(doc: &Value, key: &str) -> Vec<f64> {
    doc[key]
        .as_array()
        .unwrap_or_else(|| panic!("fixture has {key}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn assert_close(name: &str, ours: &[f64], talib: &[f64]) {
    assert_eq!(ours.len(), talib.len(), "{name}: output length (lookback)");
    for (i, (a, b)) in ours.iter().zip(talib).enumerate() {
        assert!(
            (a - b).abs() <= 1e-9,
            "{name}[{i}]: ours {a} vs TA-Lib {b} (diff {})",
            (a - b).abs()
        );
    }
}

#[test]
fn matches_talib_to_1e9() {
    let doc: Value = serde_json::from_str(include_str!("fixtures/talib.json")).unwrap();
    let (h, l, c) = (
        series(&doc, "high"),
        series(&doc, "low"),
        series(&doc, "close"),
    );
    assert_eq!(c.len(), 300);
    assert_close("SMA20", &sma(&c, 20), &series(&doc, "sma20"));
    assert_close("EMA20", &ema(&c, 20), &series(&doc, "ema20"));
    assert_close("EMA50", &ema(&c, 50), &series(&doc, "ema50"));
    assert_close("RSI14", &rsi(&c, 14), &series(&doc, "rsi14"));
    assert_close("ATR14", &atr(&h, &l, &c, 14), &series(&doc, "atr14"));
}

fn bars() -> impl Strategy<Value = Vec<Bar>> {
    prop::collection::vec((1.0f64..1e6, 0.0f64..0.1, 0.0f64..0.1, 0.0f64..1.0), 0..400).prop_map(
        |raw| {
            raw.into_iter()
                .map(|(mid, up, down, pos)| {
                    let (high, low) = (mid * (1.0 + up), mid * (1.0 - down));
                    Bar {
                        high,
                        low,
                        close: low + (high - low) * pos,
                    }
                })
                .collect()
        },
    )
}

proptest! {
    #[test]
    fn rsi_is_a_percentage_and_atr_is_not_negative(bars in bars()) {
        let c: Vec<f64> = bars.iter().map(|b| b.close).collect();
        let h: Vec<f64> = bars.iter().map(|b| b.high).collect();
        let l: Vec<f64> = bars.iter().map(|b| b.low).collect();
        for v in rsi(&c, 14) {
            prop_assert!((0.0..=100.0).contains(&v), "RSI {v}");
        }
        for v in atr(&h, &l, &c, 14) {
            prop_assert!(v >= 0.0, "ATR {v}");
        }
        if let Some(s) = summarize(&bars, 60) {
            prop_assert!(s.support.iter().all(|p| *p < s.last_close));
            prop_assert!(s.resistance.iter().all(|p| *p > s.last_close));
            prop_assert!(s.support.len() <= 3 && s.resistance.len() <= 3);
            prop_assert_eq!(s.rsi14.is_some(), bars.len() > 14);
            prop_assert_eq!(s.ema50.is_some(), bars.len() >= 50);
        }
    }
}
