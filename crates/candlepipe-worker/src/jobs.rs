//! What fill and analyze share about JetStream jobs: in-progress acks while working, the
//! final ack/nak/term (counted), and the copy to the dead-letter stream with its headers.

use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use async_nats::HeaderMap;
use candlepipe_core::{now_ms, Lane, Millis, Priority, WireError};

use crate::disposition::Disposition;
use crate::{BoxError, Context};

/// Headers a dead letter carries (SPEC §3).
pub mod dlq_headers {
    pub const ORIGINAL_SUBJECT: &str = "Candlepipe-Original-Subject";
    pub const ERROR_CODE: &str = "Candlepipe-Error-Code";
    pub const ERROR_MESSAGE: &str = "Candlepipe-Error-Message";
    pub const DELIVERIES: &str = "Candlepipe-Deliveries";
    pub const FIRST_FAILURE: &str = "Candlepipe-First-Failure";
    pub const LAST_FAILURE: &str = "Candlepipe-Last-Failure";

    /// Headers of the job carried into its dead letter and back on replay (the job id is
    /// the original `Nats-Msg-Id` when the job had no `Candlepipe-Job-Id`).
    pub const KEPT_ON_REPLAY: [&str; 3] = [
        candlepipe_core::analysis::REPLY_HEADER,
        candlepipe_core::encoding::CONTENT_TYPE_HEADER,
        JOB_ID_HEADER,
    ];
    pub use candlepipe_core::analysis::JOB_ID_HEADER;
}

/// Runs `work`, telling JetStream the job is still in progress every third of `ack_wait`.
pub(crate) async fn with_progress<T>(
    msg: &Message,
    ack_wait: Duration,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let period = (ack_wait / 3).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                if let Err(e) = msg.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %e, "in-progress ack failed");
                }
            }
        }
    }
}

pub(crate) async fn finish(msg: &Message, kind: AckKind) {
    let disposition = match kind {
        AckKind::Ack => "ack",
        AckKind::Nak(_) => "nak",
        AckKind::Term => "term",
        _ => "other",
    };
    metrics::counter!("candlepipe_jobs_total", "disposition" => disposition).increment(1);
    if let Err(e) = msg.ack_with(kind).await {
        tracing::warn!(error = %e, "ack failed; the job will be redelivered");
    }
}

/// Carries out `disposition` for a failed job (never dropping it: if the DLQ cannot take it,
/// it is redelivered).
pub(crate) async fn settle_failure(
    ctx: &Context,
    msg: &Message,
    disposition: Disposition,
    wire: &WireError,
    delivered: u64,
) {
    // A demoted job did not fail: it goes on in the bulk lane.
    let first_failure = match disposition {
        Disposition::Demote => now_ms(),
        _ => remember_failure(ctx, msg).await,
    };
    match disposition {
        Disposition::Ack => finish(msg, AckKind::Ack).await,
        Disposition::Nak(delay) => finish(msg, AckKind::Nak(Some(delay))).await,
        Disposition::Term => finish(msg, AckKind::Term).await,
        Disposition::Demote => match demote(ctx, msg).await {
            Ok(()) => finish(msg, AckKind::Ack).await,
            Err(e) => {
                tracing::warn!(error = %e, "moving the job to the bulk lane failed; it will be redelivered");
                finish(msg, AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        },
        Disposition::DeadLetter => {
            match dead_letter(ctx, msg, wire, delivered, first_failure).await {
                Ok(()) => finish(msg, AckKind::Term).await,
                Err(e) => {
                    tracing::error!(error = %e, "dead-letter publish failed; job will be redelivered");
                    finish(msg, AckKind::Nak(Some(Duration::from_secs(5)))).await;
                }
            }
        }
    }
}

/// Republishes a live fill job nobody waits for on its exchange's bulk lane, under its id
/// with `.bulk` appended (so a redelivered copy is deduplicated).
async fn demote(ctx: &Context, msg: &Message) -> Result<(), BoxError> {
    let subjects = &ctx.settings.subjects;
    let lane = subjects
        .lane_of(&msg.subject)
        .ok_or_else(|| format!("{} is not a fill lane", msg.subject))?;
    let bulk = Lane::new(lane.exchange, Priority::Bulk);
    let mut h = HeaderMap::new();
    if let Some(id) = msg.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
        h.insert("Nats-Msg-Id", format!("{}.bulk", id.as_str()).as_str());
    }
    ctx.js
        .publish_with_headers(subjects.lane(bulk), h, msg.payload.clone())
        .await?
        .await?;
    metrics::counter!("candlepipe_jobs_demoted_total", "exchange" => lane.exchange.as_str())
        .increment(1);
    tracing::debug!(subject = %msg.subject, "nobody waits for the job; moved to the bulk lane");
    Ok(())
}

/// Records the first failure time of a job (by stream sequence) in Redis; returns it.
async fn remember_failure(ctx: &Context, msg: &Message) -> Millis {
    let now = now_ms();
    let Ok(info) = msg.info() else { return now };
    let key = format!(
        "{}jobfail:{}:{}",
        ctx.settings.redis_prefix, info.stream, info.stream_sequence
    );
    let mut conn = ctx.redis.clone();
    let set: Result<Option<String>, _> = redis::cmd("SET")
        .arg(&key)
        .arg(now)
        .arg("NX")
        .arg("GET")
        .arg("EX")
        .arg(7 * 24 * 3600)
        .query_async(&mut conn)
        .await;
    match set {
        Ok(Some(first)) => first.parse().unwrap_or(now),
        _ => now,
    }
}

async fn dead_letter(
    ctx: &Context,
    msg: &Message,
    err: &WireError,
    delivered: u64,
    first_failure: Millis,
) -> Result<(), BoxError> {
    use dlq_headers::*;
    let mut h = HeaderMap::new();
    h.insert(ORIGINAL_SUBJECT, msg.subject.as_str());
    h.insert(ERROR_CODE, err.code.as_str());
    h.insert(
        ERROR_MESSAGE,
        err.message
            .chars()
            .take(500)
            .collect::<String>()
            .replace(['\r', '\n'], " ")
            .as_str(),
    );
    h.insert(DELIVERIES, delivered.to_string().as_str());
    h.insert(FIRST_FAILURE, first_failure.to_string().as_str());
    h.insert(LAST_FAILURE, now_ms().to_string().as_str());
    // What a replay needs to be the same job: where its answer goes, its encoding, its id.
    if let Some(orig) = &msg.headers {
        for name in KEPT_ON_REPLAY {
            if let Some(v) = orig.get(name) {
                h.insert(name, v.as_str());
            }
        }
        if orig.get(JOB_ID_HEADER).is_none() {
            if let Some(id) = orig.get("Nats-Msg-Id") {
                h.insert(JOB_ID_HEADER, id.as_str());
            }
        }
    }
    let subject = ctx.settings.subjects.dead_letter_for(&msg.subject);
    ctx.js
        .publish_with_headers(subject, h, msg.payload.clone())
        .await?
        .await?;
    metrics::counter!("candlepipe_jobs_dead_lettered_total", "code" => err.code.as_str())
        .increment(1);
    tracing::warn!(subject = %msg.subject, code = %err.code, delivered, "job dead-lettered");
    Ok(())
}
