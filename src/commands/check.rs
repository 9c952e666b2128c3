//! `candlepipe check`: is the configuration usable and is everything it names reachable
//! (NATS, Redis, the exchanges, the LLM providers)?

use std::process::ExitCode;
use std::time::Duration;

use candlepipe_core::{now_ms, Exchange, Interval, SeriesKey, Subjects, Symbol};
use candlepipe_exchange::budget::Demand;
use candlepipe_exchange::markets::Market;
use candlepipe_exchange::stream::{self, socket};
use candlepipe_exchange::{ExchangeClient, FetchError};
use candlepipe_llm::LlmClient;
use candlepipe_worker::cluster::roll_call;
use candlepipe_worker::Role;

use crate::config::Config;
use crate::connect::{self, redact};
use crate::errors;

#[derive(clap::Args)]
pub struct Args {
    /// Skip the exchanges' REST requests and WebSocket connections (e.g. on a machine
    /// without internet).
    #[arg(long)]
    no_exchanges: bool,
}

struct Report {
    failed: usize,
}

impl Report {
    fn line(&mut self, ok: Result<String, String>, what: &str) {
        match ok {
            Ok(detail) => println!("ok    {what:<10} {detail}"),
            Err(detail) => {
                self.failed += 1;
                println!("FAIL  {what:<10} {detail}");
            }
        }
    }
}

/// `GET /v1/models` of each configured provider: reachable, key accepted, model served and
/// priced.
async fn check_llm(cfg: &Config, r: &mut Report) {
    let providers: Vec<_> = cfg
        .llm
        .primary
        .iter()
        .chain(cfg.llm.canary.iter())
        .collect();
    if providers.is_empty() {
        println!(
            "skip  {:<10} no LLM configured (CANDLEPIPE_LLM_URL); analyses come without commentary",
            "llm"
        );
        return;
    }
    // A model without a price is never called, reachable or not.
    for p in &providers {
        if cfg.llm.prices.get(&p.model).is_none() {
            r.line(
                Err(format!(
                    "{}: no price for {}; it would never be called \
                     (CANDLEPIPE_LLM_PRICES or CANDLEPIPE_LLM_PRICES_FILE)",
                    p.name, p.model
                )),
                "llm",
            );
        }
    }
    let client = match LlmClient::new(Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => return r.line(Err(e.to_string()), "llm"),
    };
    for p in providers {
        let url = redact(&p.url);
        let res = match client.models(p).await {
            Err(e) => Err(format!("{} at {url}: {e}", p.name)),
            Ok(models) if !models.contains(&p.model) => Err(format!(
                "{} at {url} does not serve {} (it has: {})",
                p.name,
                p.model,
                models.join(", ")
            )),
            Ok(models) => Ok(format!(
                "{} at {url}: {} served ({} models), key {}",
                p.name,
                p.model,
                models.len(),
                if p.api_key.is_some() {
                    "set"
                } else {
                    "not set"
                }
            )),
        };
        r.line(res, "llm");
    }
}

/// The roll call: which roles the running processes have. Candles need an ingest and a
/// fill worker; analyses and live streams their own roles, said when none runs.
async fn check_workers(cfg: &Config, nats: &async_nats::Client, r: &mut Report) {
    let subject = Subjects::new(&cfg.prefix).roll_call();
    let present = match roll_call::call(nats, subject.clone(), ROLL_CALL_WAIT).await {
        Ok(p) => p,
        Err(e) => return r.line(Err(format!("roll call on {subject}: {e}")), "workers"),
    };
    let count = |role: &str| {
        present
            .iter()
            .filter(|p| p.roles.iter().any(|r| r == role))
            .count()
    };
    let running: Vec<String> = Role::ALL
        .iter()
        .map(|role| (role.as_str(), count(role.as_str())))
        .filter(|(_, n)| *n > 0)
        .map(|(role, n)| format!("{role} {n}"))
        .collect();
    if present.is_empty() {
        return r.line(
            Err(format!(
                "no worker answered the roll call on {subject}: requests would go unanswered \
                 (start one with `candlepipe run all`)"
            )),
            "workers",
        );
    }
    let processes = match present.len() {
        1 => "1 process".to_string(),
        n => format!("{n} processes"),
    };
    let summary = format!("{processes}: {}", running.join(", "));
    let lacking: Vec<&str> = ["ingest", "fill"]
        .into_iter()
        .filter(|role| count(role) == 0)
        .collect();
    if !lacking.is_empty() {
        return r.line(
            Err(format!(
                "{summary}; no {} worker: candles.get cannot be answered",
                lacking.join(" or ")
            )),
            "workers",
        );
    }
    r.line(Ok(summary), "workers");
    for (role, without) in [
        ("analyze", "analyses are not answered"),
        ("stream", "no series is kept live (REST only)"),
    ] {
        if count(role) == 0 {
            println!("warn  {:<10} no {role} worker: {without}", "workers");
        }
    }
}

/// How long the roll call waits for answers.
const ROLL_CALL_WAIT: Duration = Duration::from_millis(500);

fn probe_symbol(ex: Exchange) -> &'static str {
    match ex {
        Exchange::Binance => "BTC/USDT",
        Exchange::Coinbase | Exchange::Kraken => "BTC/USD",
    }
}

pub async fn run(cfg: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let mut r = Report { failed: 0 };
    let source = cfg
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "defaults + environment".into());
    r.line(Ok(source), "config");
    if cfg.insecure_dev_key {
        println!(
            "warn  {:<10} CANDLEPIPE_HMAC_KEY is not set: workers refuse to start without it (or --dev, a local trial)",
            "hmac"
        );
    } else {
        println!("ok    {:<10} key id {}", "hmac", cfg.keyring.current_id());
    }

    let nats = match connect::nats(cfg, "candlepipe-check", Duration::ZERO).await {
        Ok(c) => {
            // The raw API call: its answer has the same shape on every server version.
            let info = c.request("$JS.API.INFO", bytes::Bytes::new()).await;
            let streams = info
                .map_err(|e| e.to_string())
                .and_then(|m| {
                    serde_json::from_slice::<serde_json::Value>(&m.payload)
                        .map_err(|e| e.to_string())
                })
                .and_then(|v| match v.get("error") {
                    Some(err) => Err(err.to_string()),
                    None => Ok(v.get("streams").and_then(|s| s.as_u64()).unwrap_or(0)),
                });
            match streams {
                Ok(n) => r.line(
                    Ok(format!(
                        "{} (JetStream: {n} streams)",
                        redact(&cfg.nats_url)
                    )),
                    "nats",
                ),
                Err(e) => r.line(
                    Err(format!(
                        "{}: JetStream unavailable: {e}",
                        redact(&cfg.nats_url)
                    )),
                    "nats",
                ),
            }
            Some(c)
        }
        Err(e) => {
            r.line(Err(errors::text(&e)), "nats");
            None
        }
    };
    if let Some(nats) = &nats {
        check_workers(cfg, nats, &mut r).await;
    }
    drop(nats);

    match connect::redis(cfg, Duration::ZERO).await {
        Ok(mut conn) => {
            let pong: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
            r.line(
                pong.map(|_| redact(&cfg.redis_url))
                    .map_err(|e| e.to_string()),
                "redis",
            );
        }
        Err(e) => r.line(Err(errors::text(&e)), "redis"),
    }

    if !args.no_exchanges {
        let client = ExchangeClient::new(cfg.exchanges.clone())?;
        let now = now_ms();
        for ex in Exchange::ALL {
            let symbol = Symbol::parse(probe_symbol(ex)).map_err(|e| anyhow::anyhow!(e))?;
            let series = SeriesKey::new(ex, symbol, Interval::M1);
            let t = Interval::M1.open_of(now);
            let url = &cfg.exchanges.endpoint(ex).url;
            let res = async {
                let markets = client.markets(ex, Demand::Bulk).await?;
                let native = markets.get(&series.symbol).cloned().ok_or_else(|| {
                    FetchError::UnknownSymbol(format!(
                        "{} is not in its market list",
                        series.symbol
                    ))
                })?;
                let candles = client
                    .fetch(
                        &series,
                        &Market::named(native),
                        t - 60_000,
                        t,
                        now,
                        Demand::Bulk,
                    )
                    .await?
                    .candles;
                Ok::<_, FetchError>(format!(
                    "{url} ({} markets; {} candles for {})",
                    markets.len(),
                    candles.len(),
                    probe_symbol(ex)
                ))
            }
            .await
            .map_err(|e| format!("{url}: {e}"));
            r.line(res, ex.as_str());
        }
        // The streams' WebSockets: connected to and closed (the stream role's only way to
        // the exchanges' live candles).
        let live = cfg.role_settings().live;
        for ex in Exchange::ALL {
            let url = stream::url(ex, live.url(ex));
            let res = match socket::connect(&url, Duration::from_secs(10)).await {
                Ok(mut ws) => {
                    let _ = ws.close(None).await;
                    Ok(format!("{url}: connected"))
                }
                Err(e) => Err(format!("{url}: {e}")),
            };
            r.line(res, &format!("{ex} ws"));
        }
    }
    check_llm(cfg, &mut r).await;
    Ok(if r.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
