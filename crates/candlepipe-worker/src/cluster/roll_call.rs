//! Who is running: every worker process answers `<prefix>.control.ping` with its roles, so
//! `candlepipe check` can say which roles the cluster runs, and how many processes each,
//! without sending a request through them (nothing is counted, nothing fetched).

use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// One process's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Present {
    /// Its roles: `ingest`, `fill`, `analyze`, `stream`, `gateway`.
    pub roles: Vec<String>,
    pub pid: u32,
    pub version: String,
}

/// Answers `subject` with `me` until `shutdown`.
pub async fn answer(
    nats: async_nats::Client,
    subject: String,
    me: Present,
    shutdown: CancellationToken,
) {
    let payload = match serde_json::to_vec(&me) {
        Ok(p) => bytes::Bytes::from(p),
        Err(e) => return tracing::warn!(error = %e, "roll call not answered"),
    };
    let mut pings = match nats.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => return tracing::warn!(error = %e, "roll call not answered"),
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            ping = pings.next() => match ping {
                Some(ping) => {
                    let Some(reply) = ping.reply else { continue };
                    if let Err(e) = nats.publish(reply, payload.clone()).await {
                        tracing::debug!(error = %e, "roll call answer not sent");
                    }
                }
                None => break,
            },
        }
    }
}

/// Asks `subject` and gathers the answers that come within `wait`.
pub async fn call(
    nats: &async_nats::Client,
    subject: String,
    wait: Duration,
) -> Result<Vec<Present>, async_nats::Error> {
    let inbox = nats.new_inbox();
    let mut answers = nats.subscribe(inbox.clone()).await?;
    nats.publish_with_reply(subject, inbox, bytes::Bytes::new())
        .await?;
    nats.flush().await?;
    let mut present = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, answers.next()).await {
        match serde_json::from_slice::<Present>(&msg.payload) {
            Ok(p) => present.push(p),
            Err(e) => tracing::debug!(error = %e, "a roll call answer not understood"),
        }
    }
    Ok(present)
}
