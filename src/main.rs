//! `candlepipe`: one binary for every role, the producer CLI, the simulator and checks.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod commands;
mod config;
mod connect;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "candlepipe",
    version,
    about = "Cached, deduplicated, rate-limited crypto candles over NATS"
)]
struct Cli {
    /// Configuration file (default: $CANDLEPIPE_CONFIG, else ./candlepipe.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run worker roles until SIGTERM/SIGINT, then drain.
    Run(commands::run::Args),
    /// Ask for candles, as a producer would.
    Get(commands::get::Args),
    /// Serve the local exchange simulator (demos and tests only).
    Sim(commands::sim::Args),
    /// Check configuration, NATS, Redis and the exchanges.
    Check(commands::check::Args),
    /// Inspect, replay or purge dead-lettered jobs.
    Dlq(commands::dlq::Args),
    /// Cluster-wide totals: hit ratio, exchange calls, dead letters.
    Stats(commands::stats::Args),
    /// Page history into the cache within the request budget (resumable).
    Backfill(commands::backfill::Args),
    /// Generate load and measure throughput and latency (HDR histograms).
    Bench(commands::bench::Args),
}

fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CANDLEPIPE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var("CANDLEPIPE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let cfg = match config::Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Run(a) => commands::run::run(&cfg, a).await,
        Command::Get(a) => commands::get::run(&cfg, a).await,
        Command::Sim(a) => commands::sim::run(a).await,
        Command::Check(a) => commands::check::run(&cfg, a).await,
        Command::Dlq(a) => commands::dlq::run(&cfg, a).await,
        Command::Bench(a) => commands::bench::run(&cfg, a).await,
        Command::Backfill(a) => commands::backfill::run(&cfg, a).await,
        Command::Stats(a) => commands::stats::run(&cfg, a).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
