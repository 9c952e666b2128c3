//! The two loops the roles run: answering core-NATS requests taken from a queue group, and
//! pulling JetStream jobs from a durable consumer. Both drain on shutdown: they stop taking
//! work and finish what they hold.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::Message as JobMessage;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::BoxError;

/// Handles each request on `requests` in its own task until `shutdown`; then unsubscribes,
/// answers the requests already delivered, and returns once every handler has finished.
pub async fn answer_requests<F, Fut>(
    mut requests: async_nats::Subscriber,
    shutdown: CancellationToken,
    handle: F,
) where
    F: Fn(async_nats::Message) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tracker = TaskTracker::new();
    let mut draining = false;
    loop {
        tokio::select! {
            msg = requests.next() => match msg {
                Some(msg) => {
                    tracker.spawn(handle(msg));
                }
                None => break,
            },
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                if let Err(e) = requests.drain().await {
                    tracing::warn!(error = %e, "drain failed");
                    break;
                }
            }
        }
    }
    tracker.close();
    tracker.wait().await;
}

/// Pulls jobs from `consumer`, at most `concurrency` in hand at once, each handled in its
/// own task, until `shutdown`; then stops pulling and waits for the jobs in hand (each
/// handler acks or naks its own).
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
    let concurrency = concurrency.max(1);
    let open = || {
        consumer
            .stream()
            .max_messages_per_batch(concurrency)
            .messages()
    };
    let mut messages = open().await?;
    let slots = Arc::new(Semaphore::new(concurrency));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.cancelled() => break,
        };
        let next = tokio::select! {
            m = messages.next() => m,
            _ = shutdown.cancelled() => break,
        };
        match next {
            Some(Ok(msg)) => {
                let job = handle(msg);
                tracker.spawn(async move {
                    job.await;
                    drop(permit);
                });
            }
            Some(Err(e)) => {
                // E.g. "no responders" while a cluster elects the consumer's leader. A pull
                // stream that failed may stay silent afterwards, so pull through a new one.
                tracing::warn!(error = %e, "pulling jobs failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                match open().await {
                    Ok(fresh) => messages = fresh,
                    Err(e) => tracing::warn!(error = %e, "cannot pull again yet"),
                }
            }
            None => break,
        }
    }
    drop(messages);
    tracker.close();
    tracker.wait().await;
    Ok(())
}
