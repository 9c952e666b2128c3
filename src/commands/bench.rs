//! `candlepipe bench`: the thin entry to the benchmark harness (crate `candlepipe-bench`),
//! handing it the subject prefix, the exchanges' endpoints and this binary's way to NATS.

use std::process::ExitCode;
use std::sync::Arc;

use candlepipe_bench::{Args, Setup};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::connect;

pub async fn run(cfg: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let shared = Arc::new(cfg.clone());
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        super::termination().await;
        trigger.cancel();
    });
    let setup = Setup {
        prefix: cfg.prefix.clone(),
        exchanges: cfg.exchanges.clone(),
        fill_wait: cfg.fill_wait,
        connect: Arc::new(move |name, patience| {
            let cfg = shared.clone();
            Box::pin(async move { connect::nats(&cfg, &name, patience).await })
        }),
        stop,
    };
    candlepipe_bench::run(&setup, args).await
}
