//! Instants as people write and read them on the command line. Read: RFC 3339
//! (`2026-12-01T00:00:00Z`), a UTC date (`2026-12-01`, its midnight) or milliseconds since
//! the epoch; a number that reads as seconds is refused rather than taken for a moment of
//! 1970. Written: RFC 3339 UTC, to the second.

use candlepipe_core::Millis;
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};

use crate::errors::Input;

/// The smallest number taken as milliseconds (1973-03-03): below it, a number is seconds
/// (up to the year 5138) far more likely than a moment of 1970.
const LEAST_MS: i64 = 100_000_000_000;

/// The instant `s` names, in ms UTC.
pub fn parse_instant(s: &str) -> Result<Millis, Input> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        if n < LEAST_MS {
            return Err(Input(format!(
                "{s} reads as seconds; give milliseconds ({}) or RFC 3339 ({})",
                n.saturating_mul(1000),
                format_instant(n.saturating_mul(1000))
            )));
        }
        return Ok(n);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as Millis);
    }
    match date(s) {
        Some(d) => Ok(d.midnight().assume_utc().unix_timestamp() * 1000),
        None => Err(Input(format!(
            "{s:?} is not a time: give RFC 3339 (2026-12-01T00:00:00Z), a date (2026-12-01) \
             or milliseconds since the epoch"
        ))),
    }
}

/// `YYYY-MM-DD`, if it is a real day.
fn date(s: &str) -> Option<Date> {
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

/// `ms` as RFC 3339 UTC (`2026-12-01T00:00:00Z`); the number itself if out of range.
pub fn format_instant(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_read_in_three_forms_and_seconds_are_refused() {
        let midnight = 1_796_083_200_000; // 2026-12-01T00:00:00Z
        assert_eq!(parse_instant("2026-12-01T00:00:00Z").unwrap(), midnight);
        assert_eq!(parse_instant("2026-12-01").unwrap(), midnight);
        assert_eq!(parse_instant("1796083200000").unwrap(), midnight);
        let seconds = parse_instant("1796083200").unwrap_err().to_string();
        assert!(
            seconds.contains("reads as seconds") && seconds.contains("1796083200000"),
            "{seconds}"
        );
        assert!(parse_instant("yesterday").is_err());
        assert!(parse_instant("2026-13-01").is_err());
        assert!(parse_instant("2026-02-30").is_err());
        assert_eq!(format_instant(midnight), "2026-12-01T00:00:00Z");
    }
}
