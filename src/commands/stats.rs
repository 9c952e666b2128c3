//! `candlepipe stats`: the cluster's totals from Redis and the dead-letter depth from NATS.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use candlepipe_core::{now_ms, ErrorCode, Subjects};
use candlepipe_worker::analyze::llm_spend;
use candlepipe_worker::cluster::stats as cluster_stats;
use serde_json::json;

use crate::config::Config;
use crate::connect;

#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

pub async fn run(cfg: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let mut redis = connect::redis(cfg, Duration::ZERO).await?;
    let totals = cluster_stats::read(&mut redis, &cfg.redis_prefix).await?;
    let get = |k: &str| totals.get(k).copied().unwrap_or(0);
    let (l1, from_redis, exchange, streamed) = (
        get("requests:l1"),
        get("requests:redis"),
        get("requests:exchange"),
        get("requests:stream"),
    );
    let answered = l1 + from_redis + exchange + streamed;
    let hit_ratio = if answered == 0 {
        0.0
    } else {
        (l1 + from_redis + streamed) as f64 / answered as f64
    };

    let errors = Errors::of(&totals);

    let llm = llm_totals(&mut redis, &cfg.redis_prefix).await?;
    let spent_today = llm_spend::spent_on(&redis, &cfg.redis_prefix, now_ms()).await?;
    let budget = cfg.llm.limits.daily_budget_usd;

    let nats = connect::nats(cfg, "candlepipe-stats", Duration::ZERO).await?;
    let js = async_nats::jetstream::new(nats);
    let dlq_depth = match js.get_stream(Subjects::new(&cfg.prefix).dlq_stream()).await {
        Ok(stream) => stream
            .get_info()
            .await
            .map(|i| i.state.messages)
            .unwrap_or(0),
        Err(_) => 0,
    };

    let report = json!({
        "hit_ratio": hit_ratio,
        "requests": {
            "l1": l1, "redis": from_redis, "exchange": exchange, "stream": streamed,
            "stale": get("requests:stale"), "error": errors.total,
            "refused": errors.refused(), "failed": errors.failed(),
        },
        "errors_by_code": errors.by_code,
        "exchange_calls": {
            "binance": get("exchange_calls:binance"),
            "coinbase": get("exchange_calls:coinbase"),
            "kraken": get("exchange_calls:kraken"),
        },
        "dead_letters_total": get("dead_letters"),
        "dlq_depth": dlq_depth,
        "llm": llm,
        "llm_spent_today_usd": spent_today,
        "llm_daily_budget_usd": budget,
    });
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{report}");
    } else {
        let _ = writeln!(
            out,
            "cache hit ratio   {:.1}%  ({} l1, {} redis, {} stream, {} from exchanges)",
            hit_ratio * 100.0,
            l1,
            from_redis,
            streamed,
            exchange
        );
        let _ = writeln!(
            out,
            "stale / errors    {} / {}{}",
            get("requests:stale"),
            errors.total,
            errors.breakdown()
        );
        let _ = writeln!(
            out,
            "exchange calls    binance {}, coinbase {}, kraken {}",
            get("exchange_calls:binance"),
            get("exchange_calls:coinbase"),
            get("exchange_calls:kraken")
        );
        let _ = writeln!(
            out,
            "dead letters      {} in total, {} in the DLQ now",
            get("dead_letters"),
            dlq_depth
        );
        let _ = writeln!(
            out,
            "LLM spend today   ${spent_today:.6} of ${budget} budget"
        );
        for (name, m) in llm.as_object().into_iter().flatten() {
            let n = |k: &str| m[k].as_u64().unwrap_or(0);
            let _ = writeln!(
                out,
                "LLM {name:<22} {} calls ({} failed, {} billed at their worst case: outcome unknown), {} + {} tokens, ${:.6}, {} cached answers",
                n("requests"),
                n("failures"),
                n("billed_at_worst"),
                n("prompt_tokens"),
                n("completion_tokens"),
                m["cost_usd"].as_f64().unwrap_or(0.0),
                n("cache_hits"),
            );
        }
        let _ = writeln!(
            out,
            "(request counts: each process adds its counts every few seconds; LLM totals at once)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The requests answered with an error, by code: input the service refused (it would
/// refuse it again) apart from failures (asking again later may succeed).
struct Errors {
    total: u64,
    by_code: BTreeMap<String, u64>,
}

impl Errors {
    fn of(totals: &BTreeMap<String, u64>) -> Errors {
        let by_code: BTreeMap<String, u64> = totals
            .iter()
            .filter_map(|(k, n)| Some((k.strip_prefix(cluster_stats::ERRORS)?.to_string(), *n)))
            .filter(|(_, n)| *n > 0)
            .collect();
        // Counted without a code by workers of an earlier version.
        let uncoded = totals.get("requests:error").copied().unwrap_or(0);
        Errors {
            total: uncoded + by_code.values().sum::<u64>(),
            by_code,
        }
    }

    /// The codes of one kind (transient: failures; else refused input) and their counts.
    fn of_kind(&self, transient: bool) -> impl Iterator<Item = (&String, &u64)> {
        self.by_code.iter().filter(move |(code, _)| {
            ErrorCode::parse(code).is_some_and(|c| c.is_transient() == transient)
        })
    }

    fn refused(&self) -> u64 {
        self.of_kind(false).map(|(_, n)| n).sum()
    }

    fn failed(&self) -> u64 {
        self.of_kind(true).map(|(_, n)| n).sum()
    }

    /// `  (refused: unknown_symbol 3; failed: timeout 1)`, or nothing without errors.
    fn breakdown(&self) -> String {
        let parts: Vec<String> = [("refused", false), ("failed", true)]
            .into_iter()
            .filter_map(|(what, transient)| {
                let list: Vec<String> = self
                    .of_kind(transient)
                    .map(|(code, n)| format!("{code} {n}"))
                    .collect();
                (!list.is_empty()).then(|| format!("{what}: {}", list.join(", ")))
            })
            .collect();
        match parts.is_empty() {
            true => String::new(),
            false => format!("  ({})", parts.join("; ")),
        }
    }
}

/// `provider/model` → its counters (cost in USD), from `<prefix>llm:usage`.
async fn llm_totals(
    redis: &mut candlepipe_store::Redis,
    prefix: &str,
) -> anyhow::Result<serde_json::Value> {
    let raw: std::collections::BTreeMap<String, i64> = redis::cmd("HGETALL")
        .arg(llm_spend::usage_key(prefix))
        .query_async(redis)
        .await?;
    let mut out = serde_json::Map::new();
    for (field, n) in raw {
        let mut parts = field.rsplitn(2, '|');
        let (Some(counter), Some(who)) = (parts.next(), parts.next()) else {
            continue;
        };
        let entry = out
            .entry(who.replacen('|', "/", 1))
            .or_insert_with(|| json!({}));
        if counter == llm_spend::Counter::CostNanos.as_str() {
            entry["cost_usd"] = json!(n as f64 / 1e9);
        } else {
            entry[counter] = json!(n);
        }
    }
    Ok(serde_json::Value::Object(out))
}
