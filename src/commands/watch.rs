//! `candlepipe watch EXCHANGE SYMBOL INTERVAL`: asks the `stream` role to keep a series
//! live, prints each change as it comes, and renews the watch while it runs (the client's
//! [`candlepipe_client::Live`]).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use candlepipe_client::Client;
use futures::StreamExt;

use crate::config::Config;
use crate::connect;
use crate::times::format_instant;

#[derive(clap::Args)]
pub struct Args {
    /// binance, coinbase or kraken.
    exchange: String,
    /// Unified symbol, e.g. BTC/USDT.
    symbol: String,
    interval: String,
    /// Print each candle as the JSON object published on the live subject.
    #[arg(long)]
    pub(crate) json: bool,
    /// Exit after this many updates, at least 1 (default: run until interrupted).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
}

pub async fn run(cfg: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let nats = connect::nats(cfg, "candlepipe-watch", Duration::ZERO).await?;
    let client = Client::new(nats).with_prefix(&cfg.prefix);
    let symbol = super::unified_symbol(&args.exchange, &args.symbol);
    let mut live = match client.watch(&args.exchange, &symbol, &args.interval).await {
        Ok(live) => live,
        // The service's refusal (a wrong symbol or interval) is said as it is.
        Err(e @ candlepipe_client::Error::Service { .. }) => return Err(e.into()),
        Err(e) => {
            return Err(anyhow::Error::new(e).context("no watch (is a stream worker running?)"))
        }
    };
    eprintln!(
        "watching {} {} {} on {} (Ctrl-C to stop)",
        args.exchange,
        symbol,
        args.interval,
        live.subject()
    );
    let mut seen = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        tokio::select! {
            _ = super::termination() => break,
            update = live.next() => {
                let Some(update) = update else { break };
                let u = match update {
                    Ok(u) => u,
                    // The stream ends after its error (no stream role renews the watch).
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(ExitCode::FAILURE);
                    }
                };
                let c = &u.candle;
                let state = match (c.closed, u.confirmed, u.revised) {
                    (false, _, _) => "forming",
                    (true, _, true) => "closed, revised by the record",
                    (true, Some(false), _) => "closed, not confirmed yet",
                    (true, _, _) => "closed",
                };
                if args.json {
                    let live = candlepipe_core::watch::LiveCandle {
                        candle: c.clone(),
                        confirmed: u.confirmed,
                        revised: u.revised,
                    };
                    let _ = writeln!(out, "{}", serde_json::to_string(&live)?);
                } else {
                    let open = format_instant(c.t);
                    let _ = writeln!(
                        out,
                        "{open}  o {}  h {}  l {}  c {}  v {}  {state}",
                        c.o, c.h, c.l, c.c, c.v,
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
