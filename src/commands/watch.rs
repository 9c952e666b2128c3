//! `candlepipe watch EXCHANGE SYMBOL INTERVAL`: asks the `stream` role to keep a series
//! live, prints each change as it comes, and renews the watch while it runs.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use candlepipe_core::watch::{WatchReply, WatchRequest};
use candlepipe_core::{Candle, Subjects, WireError};
use futures::StreamExt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::Config;
use crate::connect;

#[derive(clap::Args)]
pub struct Args {
    /// binance or kraken (Coinbase has no candle stream).
    exchange: String,
    /// Unified symbol, e.g. BTC/USDT.
    symbol: String,
    interval: String,
    /// Print each candle as the JSON object published on the live subject.
    #[arg(long)]
    json: bool,
    /// Exit after this many updates (default: run until interrupted).
    #[arg(long)]
    count: Option<u64>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Reply {
    Ok(WatchReply),
    Err { error: WireError },
}

async fn watch(
    nats: &async_nats::Client,
    subject: &str,
    req: &WatchRequest,
) -> anyhow::Result<WatchReply> {
    let msg = nats
        .request(subject.to_string(), Bytes::from(serde_json::to_vec(req)?))
        .await
        .with_context(|| format!("no reply on {subject} (is a stream worker running?)"))?;
    match serde_json::from_slice::<Reply>(&msg.payload).context("undecodable watch reply")? {
        Reply::Ok(r) => Ok(r),
        Reply::Err { error } => anyhow::bail!("{}: {}", error.code, error.message),
    }
}

pub async fn run(cfg: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let req = WatchRequest {
        exchange: args.exchange,
        symbol: args.symbol,
        interval: args.interval,
    };
    let nats = connect::nats(cfg, "candlepipe-watch", Duration::ZERO).await?;
    let watch_subject = Subjects::new(&cfg.prefix).candles_watch();
    let first = watch(&nats, &watch_subject, &req).await?;
    let mut updates = nats.subscribe(first.subject.clone()).await?;
    eprintln!(
        "watching {} {} {} on {} (Ctrl-C to stop)",
        req.exchange, req.symbol, req.interval, first.subject
    );
    let renew_every = Duration::from_millis((first.expires_in_ms / 3).max(1_000));
    let mut renew =
        tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
    let mut seen = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        tokio::select! {
            _ = super::termination() => break,
            _ = renew.tick() => {
                if let Err(e) = watch(&nats, &watch_subject, &req).await {
                    eprintln!("warning: watch not renewed: {e:#}");
                }
            }
            msg = updates.next() => {
                let Some(msg) = msg else { break };
                if args.json {
                    let _ = writeln!(out, "{}", String::from_utf8_lossy(&msg.payload));
                } else if let Ok(c) = serde_json::from_slice::<Candle>(&msg.payload) {
                    let open = OffsetDateTime::from_unix_timestamp(c.t.div_euclid(1000))
                        .ok()
                        .and_then(|t| t.format(&Rfc3339).ok())
                        .unwrap_or_else(|| c.t.to_string());
                    let _ = writeln!(
                        out,
                        "{open}  o {}  h {}  l {}  c {}  v {}  {}",
                        c.o, c.h, c.l, c.c, c.v,
                        if c.closed { "closed" } else { "forming" }
                    );
                }
                let _ = out.flush();
                seen += 1;
                if args.count.is_some_and(|n| seen >= n) {
                    break;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
