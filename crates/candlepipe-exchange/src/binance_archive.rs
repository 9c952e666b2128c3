//! Binance's public archive of spot klines (`CANDLEPIPE_BINANCE_ARCHIVE_URL`, default
//! `https://data.binance.vision`): one zip per symbol, interval and closed month or day,
//!
//! - `data/spot/monthly/klines/<SYMBOL>/<iv>/<SYMBOL>-<iv>-<YYYY-MM>.zip`
//! - `data/spot/daily/klines/<SYMBOL>/<iv>/<SYMBOL>-<iv>-<YYYY-MM-DD>.zip`
//!
//! each with a `.CHECKSUM` beside it (`<sha256 hex>  <file name>`), checked before the file
//! is used. The zip holds one CSV without a header row, the 12 columns of REST's klines with
//! the same decimal text; open and close times are in microseconds from 2025-01-01 and in
//! milliseconds before: both are read. Daily files appear the day after, monthly ones in the
//! first days of the next month, and a file may be replaced later. Files cost no API
//! weight: they are fetched on a budget of their own.

use std::io::Read;

use candlepipe_core::{Candle, Interval, Millis};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use time::{Date, Month, OffsetDateTime};

use crate::FetchError;

pub const DEFAULT_URL: &str = "https://data.binance.vision";
const DAY: Millis = 86_400_000;
/// Open times at or above this are microseconds (ms would be year 5138).
const MICROS_FROM: i64 = 100_000_000_000_000;

/// One archived file's span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// The month that `Date` (its first day) opens.
    Month(Date),
    Day(Date),
}

impl Period {
    /// The open times of its first and last candle of `iv`.
    pub fn span(self, iv: Interval) -> (Millis, Millis) {
        let (first, next) = match self {
            Period::Month(d) => (d, next_month(d)),
            Period::Day(d) => (d, d.next_day().unwrap_or(d)),
        };
        let step = iv.millis();
        let from = ms_of(first);
        let end = ms_of(next);
        (
            iv.open_of(from + step - 1),
            iv.open_of(end - 1).max(iv.open_of(from + step - 1)),
        )
    }

    fn label(self) -> String {
        match self {
            Period::Month(d) => format!("{:04}-{:02}", d.year(), u8::from(d.month())),
            Period::Day(d) => format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()),
        }
    }

    /// The file's path under the archive's URL.
    pub fn path(self, native: &str, iv: Interval) -> String {
        let kind = match self {
            Period::Month(_) => "monthly",
            Period::Day(_) => "daily",
        };
        format!(
            "/data/spot/{kind}/klines/{native}/{iv}/{native}-{iv}-{}.zip",
            self.label()
        )
    }

    /// The days it spans.
    pub fn days(self) -> Vec<Period> {
        match self {
            Period::Day(_) => vec![self],
            Period::Month(first) => {
                let end = next_month(first);
                std::iter::successors(Some(first), |d| d.next_day())
                    .take_while(|d| *d < end)
                    .map(Period::Day)
                    .collect()
            }
        }
    }
}

fn next_month(first: Date) -> Date {
    let (y, m) = match first.month() {
        Month::December => (first.year() + 1, Month::January),
        m => (first.year(), m.next()),
    };
    Date::from_calendar_date(y, m, 1).unwrap_or(first)
}

fn ms_of(d: Date) -> Millis {
    d.midnight().assume_utc().unix_timestamp() * 1000
}

fn date_of(t: Millis) -> Option<Date> {
    OffsetDateTime::from_unix_timestamp(t.div_euclid(1000))
        .ok()
        .map(|d| d.date())
}

/// How to get the candles of `iv` with open times `[from, to]`: archived whole months the
/// range covers, archived days of the rest that are over by `now`, and the rest (today's,
/// or an interval spanning days) from REST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    File(Period),
    Rest(Millis, Millis),
}

pub fn plan(iv: Interval, from: Millis, to: Millis, now: Millis) -> Vec<Piece> {
    let step = iv.millis();
    let mut out = Vec::new();
    let mut rest_from: Option<Millis> = None;
    let push_rest = |out: &mut Vec<Piece>, rest_from: &mut Option<Millis>, end: Millis| {
        if let Some(a) = rest_from.take() {
            if a <= end {
                out.push(Piece::Rest(a, end));
            }
        }
    };
    let today = date_of(now).map_or(Millis::MAX, ms_of);
    let mut cursor = from;
    while cursor <= to {
        let Some(day) = date_of(cursor) else { break };
        let first_of_month = day.replace_day(1).unwrap_or(day);
        let month = Period::Month(first_of_month);
        let (_, m_to) = month.span(iv);
        let whole_month = ms_of(first_of_month) == cursor && m_to <= to;
        let daily = Period::Day(day);
        let (d_from, d_to) = daily.span(iv);
        // Intervals of a day or longer, or not aligned to days, are not in daily files
        // whole: REST.
        let day_aligned = step <= DAY && DAY % step == 0;
        if whole_month && day_aligned && ms_of(next_month(first_of_month)) <= today {
            push_rest(&mut out, &mut rest_from, cursor - step);
            out.push(Piece::File(month));
            cursor = m_to + step;
        } else if day_aligned && d_from == cursor && d_to <= to && ms_of(day) + DAY <= today {
            push_rest(&mut out, &mut rest_from, cursor - step);
            out.push(Piece::File(daily));
            cursor = d_to + step;
        } else {
            rest_from.get_or_insert(cursor);
            // On to the next day's start (or the end of the range).
            let next = ms_of(day) + DAY;
            cursor = iv.open_of(next - 1) + step;
            if cursor > to {
                break;
            }
        }
    }
    push_rest(&mut out, &mut rest_from, to);
    out
}

/// The sha256 a `.CHECKSUM` file states.
pub fn checksum(body: &[u8]) -> Option<[u8; 32]> {
    let text = std::str::from_utf8(body).ok()?;
    let hex = text.split_whitespace().next()?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Whether `zip` is the file the checksum states.
pub fn verified(zip: &[u8], sum: &[u8; 32]) -> bool {
    Sha256::digest(zip).as_slice() == sum
}

/// The CSV inside an archived zip.
pub fn unzip(zip: &[u8]) -> Result<String, FetchError> {
    let bad = |e: &dyn std::fmt::Display| FetchError::Malformed(format!("archive zip: {e}"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| bad(&e))?;
    let mut file = archive.by_index(0).map_err(|e| bad(&e))?;
    let mut csv = String::with_capacity(file.size() as usize);
    file.read_to_string(&mut csv).map_err(|e| bad(&e))?;
    Ok(csv)
}

/// The candles of an archived CSV (all closed), with times in ms whatever the file's unit.
pub fn parse(csv: &str) -> Result<Vec<Candle>, FetchError> {
    let bad = |line: &str, why: &str| {
        FetchError::Malformed(format!("archive row {}: {why}", crate::parse::cut(line)))
    };
    let mut out = Vec::new();
    for line in csv.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        // A header row (futures files have one): not a candle.
        if f[0].parse::<i64>().is_err() && out.is_empty() {
            continue;
        }
        if f.len() < 11 {
            return Err(bad(line, "fewer than 11 columns"));
        }
        let int = |i: usize| f[i].parse::<i64>().map_err(|_| bad(line, "not an integer"));
        let dec = |i: usize| {
            f[i].parse::<Decimal>()
                .map_err(|_| bad(line, "not a decimal"))
        };
        let raw_t = int(0)?;
        let t = if raw_t >= MICROS_FROM {
            raw_t / 1000
        } else {
            raw_t
        };
        out.push(Candle {
            t,
            o: dec(1)?,
            h: dec(2)?,
            l: dec(3)?,
            c: dec(4)?,
            v: dec(5)?,
            quote_volume: Some(dec(7)?),
            trades: Some(u64::try_from(int(8)?).map_err(|_| bad(line, "a negative count"))?),
            taker_buy_base: Some(dec(9)?),
            taker_buy_quote: Some(dec(10)?),
            closed: true,
            ..Default::default()
        });
    }
    out.sort_by_key(|c| c.t);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Millis = 60_000;

    fn day(y: i32, m: u8, d: u8) -> Date {
        Date::from_calendar_date(y, Month::try_from(m).unwrap(), d).unwrap()
    }

    #[test]
    fn paths_are_binances() {
        assert_eq!(
            Period::Month(day(2024, 12, 1)).path("BTCUSDT", Interval::M1),
            "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-12.zip"
        );
        assert_eq!(
            Period::Day(day(2025, 1, 2)).path("BTCUSDT", Interval::H1),
            "/data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2025-01-02.zip"
        );
        let (a, b) = Period::Month(day(2024, 2, 1)).span(Interval::M1);
        assert_eq!((b - a) / M + 1, 29 * 1440, "a leap February");
        assert_eq!(Period::Month(day(2024, 12, 1)).days().len(), 31);
    }

    #[test]
    fn whole_months_then_closed_days_then_rest() {
        let now = ms_of(day(2026, 12, 5)) + 3_600_000;
        let from = ms_of(day(2026, 10, 30));
        let to = Interval::M1.open_of(now) - M;
        let plan = plan(Interval::M1, from, to, now);
        let mut want = vec![
            Piece::File(Period::Day(day(2026, 10, 30))),
            Piece::File(Period::Day(day(2026, 10, 31))),
            Piece::File(Period::Month(day(2026, 11, 1))),
        ];
        for d in 1..=4 {
            want.push(Piece::File(Period::Day(day(2026, 12, d))));
        }
        want.push(Piece::Rest(ms_of(day(2026, 12, 5)), to));
        assert_eq!(plan, want);
        // A range starting mid-day: REST up to the day's end, then files.
        let mid = from + 90 * M;
        let plan2 = super::plan(Interval::M1, mid, ms_of(day(2026, 11, 1)) - M, now);
        assert_eq!(
            plan2,
            vec![
                Piece::Rest(mid, ms_of(day(2026, 10, 31)) - M),
                Piece::File(Period::Day(day(2026, 10, 31)))
            ]
        );
        // November is not over on 2026-11-20: its days are files, not the month.
        let now = ms_of(day(2026, 11, 20));
        let p = super::plan(Interval::H1, ms_of(day(2026, 11, 1)), now - 3_600_000, now);
        assert_eq!(p.len(), 19, "{p:?}");
        // Weekly candles span days: REST.
        assert!(matches!(
            super::plan(Interval::W1, from, to, now + 30 * DAY)[..],
            [Piece::Rest(..)]
        ));
    }

    #[test]
    fn micro_and_milli_seconds_read_alike() {
        let ms = "1735603200000,93576.00000000,93610.93000000,93537.50000000,93610.93000000,8.21827000,1735603259999,768978.45537190,1432,3.64323000,340929.18209150,0\n";
        let us = "1735689600000000,93576.00000000,93610.93000000,93537.50000000,93610.93000000,8.21827000,1735689659999999,768978.45537190,1432,3.64323000,340929.18209150,0\n";
        let a = parse(ms).unwrap();
        let b = parse(us).unwrap();
        assert_eq!(a[0].t, 1_735_603_200_000);
        assert_eq!(b[0].t, 1_735_689_600_000);
        assert_eq!(a[0].o.to_string(), "93576.00000000");
        assert_eq!(b[0].trades, Some(1432));
        assert_eq!(b[0].taker_buy_quote.unwrap().to_string(), "340929.18209150");
        assert!(parse("1735603200000,x,1,1,1,1,1,1,1,1,1,0").is_err());
    }

    #[test]
    fn checksums_are_read_and_checked() {
        let zip = b"not really a zip";
        let hex: String = Sha256::digest(zip)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let sum = checksum(format!("{hex}  BTCUSDT-1m-2025-01-01.zip\n").as_bytes()).unwrap();
        assert!(verified(zip, &sum));
        assert!(!verified(b"another", &sum));
        assert_eq!(checksum(b"<html>"), None);
    }
}
