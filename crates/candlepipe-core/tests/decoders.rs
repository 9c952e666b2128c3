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
        let req = CandlesRequest { exchange, symbol, interval, limit, end, max_age_ms: max_age, allow_stale: None, timeout_ms: timeout };
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
