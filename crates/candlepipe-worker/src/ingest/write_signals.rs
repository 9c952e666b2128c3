//! Hearing fill writes land in Redis: a fill job's write script publishes the job's `ready`
//! event on the store's Redis channel ([`candlepipe_store::SeriesStore::ready_channel`]) as
//! it applies, so the waiting ingests read the series as soon as Redis has it instead of
//! after the fill had the script's answer and published the same event on NATS (a cold
//! miss's serial hop fewer; BENCHMARKS.md item 18).
//!
//! NATS's `ready` stays the contract (SPEC §3) and the only path for failures: a signal is
//! only ever a success, only a reason to read the series (which is verified as any read is),
//! and while this connection is down the NATS events alone wake the waiters, a moment later.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Signals heard and not yet dispatched; past this many, more are dropped (their NATS events
/// follow).
pub const QUEUED_SIGNALS: usize = 4096;

const CONNECT_PATIENCE: Duration = Duration::from_secs(2);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Subscribes to `channel` and hands every message to `heard` until `shutdown`; reconnects
/// (and subscribes again) whenever the connection is lost.
pub async fn hear(
    client: redis::Client,
    channel: String,
    heard: mpsc::Sender<Bytes>,
    shutdown: CancellationToken,
) {
    let mut retry = FIRST_RETRY;
    // Said once per outage (at the first failure, or as the connection is lost), at warn
    // level; the retries after it at debug.
    let mut said = false;
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(CONNECT_PATIENCE, subscribed).await {
            Ok(Ok(pubsub)) => {
                tracing::debug!(channel, "hearing fill writes on Redis");
                retry = FIRST_RETRY;
                let mut messages = pubsub.into_on_message();
                loop {
                    let msg = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        msg = messages.next() => msg,
                    };
                    let Some(msg) = msg else { break };
                    let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
                    match heard.try_send(payload) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            metrics::counter!("candlepipe_write_signals_dropped_total").increment(1)
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
                tracing::warn!(channel, "lost the Redis channel of fill writes; NATS's ready events wake the waiters meanwhile");
                said = true;
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer in time".to_string(),
                };
                if said {
                    tracing::debug!(%error, channel, "cannot hear fill writes on Redis yet");
                } else {
                    tracing::warn!(%error, channel, "cannot hear fill writes on Redis; answering on NATS's ready events until it can (a Redis ACL user needs the channel: &{channel})");
                    said = true;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
}
