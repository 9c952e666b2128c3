//! The store's decoders against a million inputs each, from arbitrary bytes and from valid
//! values with bytes changed: a sealed envelope opens to a value or a typed error, a
//! packed chunk decodes to candles or an error, a run of reply fragments parses to rows
//! inside its body or an error; none ever panics.

#![allow(clippy::unwrap_used)]

use candlepipe_core::Candle;
use candlepipe_core::Encoding;
use candlepipe_store::{fragments, packed, Keyring};
use proptest::prelude::*;

fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len().max(1);
    proptest::collection::vec((0..len, any::<u8>(), 0..3u8), 1..8).prop_map(move |edits| {
        let mut b = valid.clone();
        for (at, byte, how) in edits {
            let at = at.min(b.len());
            match how {
                0 if at < b.len() => b[at] = byte,
                1 => b.insert(at, byte),
                _ if at < b.len() => {
                    b.remove(at);
                }
                _ => b.push(byte),
            }
        }
        b
    })
}

fn candles() -> Vec<Candle> {
    (0..3)
        .map(|i| Candle {
            t: 1_764_000_000_000 + i * 60_000,
            o: "91234.10".parse().unwrap(),
            h: "-0.000000000000000000000000001".parse().unwrap(),
            l: "79228162514264337593543950335".parse().unwrap(),
            c: "91250.55".parse().unwrap(),
            v: "12.34560000".parse().unwrap(),
            closed: i < 2,
            synthetic: false,
            ..Default::default()
        })
        .collect()
}

fn ring() -> Keyring {
    Keyring::new("k1", b"a-test-key-of-enough-bytes")
}

const KEY: &str = "cp:s:{binance:BTC-USDT:1m}:meta";

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn envelopes(bytes in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        mutated(ring().seal(KEY, 7, 1_764_000_000_000, b"body")),
    ]) {
        // Whatever opens holds exactly what was sealed (another encoding of the same
        // values may open; a changed value never does).
        if let Ok(o) = ring().open(KEY, &bytes) {
            prop_assert_eq!((o.version, o.written_at, &o.body[..]), (7, 1_764_000_000_000, &b"body"[..]));
        }
    }

    #[test]
    fn packed_chunks(bytes in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        mutated(packed::encode(&candles())),
    ]) {
        let _ = packed::decode(&bytes, i64::MIN, i64::MAX);
    }

    #[test]
    fn fragment_runs(bytes in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        mutated(fragments::encode(Encoding::Json, &candles())),
        mutated(fragments::encode(Encoding::Msgpack, &candles())),
    ]) {
        if let Ok(rows) = fragments::parse(&bytes) {
            for (_, r) in rows {
                prop_assert!(r.start <= r.end && r.end <= bytes.len());
            }
        }
    }
}
