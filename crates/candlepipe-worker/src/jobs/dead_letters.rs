//! Reading, replaying and purging `CANDLEPIPE_DLQ`. Fill and analyze workers write it
//! (`Queue::settle_failure`, [`super::queue`]); operators use these through `candlepipe dlq`.

use async_nats::jetstream::{self, stream::Stream};
use async_nats::HeaderMap;
use candlepipe_core::analysis::AnalysisRequest;
use candlepipe_core::encoding::CONTENT_TYPE_HEADER;
use candlepipe_core::{now_ms, Encoding, FillJob, Millis, Subjects};
use serde::Serialize;

use crate::error::BoxError;
use dlq_headers::*;

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

/// One dead letter, as its headers describe it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub seq: u64,
    pub subject: String,
    pub code: String,
    pub message: String,
    pub deliveries: u64,
    pub first_failure: Millis,
    pub last_failure: Millis,
    /// What the job was for, read from its payload: a fill job's series and window
    /// (`binance BTC/USDT 1m 1764547200000..1764550740000`), an analysis's series
    /// (`binance BTC/USDT 1h`, one per symbol); empty when the payload cannot be read.
    pub series: Vec<String>,
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

/// The series a job's payload names (see [`DeadLetter::series`]).
fn series_of(subjects: &Subjects, subject: &str, h: &HeaderMap, payload: &[u8]) -> Vec<String> {
    let enc = Encoding::from_content_type(h.get(CONTENT_TYPE_HEADER).map(|v| v.as_str()));
    if subject == subjects.analyze_job() {
        let Ok(req) = enc.decode::<AnalysisRequest>(payload) else {
            return Vec::new();
        };
        let interval = req.interval.as_deref().unwrap_or("1h");
        return req
            .symbols
            .iter()
            .map(|s| format!("{} {s} {interval}", req.exchange))
            .collect();
    }
    match serde_json::from_slice::<FillJob>(payload) {
        Ok(job) => vec![format!("{} {}..{}", job.series, job.from, job.to)],
        Err(_) => Vec::new(),
    }
}

fn letter(subjects: &Subjects, seq: u64, h: &HeaderMap, payload: &[u8]) -> DeadLetter {
    let subject = header(h, ORIGINAL_SUBJECT);
    DeadLetter {
        series: series_of(subjects, &subject, h, payload),
        seq,
        subject,
        code: header(h, ERROR_CODE),
        message: header(h, ERROR_MESSAGE),
        deliveries: header(h, DELIVERIES).parse().unwrap_or(0),
        first_failure: header(h, FIRST_FAILURE).parse().unwrap_or(0),
        last_failure: header(h, LAST_FAILURE).parse().unwrap_or(0),
    }
}

pub struct DeadLetters {
    js: jetstream::Context,
    subjects: Subjects,
    stream: Stream,
}

impl DeadLetters {
    pub async fn open(js: jetstream::Context, subjects: Subjects) -> Result<DeadLetters, BoxError> {
        let stream = js.get_stream(subjects.dlq_stream()).await?;
        Ok(DeadLetters {
            js,
            subjects,
            stream,
        })
    }

    /// Up to `limit` dead letters from sequence `from` on, oldest first: each read asks for
    /// the first letter at or after a sequence, so gaps (letters replayed or deleted) cost
    /// nothing.
    pub async fn page(&self, from: u64, limit: usize) -> Result<Vec<DeadLetter>, BoxError> {
        let mut letters = Vec::new();
        let mut seq = from.max(1);
        while letters.len() < limit {
            let m = match self
                .stream
                .get_first_raw_message_by_subject(self.subjects.dlq_all(), seq)
                .await
            {
                Ok(m) => m,
                Err(e) if e.kind() == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => break,
                Err(e) => return Err(e.into()),
            };
            seq = m.sequence + 1;
            letters.push(letter(&self.subjects, m.sequence, &m.headers, &m.payload));
        }
        Ok(letters)
    }

    /// Every dead letter's sequence, oldest first, read a page at a time.
    pub async fn sequences(&self) -> Result<Vec<u64>, BoxError> {
        let mut seqs = Vec::new();
        loop {
            let from = seqs.last().map_or(1, |s| s + 1);
            let page = self.page(from, 500).await?;
            if page.is_empty() {
                return Ok(seqs);
            }
            seqs.extend(page.iter().map(|l| l.seq));
        }
    }

    pub async fn get(&self, seq: u64) -> Result<DeadLetter, BoxError> {
        let m = self.stream.get_raw_message(seq).await?;
        Ok(letter(&self.subjects, seq, &m.headers, &m.payload))
    }

    /// Republishes letter `seq` to its original subject (a new job id, so JetStream's
    /// dedup window cannot swallow it), then removes it from the DLQ.
    pub async fn replay(&self, seq: u64) -> Result<(), BoxError> {
        let m = self.stream.get_raw_message(seq).await?;
        let original = header(&m.headers, ORIGINAL_SUBJECT);
        if !original.starts_with(&format!("{}.jobs.", self.subjects.prefix())) {
            return Err(format!("dead letter {seq} has no job subject ({original:?})").into());
        }
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", format!("replay.{seq}.{}", now_ms()).as_str());
        for name in KEPT_ON_REPLAY {
            if let Some(v) = m.headers.get(name) {
                h.insert(name, v.as_str());
            }
        }
        self.js
            .publish_with_headers(original, h, m.payload)
            .await?
            .await?;
        self.stream.delete_message(seq).await?;
        Ok(())
    }

    /// Deletes letter `seq`.
    pub async fn remove(&self, seq: u64) -> Result<(), BoxError> {
        self.stream.delete_message(seq).await?;
        Ok(())
    }

    pub async fn purge(&self) -> Result<u64, BoxError> {
        Ok(self.stream.purge().await?.purged)
    }
}
