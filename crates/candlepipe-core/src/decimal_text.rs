//! Decimals as text, fast: every candle crosses this once per reply it is encoded into and
//! once per Redis read it is decoded from, so `rust_decimal`'s general-purpose formatting
//! and parsing (96-bit division per digit) showed up in profiles. The output and the values
//! are exactly `Decimal`'s own (`to_string` / `from_str`): the scale is kept ("91234.10"
//! stays "91234.10"). Text this fast path does not take (exponents, `+`, more than 28
//! digits) goes to `rust_decimal`'s parser.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserializer, Serializer};

/// Longest text: sign, 29 digits, point, leading "0." zeros for a 28 scale.
const MAX_LEN: usize = 64;

/// Writes the text of `d` into `buf`; returns its length.
fn render(d: &Decimal, buf: &mut [u8; MAX_LEN]) -> usize {
    let scale = d.scale() as usize;
    let mantissa = d.mantissa().unsigned_abs();
    let mut digits = itoa::Buffer::new();
    // Prices and volumes almost always fit 64 bits, whose formatting is the cheaper one.
    let text = match u64::try_from(mantissa) {
        Ok(small) => digits.format(small),
        Err(_) => digits.format(mantissa),
    }
    .as_bytes();
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    if d.is_sign_negative() {
        put(b"-");
    }
    if scale == 0 {
        put(text);
    } else if text.len() > scale {
        let (int, frac) = text.split_at(text.len() - scale);
        put(int);
        put(b".");
        put(frac);
    } else {
        put(b"0.");
        for _ in text.len()..scale {
            put(b"0");
        }
        put(text);
    }
    n
}

/// Appends the text of `d` to `out`.
pub fn write(d: &Decimal, out: &mut Vec<u8>) {
    let mut buf = [0u8; MAX_LEN];
    let n = render(d, &mut buf);
    out.extend_from_slice(&buf[..n]);
}

/// The text of `d`, in `buf`.
pub fn format<'a>(d: &Decimal, buf: &'a mut [u8; MAX_LEN]) -> &'a str {
    let n = render(d, buf);
    // Only ASCII digits, '-' and '.' were written.
    std::str::from_utf8(&buf[..n]).unwrap_or("0")
}

/// Parses `[-]digits[.digits]` directly; anything else through `Decimal::from_str`.
pub fn parse(s: &str) -> Result<Decimal, rust_decimal::Error> {
    let bytes = s.as_bytes();
    let (negative, body) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    let mut mantissa: u128 = 0;
    let mut digits = 0usize;
    let mut scale: Option<u32> = None;
    let simple = !body.is_empty()
        && body.iter().all(|&b| match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u128::from(b - b'0');
                digits += 1;
                if let Some(s) = scale.as_mut() {
                    *s += 1;
                }
                digits <= 28
            }
            b'.' if scale.is_none() => {
                scale = Some(0);
                true
            }
            _ => false,
        })
        && digits > 0
        && body.last() != Some(&b'.');
    // Negative zero keeps its sign in `rust_decimal`; leave it to the general parser.
    if !simple || (negative && mantissa == 0) {
        return Decimal::from_str(s);
    }
    let m = mantissa as i128;
    Decimal::try_from_i128_with_scale(if negative { -m } else { m }, scale.unwrap_or(0))
}

pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; MAX_LEN];
    s.serialize_str(format(d, &mut buf))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = Decimal;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a decimal number as a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
            parse(v).map_err(E::custom)
        }
    }
    d.deserialize_str(Text)
}

/// An optional decimal as text (`None` is left out by the field's `skip_serializing_if`).
pub mod option {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        #[derive(Deserialize)]
        struct Text(#[serde(with = "super")] Decimal);
        Ok(Option::<Text>::deserialize(d)?.map(|t| t.0))
    }
}

/// An optional count as decimal text (`"42"`), read from text or a number.
pub mod count {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match n {
            Some(n) => s.serialize_str(itoa::Buffer::new().format(*n)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Count {
            Number(u64),
            Text(String),
        }
        match Option::<Count>::deserialize(d)? {
            None => Ok(None),
            Some(Count::Number(n)) => Ok(Some(n)),
            Some(Count::Text(t)) => t.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let mut buf = [0u8; MAX_LEN];
        for s in [
            "91234.10",
            "0.00",
            "-0.5",
            "12",
            "0.00000001",
            "-12.3400",
            "79228162514264337593543950335",
            "-0.0",
        ] {
            let d = Decimal::from_str(s).unwrap();
            assert_eq!(format(&d, &mut buf), d.to_string(), "{s}");
            assert_eq!(parse(s).unwrap(), d);
            assert_eq!(parse(s).unwrap().scale(), d.scale(), "{s}");
        }
        assert!(parse("").is_err());
        assert!(parse("1.2.3").is_err());
        assert!(parse("abc").is_err());
        assert!(parse(".").is_err());
        assert_eq!(
            parse("1e3").unwrap(),
            Decimal::from_str("1e3").unwrap_or_default()
        );
    }

    proptest! {
        #[test]
        fn same_as_rust_decimal(m in any::<i64>(), scale in 0u32..=18) {
            let d = Decimal::from_i128_with_scale(i128::from(m), scale);
            let mut buf = [0u8; MAX_LEN];
            let text = format(&d, &mut buf).to_string();
            prop_assert_eq!(&text, &d.to_string());
            let back = parse(&text).unwrap();
            prop_assert_eq!(back, d);
            prop_assert_eq!(back.scale(), d.scale());
        }
    }
}
