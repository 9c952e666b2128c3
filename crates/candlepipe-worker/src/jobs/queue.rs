//! The JetStream job queue as fill, analyze, ingest and stream use it: publishing a fill job
//! under its dedup id, in-progress acks while working, the final ack/nak/term (counted), and
//! the copy to the dead-letter stream with its headers (also made by
//! [`super::last_delivery`] for jobs whose last delivery got no answer).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use async_nats::HeaderMap;
use bytes::Bytes;
use candlepipe_core::{now_ms, FillJob, Lane, Millis, Priority, WireError};

use candlepipe_core::Subjects;
use candlepipe_store::Redis;

use super::dead_letters::dlq_headers::*;
use super::disposition::Disposition;
use crate::cluster::stats::{Counters, Field};
use crate::error::BoxError;
use crate::requests::traces;

/// On a live fill job: when (cluster clock, ms) the ingest's admission took the job's first
/// exchange turn for it. Only workers publish fill jobs (`nats/permissions.conf`).
pub const TURN_AT_HEADER: &str = "Candlepipe-Turn-At";

/// What publishing, settling and dead-lettering jobs needs; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    pub js: async_nats::jetstream::Context,
    /// Where the first failure of each job is remembered.
    pub redis: Redis,
    pub subjects: Subjects,
    pub redis_prefix: String,
    pub stats: Arc<Counters>,
}

/// Runs `work`, and `keep_alive` every third of `lease` while it runs (never before the
/// first third): what keeps a job's delivery and its series lock from lapsing.
pub(crate) async fn keeping_alive<T, F, Fut>(
    lease: Duration,
    keep_alive: F,
    work: impl std::future::Future<Output = T>,
) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    tokio::pin!(work);
    let period = (lease / 3).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => keep_alive().await,
        }
    }
}

/// Runs `work`, telling JetStream the job is still in progress every third of `ack_wait`.
pub(crate) async fn with_progress<T>(
    msg: &Message,
    ack_wait: Duration,
    work: impl std::future::Future<Output = T>,
) -> T {
    let progress = || async {
        if let Err(e) = msg.ack_with(AckKind::Progress).await {
            tracing::debug!(error = %e, "in-progress ack failed");
        }
    };
    keeping_alive(ack_wait, progress, work).await
}

pub(crate) async fn finish(msg: &Message, kind: AckKind) {
    let disposition = match kind {
        AckKind::Ack => "ack",
        AckKind::Nak(_) => "nak",
        AckKind::Term => "term",
        _ => "other",
    };
    let lane = if msg.subject.ends_with(".bulk") {
        "bulk"
    } else {
        "live"
    };
    metrics::counter!("candlepipe_jobs_total", "disposition" => disposition, "lane" => lane)
        .increment(1);
    if let Err(e) = msg.ack_with(kind).await {
        tracing::warn!(error = %e, "ack failed; the job will be redelivered");
    }
}

impl Queue {
    /// Carries out `disposition` for a failed job (never dropping it: if the DLQ cannot take it,
    /// it is redelivered).
    pub async fn settle_failure(
        &self,
        msg: &Message,
        disposition: Disposition,
        wire: &WireError,
        delivered: u64,
    ) {
        // A demoted job did not fail: it goes on in the bulk lane.
        let first_failure = match disposition {
            Disposition::Demote => now_ms(),
            _ => self.remember_failure(msg).await,
        };
        match disposition {
            Disposition::Ack => finish(msg, AckKind::Ack).await,
            Disposition::Nak(delay) => finish(msg, AckKind::Nak(Some(delay))).await,
            Disposition::Term => finish(msg, AckKind::Term).await,
            Disposition::Demote => match self.demote(msg).await {
                Ok(()) => finish(msg, AckKind::Ack).await,
                Err(e) => {
                    tracing::warn!(error = %e, "moving the job to the bulk lane failed; it will be redelivered");
                    finish(msg, AckKind::Nak(Some(Duration::from_secs(1)))).await;
                }
            },
            Disposition::DeadLetter => {
                let (stream, seq) = msg
                    .info()
                    .map(|i| (i.stream.to_string(), i.stream_sequence))
                    .unwrap_or_default();
                let letter = Letter {
                    subject: &msg.subject,
                    stream: &stream,
                    seq,
                    headers: msg.headers.as_ref(),
                    payload: msg.payload.clone(),
                    error: wire,
                    delivered,
                    first_failure,
                };
                match self.dead_letter(letter).await {
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
    async fn demote(&self, msg: &Message) -> Result<(), BoxError> {
        let subjects = &self.subjects;
        let lane = subjects
            .lane_of(&msg.subject)
            .ok_or_else(|| format!("{} is not a fill lane", msg.subject))?;
        let bulk = Lane::new(lane.exchange, Priority::Bulk);
        let mut h = HeaderMap::new();
        if let Some(id) = msg.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
            h.insert("Nats-Msg-Id", format!("{}.bulk", id.as_str()).as_str());
        }
        self.js
            .publish_with_headers(subjects.lane(bulk), h, msg.payload.clone())
            .await?
            .await?;
        metrics::counter!("candlepipe_jobs_demoted_total", "exchange" => lane.exchange.as_str())
            .increment(1);
        tracing::debug!(subject = %msg.subject, "nobody waits for the job; moved to the bulk lane");
        Ok(())
    }

    fn failure_key(&self, stream: &str, seq: u64) -> String {
        format!("{}jobfail:{stream}:{seq}", self.redis_prefix)
    }

    /// Records the first failure time of a job (by stream sequence) in Redis; returns it.
    async fn remember_failure(&self, msg: &Message) -> Millis {
        let now = now_ms();
        let Ok(info) = msg.info() else { return now };
        let mut conn = self.redis.clone();
        let set: Result<Option<String>, _> = redis::cmd("SET")
            .arg(self.failure_key(info.stream, info.stream_sequence))
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

    /// The first failure time recorded for a job, if any.
    pub async fn first_failure(&self, stream: &str, seq: u64) -> Option<Millis> {
        let mut conn = self.redis.clone();
        let first: Option<String> = redis::cmd("GET")
            .arg(self.failure_key(stream, seq))
            .query_async(&mut conn)
            .await
            .ok()?;
        first?.parse().ok()
    }

    /// Copies a job into the dead-letter stream with the headers a replay needs. Its
    /// `Nats-Msg-Id` names the job's place in its stream, so the worker's own copy and one made
    /// from JetStream's max-deliveries advisory are one dead letter.
    pub async fn dead_letter(&self, letter: Letter<'_>) -> Result<(), BoxError> {
        let err = letter.error;
        let mut h = HeaderMap::new();
        h.insert(
            "Nats-Msg-Id",
            format!("dlq.{}.{}", letter.stream, letter.seq).as_str(),
        );
        h.insert(ORIGINAL_SUBJECT, letter.subject);
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
        h.insert(DELIVERIES, letter.delivered.to_string().as_str());
        h.insert(FIRST_FAILURE, letter.first_failure.to_string().as_str());
        h.insert(LAST_FAILURE, now_ms().to_string().as_str());
        // What a replay needs to be the same job: where its answer goes, its encoding, its id.
        if let Some(orig) = letter.headers {
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
        let subject = self.subjects.dead_letter_for(letter.subject);
        let ack = self
            .js
            .publish_with_headers(subject, h, letter.payload)
            .await?
            .await?;
        if !ack.duplicate {
            self.stats.add(Field::DeadLetters, 1);
            metrics::counter!("candlepipe_jobs_dead_lettered_total", "code" => err.code.as_str())
                .increment(1);
            tracing::warn!(subject = %letter.subject, code = %err.code, delivered = letter.delivered, "job dead-lettered");
        }
        Ok(())
    }

    /// Publishes fill job `job` on `lane` with its dedup id, and when its admission took its
    /// first turn, that turn's time (header [`TURN_AT_HEADER`]); returns whether JetStream
    /// already had it.
    pub async fn publish(
        &self,
        job: &FillJob,
        lane: Lane,
        id: &str,
        turn_at: Option<Millis>,
    ) -> Result<bool, BoxError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        if let Some(at) = turn_at {
            headers.insert(TURN_AT_HEADER, at.to_string().as_str());
        }
        let trace_id = traces::inject_or_start(&mut headers);
        tracing::debug!(series = %job.series, %lane, job = id, trace_id, "fill job queued");
        let payload = Bytes::from(serde_json::to_vec(job)?);
        let ack = self
            .js
            .publish_with_headers(self.subjects.lane(lane), headers, payload)
            .await?
            .await?;
        Ok(ack.duplicate)
    }
}

/// A job to copy into the dead-letter stream.
pub struct Letter<'a> {
    /// The job's subject, stream and sequence in it.
    pub subject: &'a str,
    pub stream: &'a str,
    pub seq: u64,
    pub headers: Option<&'a HeaderMap>,
    pub payload: Bytes,
    pub error: &'a WireError,
    pub delivered: u64,
    pub first_failure: Millis,
}
