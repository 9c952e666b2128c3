//! One module per subcommand.

pub mod analyze;
pub mod backfill;
pub mod bench;
pub mod check;
pub mod dlq;
pub mod export;
pub mod get;
pub mod llm;
pub mod run;
pub mod sim;
pub mod stats;
pub mod watch;

/// A symbol as people type it (`btc/usdt`, Kraken's `XBT/USD`) as candlepipe names it:
/// upper case, and on Kraken the usual codes for Kraken's own (`XBT` → `BTC`, `XDG` →
/// `DOGE`), said on stderr when that changed it.
pub fn unified_symbol(exchange: &str, typed: &str) -> String {
    let upper = typed.trim().to_ascii_uppercase();
    if !exchange.trim().eq_ignore_ascii_case("kraken") {
        return upper;
    }
    let usual = |code: &str| match code {
        "XBT" => "BTC".to_string(),
        "XDG" => "DOGE".to_string(),
        other => other.to_string(),
    };
    let Some((base, quote)) = upper.split_once('/') else {
        return upper;
    };
    let mapped = format!("{}/{}", usual(base), usual(quote));
    if mapped != upper {
        eprintln!("note: {upper} is Kraken's own name for {mapped}; asking for {mapped}");
    }
    mapped
}

/// Resolves when the process gets SIGTERM or SIGINT.
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
