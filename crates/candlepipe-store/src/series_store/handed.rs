//! A fill's write handed to the ingests waiting for it, so that they answer without reading
//! back from Redis what was just written there (issue #26).
//!
//! What is handed over is what one attempt of the write swaps in, sealed as Redis then
//! holds it: the meta and the packed chunks the attempt sets. The fill hands it over while
//! Redis takes it, and the ingest opens it as a read opens those values — each MAC under its
//! own key's name, each chunk at the version the meta names, a meta written within
//! [`HANDED_MAX_AGE_MS`] of now — but uses it only once the job's `ready` names that
//! version and that writer: only then is it what Redis holds. Until then nothing of it is
//! kept (not in L1, not among the verified values): an attempt whose swap failed leaves no
//! trace. Whatever does not open, and a window reaching chunks the attempt did not set,
//! answers `None`: the ingest reads Redis after `ready`, as without a hand-over. The
//! stream's live mark is not in it: a series opened from a hand-over may look streamed less
//! recently than it was, never more.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::{MetaBody, SeriesRead, SeriesStore};
use candlepipe_core::{Millis, SeriesKey, SeriesState};

/// How old (by its write time) a hand-over may be and still be taken. A fill hands over as
/// it writes; the margin is for clocks that differ between machines.
pub const HANDED_MAX_AGE_MS: Millis = 5_000;

/// The sealed values one attempt of a job's write swaps in: its meta and its chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handed {
    pub series: SeriesKey,
    /// The write's [`super::HandOver::writer`]: its `ready` names it.
    pub writer: u64,
    meta: ByteBuf,
    /// Chunk start → the sealed chunk.
    chunks: Vec<(Millis, ByteBuf)>,
}

impl Handed {
    pub(super) fn new(
        series: &SeriesKey,
        writer: u64,
        meta: Vec<u8>,
        chunks: Vec<(Millis, Vec<u8>)>,
    ) -> Self {
        Handed {
            series: series.clone(),
            writer,
            meta: ByteBuf::from(meta),
            chunks: chunks
                .into_iter()
                .map(|(start, sealed)| (start, ByteBuf::from(sealed)))
                .collect(),
        }
    }

    /// The bytes of the values it carries.
    pub fn size(&self) -> usize {
        self.meta.len() + self.chunks.iter().map(|(_, v)| v.len()).sum::<usize>()
    }
}

impl SeriesStore {
    /// The window `[from, to]` of the hand-over, as [`SeriesStore::read`] would read it once
    /// the attempt is swapped in; `None` if the hand-over does not hold all of it or does
    /// not open (the caller reads Redis then). Nothing is kept of it, and nothing deleted
    /// from Redis for it.
    pub fn open_handed(
        &self,
        handed: &Handed,
        from: Millis,
        to: Millis,
        now: Millis,
    ) -> Option<SeriesRead> {
        let s = &handed.series;
        let base = self.base(s);
        let meta = self
            .keyring
            .open_unkept(&format!("{base}:meta"), &handed.meta)
            .ok()?;
        if (now - meta.written_at).abs() > HANDED_MAX_AGE_MS {
            return None;
        }
        let version = meta.version;
        let meta: MetaBody = rmp_serde::from_slice(&meta.body).ok()?;
        let mut candles = Vec::new();
        let first = Self::chunk_start(s, from);
        if first <= to {
            for (&start, &named) in meta.chunks.range(first..=to) {
                let (_, sealed) = handed.chunks.iter().find(|(c, _)| *c == start)?;
                let chunk = self
                    .keyring
                    .open_unkept(&Self::chunk_key(&base, start), sealed)
                    .ok()?;
                if chunk.version != named {
                    return None;
                }
                candles.extend(crate::packed::decode(&chunk.body, from, to).ok()?);
            }
        }
        Some(SeriesRead {
            state: SeriesState {
                version,
                fetched_at: meta.fetched_at,
                coverage: meta.coverage,
                asked: meta.asked,
                history_from: meta.history_from,
                streamed_at: meta.streamed_at,
                stream_only: meta.stream_only,
            },
            candles,
        })
    }
}
