//! The simulator's own count of the candle requests it served (`GET /sim/stats`): what the
//! scenarios report as the exchange calls candlepipe made.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde_json::{json, Value};

/// Candle requests the simulator has served per exchange, if its URL was given.
pub async fn sim_calls(sim_url: Option<&str>) -> anyhow::Result<Option<BTreeMap<String, u64>>> {
    let Some(url) = sim_url else { return Ok(None) };
    let stats: Value = reqwest::get(format!("{}/sim/stats", url.trim_end_matches('/')))
        .await
        .context("reading the simulator's stats")?
        .json()
        .await?;
    Ok(Some(
        ["binance", "coinbase", "kraken"]
            .iter()
            .map(|ex| (ex.to_string(), stats[ex]["requests"].as_u64().unwrap_or(0)))
            .collect(),
    ))
}

/// The calls made between two readings of [`sim_calls`], per exchange.
pub fn calls_between(
    before: &Option<BTreeMap<String, u64>>,
    after: &Option<BTreeMap<String, u64>>,
) -> Value {
    match (before, after) {
        (Some(b), Some(a)) => json!(a
            .iter()
            .map(|(ex, n)| (ex.clone(), n - b.get(ex).copied().unwrap_or(0)))
            .collect::<BTreeMap<_, _>>()),
        _ => Value::Null,
    }
}
