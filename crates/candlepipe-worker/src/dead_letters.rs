//! Reading, replaying and purging `CANDLEPIPE_DLQ`. Fill and analyze workers write it
//! (`jobs::settle_failure`); operators use these through `candlepipe dlq`.

use async_nats::jetstream::{self, stream::Stream};
use async_nats::HeaderMap;
use candlepipe_core::{now_ms, Millis, Subjects};
use serde::Serialize;

use crate::jobs::dlq_headers::*;
use crate::BoxError;

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
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
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

    /// Sequence numbers of the dead letters present, oldest first.
    pub async fn sequences(&self) -> Result<Vec<u64>, BoxError> {
        let info = self.stream.get_info().await?;
        if info.state.messages == 0 {
            return Ok(Vec::new());
        }
        let mut seqs = Vec::new();
        for seq in info.state.first_sequence..=info.state.last_sequence {
            // Gaps are letters already replayed or deleted.
            if self.stream.get_raw_message(seq).await.is_ok() {
                seqs.push(seq);
            }
        }
        Ok(seqs)
    }

    pub async fn get(&self, seq: u64) -> Result<DeadLetter, BoxError> {
        let m = self.stream.get_raw_message(seq).await?;
        let h = &m.headers;
        Ok(DeadLetter {
            seq,
            subject: header(h, ORIGINAL_SUBJECT),
            code: header(h, ERROR_CODE),
            message: header(h, ERROR_MESSAGE),
            deliveries: header(h, DELIVERIES).parse().unwrap_or(0),
            first_failure: header(h, FIRST_FAILURE).parse().unwrap_or(0),
            last_failure: header(h, LAST_FAILURE).parse().unwrap_or(0),
        })
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

    pub async fn purge(&self) -> Result<u64, BoxError> {
        Ok(self.stream.purge().await?.purged)
    }
}
