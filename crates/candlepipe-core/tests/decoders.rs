//! Property tests of the request decoders: whatever arrives, decoding and validation return
//! a value or a typed error, never panic, and nothing unsafe for a subject gets through.

use candlepipe_core::{CandlesRequest, Encoding, ErrorCode, Symbol};
use proptest::prelude::*;

fn decode_and_validate(enc: Encoding, bytes: &[u8]) -> Result<(), ErrorCode> {
    let req: CandlesRequest = enc.decode(bytes).map_err(|_| ErrorCode::BadRequest)?;
    req.validate().map(|_| ()).map_err(|e| e.code)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_and_validate(Encoding::Json, &bytes);
        let _ = decode_and_validate(Encoding::Msgpack, &bytes);
    }

    #[test]
    fn arbitrary_fields_get_a_code(
        exchange in ".{0,12}",
        symbol in ".{0,30}",
        interval in ".{0,5}",
        limit in proptest::option::of(any::<i64>()),
        end in proptest::option::of(any::<i64>()),
        max_age in proptest::option::of(any::<i64>()),
        timeout in proptest::option::of(any::<i64>()),
    ) {
        let req = CandlesRequest { exchange, symbol, interval, limit, end, max_age_ms: max_age, allow_stale: None, timeout_ms: timeout, fill_gaps: None };
        for enc in [Encoding::Json, Encoding::Msgpack] {
            let bytes = enc.encode(&req);
            let back: CandlesRequest = enc.decode(&bytes).expect("our own encoding decodes");
            prop_assert_eq!(&back, &req);
            let _ = back.validate();
        }
    }

    #[test]
    fn accepted_symbols_are_safe_subject_tokens(s in ".{0,24}") {
        if let Ok(sym) = Symbol::parse(&s) {
            let token = sym.token();
            prop_assert!(token.len() <= 20);
            prop_assert!(token.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-'));
            prop_assert_eq!(token.matches('-').count(), 1);
        }
    }
}

/// A million cases each, from arbitrary bytes and from valid encodings with bytes changed:
/// every decoder returns a value or a typed error, and never panics.
mod a_million_each {
    use candlepipe_core::{AnalysisRequest, Encoding, FillJob};
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

    fn analysis_request() -> Vec<u8> {
        br#"{"exchange":"binance","symbols":["BTC/USDT","ETH/USDT"],"interval":"1h","lookback":200,"llm":true,"timeout_ms":30000}"#.to_vec()
    }

    fn fill_job() -> Vec<u8> {
        br#"{"series":{"exchange":"kraken","symbol":"BTC/USD","interval":"1m"},"from":1764000000000,"to":1764005940000,"includes_open":true,"fresh_after":1764005999000}"#.to_vec()
    }

    fn analysis(enc: Encoding, bytes: &[u8]) {
        if let Ok(r) = enc.decode::<AnalysisRequest>(bytes) {
            let _ = r.validate();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1_000_000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn analysis_requests(bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            mutated(analysis_request()),
        ]) {
            analysis(Encoding::Json, &bytes);
            analysis(Encoding::Msgpack, &bytes);
        }

        #[test]
        fn fill_jobs(bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            mutated(fill_job()),
        ]) {
            let _ = serde_json::from_slice::<FillJob>(&bytes);
        }
    }
}
