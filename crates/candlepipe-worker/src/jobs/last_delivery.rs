//! Jobs whose last delivery got no answer: the worker holding it died or hung, and JetStream
//! will never deliver it again. JetStream announces each on
//! `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`; every fill and analyze
//! worker listens (in one queue group, so one of them acts), copies the job from the stream
//! by its sequence into the dead-letter stream, and deletes it from the jobs stream. The
//! worker's own dead-lettering and this one are one letter (same `Nats-Msg-Id`).
//!
//! An advisory sent while no fill or analyze worker runs is not heard; the job then stays
//! in the jobs stream until its age limit.

use async_nats::jetstream::stream::Stream;
use candlepipe_core::{now_ms, ErrorCode, WireError};
use futures::StreamExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::queue::{Letter, Queue};
use crate::error::BoxError;

/// The queue group the workers share for these advisories.
const GROUP: &str = "candlepipe-last-delivery";

/// `io.nats.jetstream.advisory.v1.max_deliver`.
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream: String,
    consumer: String,
    stream_seq: u64,
    deliveries: u64,
}

/// Listens until `shutdown`.
pub async fn watch(
    nats: async_nats::Client,
    queue: Queue,
    stream: Stream,
    shutdown: CancellationToken,
) {
    let name = queue.subjects.jobs_stream();
    let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{name}.*");
    let mut advisories = match nats.queue_subscribe(subject, GROUP.into()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot hear max-deliveries advisories; jobs lost on their last delivery stay in the jobs stream");
            return;
        }
    };
    loop {
        let msg = tokio::select! {
            m = advisories.next() => match m { Some(m) => m, None => return },
            _ = shutdown.cancelled() => return,
        };
        match serde_json::from_slice::<MaxDeliveries>(&msg.payload) {
            Ok(a) => {
                if let Err(e) = letter_for(&queue, &stream, &a).await {
                    tracing::error!(error = %e, seq = a.stream_seq, consumer = %a.consumer, "job of an unanswered last delivery not dead-lettered");
                }
            }
            Err(e) => tracing::warn!(error = %e, "undecodable max-deliveries advisory"),
        }
    }
}

async fn letter_for(queue: &Queue, stream: &Stream, a: &MaxDeliveries) -> Result<(), BoxError> {
    // Gone already: acked, terminated, or dead-lettered by its worker.
    let Ok(job) = stream.get_raw_message(a.stream_seq).await else {
        return Ok(());
    };
    let error = WireError::new(
        ErrorCode::Unavailable,
        format!(
            "its last delivery ({} of {}) got no answer: the worker stopped or hung",
            a.deliveries, a.consumer
        ),
    );
    let letter = Letter {
        subject: &job.subject,
        stream: &a.stream,
        seq: a.stream_seq,
        headers: Some(&job.headers),
        payload: job.payload.clone(),
        error: &error,
        delivered: a.deliveries,
        first_failure: queue
            .first_failure(&a.stream, a.stream_seq)
            .await
            .unwrap_or_else(now_ms),
    };
    queue.dead_letter(letter).await?;
    stream.delete_message(a.stream_seq).await?;
    Ok(())
}
