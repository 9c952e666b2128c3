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
