//! Simulated Binance public archive (data.binance.vision):
//! `GET /data/spot/{monthly|daily}/klines/<SYMBOL>/<iv>/<SYMBOL>-<iv>-<YYYY-MM[-DD]>.zip`
//! and its `.CHECKSUM` (`<sha256 hex>  <file name>`). The zip holds one CSV without a
//! header, the klines REST serves for the period (same values, same decimal text), times
//! in microseconds from 2025-01-01 and in milliseconds before. A file exists once its
//! period is over by the target's `late_ms`; missing keys are S3's 404 `NoSuchKey`.
//! Faults (`POST /sim/faults/binance_archive`): `missing` and `bad_checksum` list file
//! stems (`BTCUSDT-1m-2026-11-20`) that are absent or whose checksum does not match.

use std::io::Write;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use candlepipe_core::{now_ms, Interval};
use sha2::{Digest, Sha256};
use time::{Date, Month};

use crate::binance::kline_fields;
use crate::market::{split_concat, Series};
use crate::{Sim, ARCHIVE};

/// From this open time on, the archive writes microseconds (2025-01-01T00:00:00Z).
const MICROS_FROM: i64 = 1_735_689_600_000;

fn no_such_key(key: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/xml")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>{key}</Key></Error>"),
    )
        .into_response()
}

/// The period's first and next first day, from `2026-11` or `2026-11-20`.
fn period(kind: &str, label: &str) -> Option<(Date, Date)> {
    let parts: Vec<&str> = label.split('-').collect();
    let num = |i: usize| parts.get(i)?.parse::<u16>().ok();
    let month = Month::try_from(u8::try_from(num(1)?).ok()?).ok()?;
    let year = i32::from(num(0)?);
    match (kind, parts.len()) {
        ("monthly", 2) => {
            let first = Date::from_calendar_date(year, month, 1).ok()?;
            let next = match month {
                Month::December => Date::from_calendar_date(year + 1, Month::January, 1),
                m => Date::from_calendar_date(year, m.next(), 1),
            }
            .ok()?;
            Some((first, next))
        }
        ("daily", 3) => {
            let day = Date::from_calendar_date(year, month, u8::try_from(num(2)?).ok()?).ok()?;
            Some((day, day.next_day()?))
        }
        _ => None,
    }
}

fn ms(d: Date) -> i64 {
    d.midnight().assume_utc().unix_timestamp() * 1000
}

pub(crate) async fn file(
    State(sim): State<Sim>,
    Path((kind, symbol, interval, file)): Path<(String, String, String, String)>,
) -> Response {
    let key = format!("data/spot/{kind}/klines/{symbol}/{interval}/{file}");
    if let Some(r) = sim.gate(ARCHIVE, &file, &key).await {
        return r;
    }
    let (name, is_checksum) = match file.strip_suffix(".CHECKSUM") {
        Some(name) => (name, true),
        None => (file.as_str(), false),
    };
    let found = (|| {
        let stem = name.strip_suffix(".zip")?;
        let label = stem.strip_prefix(&format!("{symbol}-{interval}-"))?;
        let (first, next) = period(&kind, label)?;
        let iv = Interval::parse(&interval).ok()?;
        let (base, quote) = split_concat(&symbol)?;
        Some((stem.to_string(), first, next, iv, base, quote))
    })();
    let Some((stem, first, next, iv, base, quote)) = found else {
        return no_such_key(&key);
    };
    let now = now_ms();
    let habits = sim.habits(ARCHIVE);
    let faults = sim.archive_faults();
    let (from, end) = (ms(first), ms(next));
    if now < end + habits.late_ms || faults.missing.contains(&stem) {
        return no_such_key(&key);
    }
    // Writing, deflating and hashing a month of 1m klines holds a thread for a long while
    // (beside a backfill, REST calls waited 0.4-0.7 s for it). The real archive is another
    // host than the REST API (data.binance.vision), so building a file here must not hold up
    // the REST requests this runtime serves: it is built on the blocking pool.
    let csv_name = format!("{stem}.csv");
    let built = tokio::task::spawn_blocking(move || {
        zipped(&csv_name, &csv(&sim, &base, &quote, iv, from, end))
    })
    .await;
    let zip = match built {
        Ok(zip) => zip,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    if is_checksum {
        let sum = match faults.bad_checksum.contains(&stem) {
            true => Sha256::digest(b"not this file"),
            false => Sha256::digest(&zip),
        };
        let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
        return (StatusCode::OK, format!("{hex}  {stem}.zip\n")).into_response();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/zip")],
        zip,
    )
        .into_response()
}

/// The period's klines as REST serves them, one CSV line each.
fn csv(sim: &Sim, base: &str, quote: &str, iv: Interval, from: i64, end: i64) -> String {
    let step = iv.millis();
    let series = Series::new("binance", base, quote, step);
    let habits = sim.habits(candlepipe_core::Exchange::Binance.as_str());
    let now = now_ms();
    let per_ms = if from >= MICROS_FROM { 1000 } else { 1 };
    let mut out = String::new();
    let mut t = iv.open_of(from + step - 1);
    while t < end {
        let row = series
            .candle(t, now)
            .map(|c| match series.quiet(t, habits) {
                true => series.quiet_candle(t, habits),
                false => c,
            });
        if let Some(c) = row {
            out.push_str(&kline_fields(&c, step, per_ms).join(","));
            out.push('\n');
        }
        t += step;
    }
    out
}

/// A zip of one deflated file.
fn zipped(name: &str, body: &str) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    // Writing to memory cannot fail but for a bug; an empty body then shows it.
    let written = zip
        .start_file(name, options)
        .and_then(|()| zip.write_all(body.as_bytes()).map_err(Into::into))
        .and_then(|()| zip.finish());
    written.map(|c| c.into_inner()).unwrap_or_default()
}
