//! What a fill job's write publishes on the store's Redis channel as it lands
//! ([`crate::JobWrite::signal`]): the job's `ready` event and, when they are small enough,
//! the sealed values the write stored (the meta and the packed chunks), so that a waiting
//! ingest answers from them without reading the series back (BENCHMARKS.md item 19).
//!
//! The values are the very bytes stored under their keys, opened exactly as a read opens
//! them ([`crate::SeriesStore::read_signalled`]): a MAC over the key, the write version and
//! its time, and the meta's version for every chunk. A forged message costs a read, never
//! a wrong answer.
//!
//! Layout: the event's JSON, a newline (compact JSON has none), a big-endian `u32` count
//! of frames, the frames (each a big-endian `u32` length and its bytes: first the sealed
//! meta, then per chunk its start as a big-endian `i64` and the sealed chunk), and last the
//! series' live mark as the swap found it (nothing: no mark). A count of 0 carries no values
//! (what follows it is not read). The write script assembles the message from the values
//! it stores and what [`framing`] gives, so that the values cross to Redis once.

use bytes::{Buf, Bytes};
use candlepipe_core::{Millis, ReadyEvent};

/// Values larger than this in all are not carried (the event alone is: the ingest reads
/// the series). A 100-candle write carries about 10 KB; every ingest hears every signal.
pub const MAX_CARRIED_BYTES: usize = 64 * 1024;

/// A signal as the channel delivered it.
#[derive(Debug, Clone)]
pub struct WriteSignal {
    pub event: ReadyEvent,
    /// The write's values, if it carried them.
    pub values: Option<WriteValues>,
}

/// The sealed values a write stored, not yet opened.
#[derive(Debug, Clone)]
pub struct WriteValues {
    pub(crate) meta: Bytes,
    pub(crate) chunks: Vec<(Millis, Bytes)>,
    pub(crate) live: Option<Bytes>,
}

/// Why a message on the channel is not a signal.
#[derive(Debug, thiserror::Error)]
pub enum BadSignal {
    #[error("undecodable event: {0}")]
    Event(#[from] serde_json::Error),
    #[error("truncated values")]
    Truncated,
}

/// What the write script publishes the message for `event` from, besides the values it
/// stores: the message's `head` (the event, the frame count and, when the values are
/// carried, the meta's frame length) and, when they are carried, `frames`: a marker byte
/// and each chunk's frame prefix (its length and start). The script sends head, meta, then
/// per chunk its prefix and its value, then the live mark, so the values cross to Redis
/// once. Carried only if they fit in [`MAX_CARRIED_BYTES`].
pub(crate) struct Framing {
    pub head: Vec<u8>,
    pub frames: Vec<u8>,
}

/// Bytes of a chunk's frame prefix in [`Framing::frames`]: its length and its start.
const PREFIX_BYTES: usize = 12;

/// The [`Framing`] of the message for `event`, whose meta is `meta_len` bytes and whose
/// chunks are `(start, length)`.
pub(crate) fn framing(event: &ReadyEvent, meta_len: usize, chunks: &[(Millis, usize)]) -> Framing {
    let size = meta_len
        + chunks
            .iter()
            .map(|(_, len)| len + PREFIX_BYTES)
            .sum::<usize>();
    let mut head = event.to_json();
    head.push(b'\n');
    if size > MAX_CARRIED_BYTES {
        head.extend_from_slice(&0u32.to_be_bytes());
        return Framing {
            head,
            frames: Vec::new(),
        };
    }
    head.extend_from_slice(&(1 + chunks.len() as u32).to_be_bytes());
    head.extend_from_slice(&(meta_len as u32).to_be_bytes());
    let mut frames = Vec::with_capacity(1 + chunks.len() * PREFIX_BYTES);
    frames.push(b'v');
    for (start, len) in chunks {
        frames.extend_from_slice(&(8 + *len as u32).to_be_bytes());
        frames.extend_from_slice(&start.to_be_bytes());
    }
    Framing { head, frames }
}

impl WriteSignal {
    /// Splits a message heard on the channel; the values are slices of `payload`.
    pub fn parse(payload: Bytes) -> Result<WriteSignal, BadSignal> {
        let Some(newline) = payload.iter().position(|&b| b == b'\n') else {
            return Ok(WriteSignal {
                event: serde_json::from_slice(&payload)?,
                values: None,
            });
        };
        let event = serde_json::from_slice(&payload[..newline])?;
        let mut rest = payload.slice(newline + 1..);
        let count = take_u32(&mut rest)? as usize;
        if count == 0 {
            return Ok(WriteSignal {
                event,
                values: None,
            });
        }
        let meta = take_frame(&mut rest)?;
        let mut chunks = Vec::with_capacity(count - 1);
        for _ in 1..count {
            let mut frame = take_frame(&mut rest)?;
            if frame.len() < 8 {
                return Err(BadSignal::Truncated);
            }
            let start = frame.get_i64();
            chunks.push((start, frame));
        }
        let live = (!rest.is_empty()).then_some(rest);
        Ok(WriteSignal {
            event,
            values: Some(WriteValues { meta, chunks, live }),
        })
    }
}

fn take_u32(buf: &mut Bytes) -> Result<u32, BadSignal> {
    match buf.len() >= 4 {
        true => Ok(buf.get_u32()),
        false => Err(BadSignal::Truncated),
    }
}

fn take_frame(buf: &mut Bytes) -> Result<Bytes, BadSignal> {
    let len = take_u32(buf)? as usize;
    match buf.len() >= len {
        true => Ok(buf.split_to(len)),
        false => Err(BadSignal::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candlepipe_core::{Exchange, Interval, SeriesKey, Symbol};

    /// The message as the write script assembles it.
    fn encode(event: &ReadyEvent, meta: &[u8], chunks: &[(Millis, &[u8])]) -> Vec<u8> {
        let lens: Vec<(Millis, usize)> = chunks.iter().map(|(t, c)| (*t, c.len())).collect();
        let Framing { head, frames } = framing(event, meta.len(), &lens);
        let mut out = head;
        if !frames.is_empty() {
            out.extend_from_slice(meta);
            for (prefix, (_, chunk)) in frames[1..].chunks(PREFIX_BYTES).zip(chunks) {
                out.extend_from_slice(prefix);
                out.extend_from_slice(chunk);
            }
        }
        out
    }

    fn event() -> ReadyEvent {
        ReadyEvent {
            series: SeriesKey::new(
                Exchange::Binance,
                Symbol::parse("BTC/USDT").unwrap(),
                Interval::M1,
            ),
            last_t: Some(120_000),
            version: 7,
            error: None,
            is_final: false,
        }
    }

    #[test]
    fn a_signal_carries_its_event_values_and_the_live_mark_appended_to_it() {
        let mut msg = encode(&event(), b"meta", &[(0, b"one"), (3_840_000, b"two")]);
        msg.extend_from_slice(b"live");
        let sig = WriteSignal::parse(Bytes::from(msg)).unwrap();
        assert_eq!(sig.event.version, 7);
        let v = sig.values.unwrap();
        assert_eq!(&v.meta[..], b"meta");
        assert_eq!(v.chunks.len(), 2);
        assert_eq!(
            (v.chunks[1].0, &v.chunks[1].1[..]),
            (3_840_000, &b"two"[..])
        );
        assert_eq!(v.live.as_deref(), Some(&b"live"[..]));
    }

    #[test]
    fn values_too_large_are_left_out_and_a_bare_event_is_understood() {
        let big = vec![0u8; MAX_CARRIED_BYTES];
        let mut msg = encode(&event(), b"meta", &[(0, &big)]);
        msg.extend_from_slice(b"live");
        let sig = WriteSignal::parse(Bytes::from(msg)).unwrap();
        assert_eq!(sig.event.version, 7);
        assert!(sig.values.is_none());

        let bare = WriteSignal::parse(Bytes::from(event().to_json())).unwrap();
        assert_eq!(bare.event.last_t, Some(120_000));
        assert!(bare.values.is_none());
    }

    #[test]
    fn a_cut_message_is_refused() {
        let msg = encode(&event(), b"meta", &[(0, b"one")]);
        for cut in [msg.len() - 1, msg.len() - 6, msg.len() - 12] {
            let r = WriteSignal::parse(Bytes::copy_from_slice(&msg[..cut]));
            assert!(matches!(r, Err(BadSignal::Truncated)), "cut at {cut}");
        }
    }
}
