//! `candlepipe export EXCHANGE SYMBOL INTERVAL --since DATE [--until DATE] --format csv|parquet
//! --out FILE`: a range of closed candles, through the cache: what the store lacks is
//! backfilled first (within the budget, with progress, as `candlepipe backfill`), then the
//! range is read from the store (verified like every read) and written with the decimals
//! exactly as the exchange sent them. It never writes a short file: a range longer than the
//! store keeps per series (`CANDLEPIPE_HISTORY_CAP`) is refused up front, and a range the
//! store does not cover whole once filled (Kraken's OHLC keeps only its last 720 candles)
//! fails naming what is missing, and nothing is written.
//!
//! CSV columns: `open_time_ms,open_time,open,high,low,close,volume,closed`. Parquet: `open_time`
//! as a UTC millisecond timestamp, the prices and the volume as strings (an exchange's scale
//! varies from row to row, which one decimal column type cannot hold without rewriting the
//! digits; `pl.col("close").cast(pl.Decimal)` or `pd.to_numeric` turn them into numbers),
//! `closed` as a boolean.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use candlepipe_core::{Candle, ErrorCode, Millis, WireError};
use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::backfill;
use crate::config::Config;
use crate::errors::Input;
use crate::times::format_instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Parquet,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    range: backfill::Range,
    #[arg(long, value_enum)]
    format: Format,
    /// Where to write (replaced when it exists).
    #[arg(long)]
    out: PathBuf,
    /// Without `CANDLEPIPE_HMAC_KEY`, sign with the public development key (a local trial).
    #[arg(long)]
    dev: bool,
}

/// Candles read from the store at a time.
const READ_PAGE: i64 = 10_000;

pub async fn run(cfg: &Config, args: Args) -> anyhow::Result<ExitCode> {
    cfg.require_hmac_key(args.dev)?;
    let (series, from, to) = args.range.resolve()?;
    let step = series.interval.millis();
    let slots = (to - from) / step + 1;
    if slots as usize > cfg.history_cap {
        return Err(Input(format!(
            "{series} from {} to {} is {slots} candles, more than the store keeps per series \
             (CANDLEPIPE_HISTORY_CAP={}): export at most {} candles at a time (a shorter \
             --since/--until), or raise CANDLEPIPE_HISTORY_CAP",
            format_instant(from),
            format_instant(to),
            cfg.history_cap,
            cfg.history_cap
        ))
        .into());
    }
    // Written next to the target, then moved over it: a reader never sees half a file. Both
    // places are tried before anything is fetched.
    let partial = args.out.with_extension("partial");
    writable(&partial, &args.out)?;
    let filled =
        backfill::fill_range(cfg, &series, from, to, 1000, backfill::Route::Cheapest).await?;
    let mut candles: Vec<Candle> = Vec::with_capacity(filled.slots as usize);
    let mut missing: Vec<(Millis, Millis)> = Vec::new();
    let mut cursor = from;
    while cursor <= to {
        let end = (cursor + (READ_PAGE - 1) * step).min(to);
        match filled.store.read(&series, cursor, end).await? {
            Some(read) => {
                missing.extend(read.state.coverage.gaps(cursor, end, step));
                candles.extend(
                    read.candles
                        .into_iter()
                        .filter(|c| c.t >= cursor && c.t <= end),
                );
            }
            None => missing.push((cursor, end)),
        }
        cursor = end + step;
    }
    if !missing.is_empty() {
        let ranges: Vec<String> = missing
            .iter()
            .take(10)
            .map(|(a, b)| format!("{} to {}", format_instant(*a), format_instant(*b)))
            .collect();
        let slots_missing: i64 = missing.iter().map(|(a, b)| (b - a) / step + 1).sum();
        return Err(WireError::new(
            ErrorCode::HistoryUnavailable,
            format!(
                "{series}: {slots_missing} of {slots} candles could not be had (nothing written to {}): {}{}",
                args.out.display(),
                ranges.join(", "),
                if missing.len() > 10 { ", …" } else { "" }
            ),
        )
        .into());
    }
    match args.format {
        Format::Csv => write_csv(&partial, &candles),
        Format::Parquet => write_parquet(&partial, &candles),
    }
    .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("moving the export to {}", args.out.display()))?;
    println!(
        "exported {} candles of {series} ({} to {}) to {}; {}",
        candles.len(),
        format_instant(from),
        format_instant(to),
        args.out.display(),
        filled.route(series.exchange)
    );
    Ok(ExitCode::SUCCESS)
}

/// Refuses an output path the export could not write or move into place: a directory, a
/// folder that does not exist or is not writable.
fn writable(partial: &Path, out: &Path) -> anyhow::Result<()> {
    let refuse = |why: String| -> anyhow::Result<()> {
        Err(Input(format!("--out {}: {why}", out.display())).into())
    };
    if out.is_dir() {
        return refuse("is a directory".into());
    }
    if let Err(e) = std::fs::File::create(partial) {
        return refuse(format!("cannot write {} ({e})", partial.display()));
    }
    let _ = std::fs::remove_file(partial);
    Ok(())
}

fn write_csv(path: &Path, candles: &[Candle]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "open_time_ms,open_time,open,high,low,close,volume,closed"
    )?;
    for c in candles {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            c.t,
            format_instant(c.t),
            c.o,
            c.h,
            c.l,
            c.c,
            c.v,
            c.closed
        )?;
    }
    out.flush()?;
    Ok(())
}

const PARQUET_SCHEMA: &str = "
message candles {
  REQUIRED INT64 open_time (TIMESTAMP(MILLIS,true));
  REQUIRED BYTE_ARRAY open (STRING);
  REQUIRED BYTE_ARRAY high (STRING);
  REQUIRED BYTE_ARRAY low (STRING);
  REQUIRED BYTE_ARRAY close (STRING);
  REQUIRED BYTE_ARRAY volume (STRING);
  REQUIRED BOOLEAN closed;
}";

/// Rows a Parquet row group holds.
const ROW_GROUP: usize = 100_000;

fn write_parquet(path: &Path, candles: &[Candle]) -> anyhow::Result<()> {
    let schema = Arc::new(parse_message_type(PARQUET_SCHEMA)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut writer = SerializedFileWriter::new(std::fs::File::create(path)?, schema, props)?;
    for group in candles.chunks(ROW_GROUP) {
        let times: Vec<i64> = group.iter().map(|c| c.t).collect();
        let text = |f: fn(&Candle) -> String| -> Vec<ByteArray> {
            group
                .iter()
                .map(|c| ByteArray::from(f(c).into_bytes()))
                .collect()
        };
        let decimals = [
            text(|c| c.o.to_string()),
            text(|c| c.h.to_string()),
            text(|c| c.l.to_string()),
            text(|c| c.c.to_string()),
            text(|c| c.v.to_string()),
        ];
        let closed: Vec<bool> = group.iter().map(|c| c.closed).collect();
        let mut rows = writer.next_row_group()?;
        let mut column = 0;
        while let Some(mut w) = rows.next_column()? {
            match column {
                0 => {
                    w.typed::<Int64Type>().write_batch(&times, None, None)?;
                }
                1..=5 => {
                    w.typed::<ByteArrayType>()
                        .write_batch(&decimals[column - 1], None, None)?;
                }
                _ => {
                    w.typed::<BoolType>().write_batch(&closed, None, None)?;
                }
            }
            w.close()?;
            column += 1;
        }
        rows.close()?;
    }
    writer.close()?;
    Ok(())
}
