//! Pulling JetStream jobs from a durable consumer, at most so many in hand at once; on
//! shutdown the loop stops pulling, hands back what still arrives, and finishes what it holds.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message as JobMessage};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::BoxError;

/// How long one pull request waits at the server for jobs before it is asked again.
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// Pulls jobs from `consumer`, at most `concurrency` in hand at once, each handled in its
/// own task, until `shutdown`; then stops pulling and waits for the jobs in hand (each
/// handler acks or naks its own).
///
/// Each pull asks for exactly as many jobs as there are free slots, so no job waits in a
/// buffer while its ack wait runs out; jobs that still arrive for a pull open at shutdown
/// are handed back at once (nak).
pub async fn pull_jobs<F, Fut>(
    consumer: &PullConsumer,
    concurrency: usize,
    shutdown: CancellationToken,
    handle: F,
) -> Result<(), BoxError>
where
    F: Fn(JobMessage) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let tracker = TaskTracker::new();
    'pulling: loop {
        // One free slot, then every other one free now: the pull asks for that many.
        let mut free = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => vec![p], Err(_) => break },
            _ = shutdown.cancelled() => break,
        };
        while let Ok(p) = slots.clone().try_acquire_owned() {
            free.push(p);
        }
        let pulled = consumer
            .batch()
            .max_messages(free.len())
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        let mut batch = match pulled {
            Ok(b) => b,
            Err(e) => {
                // E.g. "no responders" while a cluster elects the consumer's leader.
                tracing::warn!(error = %e, "pulling jobs failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                m = batch.next() => m,
                _ = shutdown.cancelled() => {
                    hand_back(&mut batch).await;
                    break 'pulling;
                }
            };
            match next {
                Some(Ok(msg)) => {
                    let Some(slot) = free.pop() else {
                        // More than asked for: never expected; hand it back.
                        nak(&msg).await;
                        continue;
                    };
                    let job = handle(msg);
                    tracker.spawn(async move {
                        job.await;
                        drop(slot);
                    });
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "pulling jobs failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
                None => break,
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Naks the jobs still arriving for an open pull, until it ends (at most its expiry).
async fn hand_back(
    batch: &mut (impl futures::Stream<Item = Result<JobMessage, async_nats::Error>> + Unpin),
) {
    let until = tokio::time::Instant::now() + PULL_EXPIRES + Duration::from_millis(500);
    while let Ok(Some(next)) = tokio::time::timeout_at(until, batch.next()).await {
        if let Ok(msg) = next {
            nak(&msg).await;
        }
    }
}

async fn nak(msg: &JobMessage) {
    if let Err(e) = msg.ack_with(AckKind::Nak(None)).await {
        tracing::debug!(error = %e, "nak failed; the job is redelivered after its ack wait");
    }
}
