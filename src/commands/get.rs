//! `candlepipe get EXCHANGE SYMBOL INTERVAL`: one request on `candlepipe.candles.get`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use candlepipe_client::Client;
use candlepipe_core::{CandlesRequest, Encoding};

use crate::config::Config;
use crate::connect;
use crate::times::{format_instant, parse_instant};

#[derive(clap::Args)]
pub struct Args {
    /// binance, coinbase or kraken.
    exchange: String,
    /// Unified symbol, e.g. BTC/USDT.
    symbol: String,
    /// 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w.
    interval: String,
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Newest open time wanted (RFC 3339, a date, or ms); asks for closed candles only.
    #[arg(long)]
    end: Option<String>,
    /// How fresh the forming candle must be.
    #[arg(long)]
    max_age_ms: Option<i64>,
    /// Answer from cache at once (marked stale) and refresh in the background.
    #[arg(long)]
    allow_stale: bool,
    /// `previous`: intervals without trades become zero-volume candles at the previous
    /// close, marked synthetic.
    #[arg(long, value_enum, default_value_t = FillGaps::None)]
    fill_gaps: FillGaps,
    /// Print the reply as JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Send the request as MessagePack.
    #[arg(long)]
    msgpack: bool,
    /// How long to wait for the reply (sent as the request's `timeout_ms`: the answer comes
    /// before it, up to the server's cap).
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

/// What to do with intervals the exchange has no candle for.
#[derive(Clone, Copy, clap::ValueEnum)]
enum FillGaps {
    /// Leave them out (the reply lists them in `missing`).
    None,
    /// Zero-volume candles at the previous close, marked synthetic.
    Previous,
}

pub async fn run(cfg: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let fill_gaps = match args.fill_gaps {
        FillGaps::None => "none",
        FillGaps::Previous => "previous",
    };
    let request = CandlesRequest {
        symbol: super::unified_symbol(&args.exchange, &args.symbol),
        exchange: args.exchange,
        interval: args.interval,
        limit: Some(args.limit),
        end: args
            .end
            .as_deref()
            .map(|s| parse_instant(s).context("--end"))
            .transpose()?,
        max_age_ms: args.max_age_ms,
        allow_stale: Some(args.allow_stale),
        timeout_ms: Some(args.timeout_ms as i64),
        fill_gaps: Some(fill_gaps.to_string()),
    };
    let enc = if args.msgpack {
        Encoding::Msgpack
    } else {
        Encoding::Json
    };
    let nats = connect::nats(cfg, "candlepipe-get", Duration::ZERO).await?;
    let client = Client::new(nats)
        .with_prefix(&cfg.prefix)
        .with_encoding(enc);
    let result = client.candles(&request).await;
    // Output goes to a pipe as often as to a terminal: a closed pipe (`| head`) is not an error.
    let mut out = std::io::stdout().lock();
    match result {
        Ok(r) => {
            let _ = if args.json {
                writeln!(out, "{}", serde_json::to_string(&r)?)
            } else {
                print_table(&mut out, &r)
            };
            Ok(ExitCode::SUCCESS)
        }
        // Said by main, as every command's error (JSON on stdout with --json).
        Err(e) => Err(e.into()),
    }
}

fn print_table(out: &mut impl Write, r: &candlepipe_core::CandlesReply) -> std::io::Result<()> {
    writeln!(
        out,
        "{} {} {}{}: {} candles from {}{}{}",
        r.exchange,
        r.symbol,
        r.interval,
        r.aggregated_from
            .map(|b| format!(" (built from {b})"))
            .unwrap_or_default(),
        r.candles.len(),
        r.source.as_str(),
        if r.stale { " (stale)" } else { "" },
        if r.complete {
            ""
        } else {
            " (incomplete: the exchange cannot serve all of the window yet or any more)"
        }
    )?;
    if !r.missing.is_empty() {
        writeln!(
            out,
            "no trades (no candle) at: {}",
            r.missing
                .iter()
                .map(|&t| format_instant(t))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    writeln!(
        out,
        "{:<22} {:>14} {:>14} {:>14} {:>14} {:>16}  closed",
        "open time (UTC)", "open", "high", "low", "close", "volume"
    )?;
    for c in &r.candles {
        writeln!(
            out,
            "{:<22} {:>14} {:>14} {:>14} {:>14} {:>16}  {}",
            format_instant(c.t),
            c.o,
            c.h,
            c.l,
            c.c,
            c.v,
            match (c.closed, c.synthetic) {
                (_, true) => "synthetic",
                (true, false) => "yes",
                (false, false) => "no",
            }
        )?;
    }
    Ok(())
}
