//! `candlepipe sim`: serves the exchange simulator until SIGTERM/SIGINT.

use std::process::ExitCode;

use anyhow::Context as _;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:18080", env = "CANDLEPIPE_SIM_ADDR")]
    addr: String,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr()?;
    // Scripts and the test kit read this line to find the port.
    println!("candlepipe sim listening on http://{addr}");
    candlepipe_sim::serve(
        listener,
        candlepipe_sim::Sim::default(),
        super::termination(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
