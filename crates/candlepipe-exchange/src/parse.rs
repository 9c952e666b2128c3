//! Exact number parsing from JSON: decimals keep the digits the exchange sent, whether it
//! sent them as strings (`"91234.10"`) or as JSON numbers (`4.2`).

use rust_decimal::Decimal;
use serde_json::value::RawValue;

use crate::FetchError;

pub(crate) fn decimal(raw: &RawValue) -> Result<Decimal, FetchError> {
    let text = raw.get().trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        text.parse::<Decimal>()
    };
    parsed.map_err(|_| FetchError::Malformed(format!("not a decimal: {}", cut(text))))
}

pub(crate) fn integer(raw: &RawValue) -> Result<i64, FetchError> {
    let text = raw.get().trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    text.parse::<i64>()
        .map_err(|_| FetchError::Malformed(format!("not an integer: {}", cut(text))))
}

pub(crate) fn rows(body: &[u8]) -> Result<Vec<Vec<&RawValue>>, FetchError> {
    serde_json::from_slice(body).map_err(|e| FetchError::Malformed(format!("candle rows: {e}")))
}

pub(crate) fn field<'a>(row: &[&'a RawValue], i: usize) -> Result<&'a RawValue, FetchError> {
    row.get(i).copied().ok_or_else(|| {
        FetchError::Malformed(format!(
            "candle row has {} fields, wanted index {i}",
            row.len()
        ))
    })
}

/// Field `i` as a decimal when the row has it (a venue sending fewer fields is not wrong).
pub(crate) fn optional_decimal(row: &[&RawValue], i: usize) -> Result<Option<Decimal>, FetchError> {
    row.get(i).map(|raw| decimal(raw)).transpose()
}

/// Field `i` as a count when the row has it.
pub(crate) fn optional_count(row: &[&RawValue], i: usize) -> Result<Option<u64>, FetchError> {
    row.get(i)
        .map(|raw| {
            integer(raw).and_then(|n| {
                u64::try_from(n).map_err(|_| FetchError::Malformed(format!("a count of {n}")))
            })
        })
        .transpose()
}

pub(crate) fn cut(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn decimals_keep_their_digits() {
        for (json, text) in [
            ("\"91234.10\"", "91234.10"),
            ("4.2", "4.2"),
            ("0.00001000", "0.00001000"),
            ("12", "12"),
            ("1e-5", "0.00001"),
        ] {
            assert_eq!(decimal(&raw(json)).unwrap().to_string(), text);
        }
        assert!(decimal(&raw("\"abc\"")).is_err());
        assert!(decimal(&raw("null")).is_err());
    }
}
