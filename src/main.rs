//! `candlepipe`: one binary for every role, the producer CLI, the simulator and checks.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod commands;
mod config;
mod connect;
mod errors;
mod otlp;
mod telemetry;
mod times;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "candlepipe",
    version,
    about = "Cached, deduplicated, rate-limited crypto candles and their analysis over NATS"
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
    /// Live candles of a series, from the exchange's stream, as they change.
    Watch(commands::watch::Args),
    /// Analyse symbols: indicators, a signal and optional LLM commentary.
    Analyze(commands::analyze::Args),
    /// LLM provider routing: show or set the canary's traffic weight.
    Llm(commands::llm::Args),
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
    /// Writes a range of closed candles to CSV or Parquet, through the cache (backfilling
    /// what it lacks, within the budget).
    Export(commands::export::Args),
    /// Generate load and measure throughput and latency (HDR histograms).
    Bench(candlepipe_bench::Args),
}

impl Command {
    /// Whether the command prints JSON: then its errors are JSON on stdout too.
    fn json(&self) -> bool {
        match self {
            Command::Get(a) => a.json,
            Command::Watch(a) => a.json,
            Command::Analyze(a) => a.json,
            Command::Stats(a) => a.json,
            Command::Dlq(a) => a.json(),
            _ => false,
        }
    }
}

/// The default log filter.
const LOG_DEFAULT: &str = "info,async_nats=warn";

/// The log filter: `CANDLEPIPE_LOG`, else `RUST_LOG` (the tracing ecosystem's convention),
/// else [`LOG_DEFAULT`]; empty values count as unset.
fn log_filter(candlepipe_log: Option<String>, rust_log: Option<String>) -> String {
    [candlepipe_log, rust_log]
        .into_iter()
        .flatten()
        .find(|f| !f.trim().is_empty())
        .unwrap_or_else(|| LOG_DEFAULT.to_string())
}

/// Log lines to stderr (filter from [`log_filter`], `CANDLEPIPE_LOG_FORMAT=json`), and the
/// spans to an OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: its provider,
/// to flush at exit.
fn init_logging() -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let wanted = log_filter(
        std::env::var("CANDLEPIPE_LOG").ok(),
        std::env::var("RUST_LOG").ok(),
    );
    let filter = EnvFilter::try_new(&wanted).unwrap_or_else(|e| {
        eprintln!("warning: log filter {wanted:?} is not valid ({e}); using {LOG_DEFAULT:?}");
        EnvFilter::new(LOG_DEFAULT)
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt = if std::env::var("CANDLEPIPE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let provider = otlp::wanted()
        .then(|| otlp::provider(tokio::runtime::Handle::current()))
        .and_then(|p| {
            p.map_err(|e| eprintln!("warning: traces not exported: {e}"))
                .ok()
        });
    let export = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(otlp::tracer(p)));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(export)
        .init();
    provider
}

/// mimalloc instead of the system allocator: a Redis hit allocates and frees values of a
/// few KB per request, which glibc's allocator consolidated and unlinked at a measurable
/// cost (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let traces = init_logging();
    let json = cli.command.json();
    let cfg = match config::Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            errors::report(&anyhow::Error::new(errors::Input(e.to_string())), json);
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Run(a) => commands::run::run(&cfg, a).await,
        Command::Get(a) => commands::get::run(&cfg, a).await,
        Command::Watch(a) => commands::watch::run(&cfg, a).await,
        Command::Analyze(a) => commands::analyze::run(&cfg, a).await,
        Command::Llm(a) => commands::llm::run(&cfg, a).await,
        Command::Sim(a) => commands::sim::run(a).await,
        Command::Check(a) => commands::check::run(&cfg, a).await,
        Command::Dlq(a) => commands::dlq::run(&cfg, a).await,
        Command::Bench(a) => commands::bench::run(&cfg, a).await,
        Command::Backfill(a) => commands::backfill::run(&cfg, a).await,
        Command::Export(a) => commands::export::run(&cfg, a).await,
        Command::Stats(a) => commands::stats::run(&cfg, a).await,
    };
    if let Some(provider) = traces {
        // The batch exporter's thread sends what is left through this runtime.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = flushed {
            eprintln!("warning: traces not all exported: {e}");
        }
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            errors::report(&e, json);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod compose_tests {
    //! `docker-compose.yml` cannot run here (no Docker engine), so what can be checked is:
    //! every service command parses as a real `candlepipe` invocation, every mounted file
    //! exists, and the ports agree with the NATS config.

    use clap::Parser;

    use super::Cli;

    fn compose() -> serde_yaml::Value {
        let mut doc: serde_yaml::Value =
            serde_yaml::from_str(include_str!("../docker-compose.yml"))
                .expect("docker-compose.yml parses");
        doc.apply_merge().expect("the <<: merge keys resolve");
        doc
    }

    #[test]
    fn every_candlepipe_service_runs_a_real_subcommand() {
        let doc = compose();
        let services = doc["services"].as_mapping().expect("services");
        let mut checked = 0;
        for (name, svc) in services {
            if svc["image"].as_str() != Some("candlepipe:latest") {
                continue;
            }
            let args: Vec<String> = svc["command"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{name:?} has a command"))
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            let argv = std::iter::once("candlepipe".to_string()).chain(args.clone());
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!(
                    "service {name:?}: `candlepipe {}` does not parse: {e}",
                    args.join(" ")
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 6, "ingest, fill, analyze, stream, gateway and sim");
        assert_eq!(doc["services"]["fill"]["deploy"]["replicas"], 2);
        assert_eq!(doc["services"]["stream"]["deploy"]["replicas"], 2);
    }

    #[test]
    fn mounted_files_exist_and_ports_agree() {
        let doc = compose();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for (name, svc) in doc["services"].as_mapping().unwrap() {
            for v in svc["volumes"].as_sequence().into_iter().flatten() {
                let host = v.as_str().unwrap().split(':').next().unwrap();
                if host.starts_with("./") {
                    assert!(
                        root.join(host).exists(),
                        "service {name:?} mounts missing {host}"
                    );
                }
            }
        }
        let nats_conf = include_str!("../nats/jetstream.conf");
        assert!(nats_conf.lines().any(|l| l.trim() == "port: 4222"));
        assert_eq!(doc["services"]["nats"]["ports"][0], "4222:4222");
        let env = &doc["x-candlepipe"]["environment"];
        // No anonymous NATS: the workers log in, with the permissions the server includes.
        assert_eq!(
            env["CANDLEPIPE_NATS_URL"],
            "nats://candlepipe:${CANDLEPIPE_NATS_WORKER_PASSWORD:?set CANDLEPIPE_NATS_WORKER_PASSWORD}@nats:4222"
        );
        assert!(nats_conf
            .lines()
            .any(|l| l.trim() == "include ./permissions.conf"));
        let nats_env = &doc["services"]["nats"]["environment"];
        for user in ["WORKER", "GATEWAY", "PRODUCER", "OPERATOR"] {
            assert!(
                nats_env[format!("CANDLEPIPE_NATS_{user}_PASSWORD").as_str()].is_string(),
                "the nats service gets the {user} password"
            );
        }
        // The gateway logs in as `gateway` (a producer's permissions), the rest as before.
        let gateway_env = &doc["services"]["gateway"]["environment"];
        assert_eq!(
            gateway_env["CANDLEPIPE_NATS_URL"],
            "nats://gateway:${CANDLEPIPE_NATS_GATEWAY_PASSWORD:?set CANDLEPIPE_NATS_GATEWAY_PASSWORD}@nats:4222"
        );
        assert_eq!(gateway_env["CANDLEPIPE_REDIS_URL"], "redis://redis:6379");
        assert!(include_str!("../nats/permissions.conf")
            .contains("{ user: gateway, password: $CANDLEPIPE_NATS_GATEWAY_PASSWORD, permissions: $HTTP_GATEWAY }"));
        assert_eq!(env["CANDLEPIPE_REDIS_URL"], "redis://redis:6379");
        let sim_port = doc["services"]["sim"]["command"][2]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_string();
        assert!(doc.get("x-candlepipe").is_some());
        let text = include_str!("../docker-compose.yml");
        assert!(text.contains(&format!("CANDLEPIPE_BINANCE_URL=http://sim:{sim_port}")));
        assert!(text.contains(&format!("CANDLEPIPE_LLM_URL=http://sim:{sim_port}")));
        assert!(root.join("Dockerfile").exists());
    }
}

#[cfg(test)]
mod log_tests {
    use super::*;

    #[test]
    fn candlepipe_log_then_rust_log_then_the_default() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(log_filter(s("debug"), s("warn")), "debug");
        assert_eq!(log_filter(None, s("warn")), "warn");
        assert_eq!(log_filter(s(" "), s("warn")), "warn");
        assert_eq!(log_filter(None, None), LOG_DEFAULT);
    }
}
