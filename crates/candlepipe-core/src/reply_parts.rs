//! A candles reply assembled from parts encoded beforehand: each candle's own bytes in the
//! reply's encoding (a *fragment*), and the reply's head. The store keeps fragments next to
//! the candles they encode, so a Redis hit copies bytes instead of formatting decimals.
//! [`assemble`] writes exactly what [`Encoding::encode_candles`] writes for the same
//! candles (a property test holds them together).

use crate::request::CandlesReplyRef;
use crate::{Candle, Encoding};

/// Appends `c`'s fragment in `enc`: the bytes `c` has inside a reply's `candles` array.
pub fn write_candle(enc: Encoding, c: &Candle, out: &mut Vec<u8>) {
    match enc {
        Encoding::Json => crate::candles_json::candle(out, c),
        // Writing a candle into memory cannot fail (string keys, no fallible field).
        Encoding::Msgpack => {
            let _ = rmp_serde::encode::write_named(out, c);
        }
    }
}

/// The reply `head` (its `candles` are ignored) holding the `count` candles whose fragments
/// are `fragments`, in order.
pub fn assemble<'a>(
    enc: Encoding,
    head: &CandlesReplyRef,
    count: usize,
    fragments: impl Iterator<Item = &'a [u8]>,
    fragment_bytes: usize,
) -> Vec<u8> {
    let empty = CandlesReplyRef {
        candles: &[],
        ..*head
    };
    let mut out = enc.encode_candles(&empty);
    out.reserve(fragment_bytes + count + 8);
    match enc {
        // `…"candles":[]}`: the candles go between the brackets, comma separated.
        Encoding::Json => {
            out.truncate(out.len().saturating_sub(2));
            for (i, f) in fragments.enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(f);
            }
            out.extend_from_slice(b"]}");
        }
        // `candles` is the last field: its empty array's one-byte header becomes the
        // header of `count` elements, followed by them.
        Encoding::Msgpack => {
            out.pop();
            let _ = rmp::encode::write_array_len(&mut out, count as u32);
            for f in fragments {
                out.extend_from_slice(f);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Exchange, Interval, Millis, Source, Symbol};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn assembled_replies_equal_encoded_ones(
            rows in proptest::collection::vec((any::<i64>(), any::<i64>(), 0u32..=28, any::<bool>(), any::<bool>()), 0..40),
            stale in any::<bool>(),
            missing in proptest::collection::vec(any::<i64>(), 0..5),
            aggregated in any::<bool>(),
        ) {
            let candles: Vec<Candle> = rows.iter().map(crate::candle::from_test_row).collect();
            let symbol = Symbol::parse("ETH/USDT").unwrap();
            let missing: Vec<Millis> = missing;
            let reply = CandlesReplyRef {
                ok: true,
                exchange: Exchange::Coinbase,
                symbol: &symbol,
                interval: Interval::M5,
                source: Source::Redis,
                stale,
                complete: !stale,
                missing: &missing,
                aggregated_from: aggregated.then_some(Interval::M1),
                candles: &candles,
            };
            for enc in [Encoding::Json, Encoding::Msgpack] {
                let fragments: Vec<Vec<u8>> = candles
                    .iter()
                    .map(|c| {
                        let mut f = Vec::new();
                        write_candle(enc, c, &mut f);
                        f
                    })
                    .collect();
                let bytes: usize = fragments.iter().map(Vec::len).sum();
                let assembled = assemble(enc, &reply, candles.len(), fragments.iter().map(|f| &f[..]), bytes);
                prop_assert_eq!(&assembled, &enc.encode_candles(&reply), "{:?}", enc);
            }
        }
    }
}
