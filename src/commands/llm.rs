//! `candlepipe llm route [--canary N]`: shows, or sets, the share of LLM traffic that goes
//! to the canary provider. Setting it reaches every analysis worker within a second and is
//! kept in Redis across restarts; `--canary 0` is the rollback.

use std::process::ExitCode;
use std::time::Duration;

use candlepipe_core::Subjects;
use candlepipe_llm::Provider;
use candlepipe_worker::analyze::llm_route;

use crate::config::Config;
use crate::connect::{self, redact};
use crate::times::format_instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Show or set the canary's traffic weight (percent).
    Route {
        /// New canary weight, 0..=100 (0 rolls back to the primary alone).
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        canary: Option<u8>,
    },
}

fn describe(p: &Option<Provider>) -> String {
    p.as_ref().map_or("not configured".into(), |p| {
        format!("{} ({} at {})", p.name, p.model, redact(&p.url))
    })
}

pub async fn run(cfg: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let Command::Route { canary } = args.command;
    if cfg.llm.canary.is_none() && canary.is_some_and(|w| w > 0) {
        eprintln!(
            "no canary is configured (CANDLEPIPE_LLM_CANARY_URL): there is nothing to \
             route calls to; only --canary 0 is accepted"
        );
        return Ok(ExitCode::from(2));
    }
    let redis = connect::redis(cfg, Duration::ZERO).await?;
    if let Some(weight) = canary {
        let nats = connect::nats(cfg, "candlepipe-llm", Duration::ZERO).await?;
        llm_route::set(
            &redis,
            &nats,
            &Subjects::new(&cfg.prefix),
            &cfg.redis_prefix,
            None,
            weight,
            "candlepipe llm route",
        )
        .await?;
        nats.flush().await?;
    }
    let state = llm_route::read(&redis, &cfg.redis_prefix).await?;
    println!("primary  {}", describe(&cfg.llm.primary));
    println!("canary   {}", describe(&cfg.llm.canary));
    match state {
        _ if cfg.llm.canary.is_none() => {
            println!("weight   none: every LLM call goes to the primary (no canary configured)")
        }
        Some(s) if !s.by.is_empty() => println!(
            "weight   {}% of LLM calls go to the canary (set by {} at {})",
            s.weight,
            s.by,
            format_instant(s.updated_ms)
        ),
        Some(s) => println!("weight   {}% of LLM calls go to the canary", s.weight),
        None => {
            println!("weight   not set yet (the first analysis worker sets the initial weight)")
        }
    }
    Ok(ExitCode::SUCCESS)
}
