//! `candlepipe analyze SYMBOL...`: one request on `candlepipe.analysis.run`, printed as a
//! table with the commentary and the LLM's total tokens and cost.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use candlepipe_client::Client;
use candlepipe_core::analysis::{LlmNote, SymbolAnalysis};
use candlepipe_core::{AnalysisReply, AnalysisRequest};

use crate::config::Config;
use crate::connect;

#[derive(clap::Args)]
pub struct Args {
    /// Unified symbols, e.g. BTC/USDT ETH/USDT.
    #[arg(required = true)]
    symbols: Vec<String>,
    #[arg(long, default_value = "binance")]
    exchange: String,
    #[arg(long, default_value = "1h")]
    interval: String,
    /// Candles per symbol (1..=1000; EMA50 needs 50, its slope 55).
    #[arg(long, default_value_t = 200)]
    lookback: i64,
    /// Add LLM commentary (within the cluster's budget).
    #[arg(long)]
    llm: bool,
    /// Print the reply as JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// How long to wait for the analysis (sent as the request's `timeout_ms`).
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
}

pub async fn run(cfg: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let request = AnalysisRequest {
        symbols: args
            .symbols
            .iter()
            .map(|s| super::unified_symbol(&args.exchange, s))
            .collect(),
        exchange: args.exchange,
        interval: Some(args.interval),
        lookback: Some(args.lookback),
        llm: Some(args.llm),
        timeout_ms: Some(args.timeout_ms as i64),
    };
    let nats = connect::nats(cfg, "candlepipe-analyze", Duration::ZERO).await?;
    let client = Client::new(nats).with_prefix(&cfg.prefix);
    let result = client.analyze(&request).await;
    let mut out = std::io::stdout().lock();
    match result {
        Ok(r) => {
            let _ = if args.json {
                writeln!(out, "{}", serde_json::to_string(&r)?)
            } else {
                print_table(&mut out, &r)
            };
            Ok(if r.results.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        // Said by main, as every command's error (JSON on stdout with --json).
        Err(e) => Err(e.into()),
    }
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or("-".into(), |v| v.to_string())
}

fn wire_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| "-".into())
}

fn row(name: &str, a: &SymbolAnalysis) -> String {
    format!(
        "{:<12} {:>14} {:<8} {:<10} {:>6} {:>6} {:<6} {:<24} {}",
        name,
        a.last_close,
        wire_name(&a.trend),
        a.volatility.as_ref().map_or("-".into(), wire_name),
        a.rsi14.map_or("-".into(), |v| format!("{v:.1}")),
        a.atr_pct.map_or("-".into(), |v| format!("{v:.2}")),
        wire_name(&a.signal),
        a.support.join(" "),
        a.resistance.join(" "),
    )
}

fn llm_line(n: &LlmNote) -> String {
    let who = format!("{} {}", opt(&n.provider), opt(&n.model));
    match (&n.error, n.cached) {
        (Some(e), _) => format!(
            "no commentary: {} ({})",
            wire_name(e),
            n.message.as_deref().unwrap_or("")
        ),
        (None, true) => format!("{who}, cached: no cost"),
        (None, false) => format!(
            "{who}, {} + {} tokens, ${:.6}",
            n.prompt_tokens, n.completion_tokens, n.cost_usd
        ),
    }
}

fn print_table(out: &mut impl Write, r: &AnalysisReply) -> std::io::Result<()> {
    writeln!(
        out,
        "{} {}: {} analysed, {} failed",
        r.exchange,
        r.interval,
        r.results.len(),
        r.errors.len()
    )?;
    writeln!(
        out,
        "{:<12} {:>14} {:<8} {:<10} {:>6} {:>6} {:<6} {:<24} resistance",
        "symbol", "last close", "trend", "volatility", "rsi14", "atr%", "signal", "support"
    )?;
    for (name, a) in &r.results {
        writeln!(out, "{}", row(name, a))?;
    }
    for (name, e) in &r.errors {
        writeln!(out, "{name:<12} error {}: {}", e.code, e.message)?;
    }
    let with_llm: Vec<_> = r
        .results
        .iter()
        .filter_map(|(n, a)| a.llm.as_ref().map(|l| (n, a, l)))
        .collect();
    if !with_llm.is_empty() {
        writeln!(out)?;
        for (name, a, note) in with_llm {
            writeln!(out, "{name}  [{}]", llm_line(note))?;
            if let Some(text) = &a.commentary {
                writeln!(out, "  {text}")?;
            }
        }
        writeln!(
            out,
            "\nLLM total: {} prompt + {} completion tokens, ${:.6}",
            r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.cost_usd
        )?;
    }
    Ok(())
}
