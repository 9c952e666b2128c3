//! A fill's write handed to the waiting ingests opens to what a read of Redis gives once
//! it landed, and to nothing at all when it is not all there, not genuine, for another key
//! or old; an attempt whose swap failed is told apart by its version.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use candlepipe_core::{Candle, Fetched, SeriesKey};
use candlepipe_store::series_store::HANDED_MAX_AGE_MS;
use candlepipe_store::{HandOver, Handed, JobWrite, SeriesStore, Written, CHUNK_CANDLES};
use candlepipe_testkit::RedisServer;
use common::{flat_candle, series, store};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::sync::mpsc;

const M: i64 = 60_000;

fn closed_run(from: i64, count: i64) -> Fetched {
    Fetched {
        candles: (0..count)
            .map(|i| {
                let t = from + i * M;
                flat_candle(t, Decimal::new(t / M, 0), Decimal::ONE, true)
            })
            .collect::<Vec<Candle>>(),
        covered: vec![(from, from + (count - 1) * M)],
        ..Fetched::default()
    }
}

/// A job's write handing over as writer 7; what it handed over, attempt by attempt.
async fn write_handing_over(
    store: &SeriesStore,
    fetched: &Fetched,
    now: i64,
    found_nothing: bool,
) -> (Written, Vec<Handed>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let job = JobWrite {
        id: "job",
        done_for: Duration::from_secs(60),
        found_nothing,
        hand_over: Some(HandOver { to: &tx, writer: 7 }),
    };
    let written = store
        .write_for_job(&series(), fetched, now, job)
        .await
        .unwrap();
    drop(tx);
    let mut handed = Vec::new();
    while let Ok(h) = rx.try_recv() {
        assert_eq!(h.writer, 7);
        handed.push(h);
    }
    assert_eq!(written.handed_as, Some(7));
    (written, handed)
}

/// The hand-over as it goes over the wire, to be tampered with.
#[derive(Serialize, Deserialize)]
struct Wire {
    series: SeriesKey,
    writer: u64,
    meta: ByteBuf,
    chunks: Vec<(i64, ByteBuf)>,
}

fn to_wire(h: &Handed) -> Wire {
    rmp_serde::from_slice(&rmp_serde::to_vec_named(h).unwrap()).unwrap()
}

fn from_wire(w: &Wire) -> Handed {
    rmp_serde::from_slice(&rmp_serde::to_vec_named(w).unwrap()).unwrap()
}

#[tokio::test]
async fn a_hand_over_opens_to_what_a_read_gives_and_to_nothing_else() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let s = series();
    let span = CHUNK_CANDLES * M;
    let base = 4_000 * span;
    let now = base + 10 * span;

    // A first write over two chunks and a bit: three chunks handed over.
    let (first, mut attempts) = write_handing_over(
        &store,
        &closed_run(base, 2 * CHUNK_CANDLES + 10),
        now,
        false,
    )
    .await;
    assert_eq!(attempts.len(), 1);
    let handed = attempts.remove(0);
    assert_eq!(to_wire(&handed).chunks.len(), 3);
    for (from, to) in [
        (base, base + 5 * M),
        (base + 3 * M, base + span + 7 * M),
        (base, base + 2 * span + 9 * M),
        (base - 50 * M, base + 2 * span + 30 * M),
    ] {
        let opened = store.open_handed(&handed, from, to, now).unwrap();
        let read = store.read(&s, from, to).await.unwrap().unwrap();
        assert_eq!(opened.candles, read.candles, "{from}..{to}");
        assert_eq!(opened.state, read.state, "{from}..{to}");
        assert_eq!(opened.state.version, first.version);
    }
    // Taken up to its age limit, not after (nor from a clock that far ahead).
    let w = (base, base + 5 * M);
    assert!(store
        .open_handed(&handed, w.0, w.1, now + HANDED_MAX_AGE_MS)
        .is_some());
    assert!(store
        .open_handed(&handed, w.0, w.1, now + HANDED_MAX_AGE_MS + 1)
        .is_none());
    assert!(store
        .open_handed(&handed, w.0, w.1, now - HANDED_MAX_AGE_MS - 1)
        .is_none());

    // A second write touching only the third chunk hands over that chunk: a window in it
    // opens, one reaching the first chunk does not (the caller reads Redis).
    let later = now + 1_000;
    let (second, mut attempts) = write_handing_over(
        &store,
        &closed_run(base + 2 * CHUNK_CANDLES * M + 10 * M, 5),
        later,
        false,
    )
    .await;
    let handed2 = attempts.remove(0);
    assert_eq!(
        store
            .open_handed(&handed2, base + 2 * span, base + 2 * span, later)
            .unwrap()
            .state
            .version,
        second.version
    );
    assert_eq!(to_wire(&handed2).chunks.len(), 1);
    let in_third = (base + 2 * span, base + 2 * span + 14 * M);
    let opened = store
        .open_handed(&handed2, in_third.0, in_third.1, later)
        .unwrap();
    assert_eq!(opened.candles.len(), 15);
    assert_eq!(
        opened.candles,
        store
            .read(&s, in_third.0, in_third.1)
            .await
            .unwrap()
            .unwrap()
            .candles
    );
    assert!(store
        .open_handed(&handed2, base, in_third.1, later)
        .is_none());

    // The second write's meta with the first write's third chunk: not the version it names.
    let mut mixed = to_wire(&handed2);
    mixed.chunks = vec![to_wire(&handed).chunks[2].clone()];
    assert!(store
        .open_handed(&from_wire(&mixed), in_third.0, in_third.1, later)
        .is_none());
    // Any byte changed, in the meta or a chunk: nothing.
    for at in [0usize, 1] {
        let mut bad = to_wire(&handed);
        let value = match at {
            0 => &mut bad.meta,
            _ => &mut bad.chunks[1].1,
        };
        let mid = value.len() / 2;
        value[mid] ^= 0x01;
        assert!(store
            .open_handed(&from_wire(&bad), base, base + 2 * span, now)
            .is_none());
    }
    // Values sealed for one series do not open as another's.
    let mut other = to_wire(&handed);
    other.series = SeriesKey::new(s.exchange, s.symbol.clone(), candlepipe_core::Interval::M3);
    assert!(store
        .open_handed(&from_wire(&other), base, base + 5 * M, now)
        .is_none());

    // A write that is not a job's (the stream's) hands nothing over.
    let plain = store
        .write(&s, &closed_run(base + 3 * span, 3), later)
        .await
        .unwrap();
    assert_eq!(plain.handed_as, None);

    // A job that thought nothing stored hands over a first attempt whose swap fails, then
    // the merged one that lands: only the second has the version its `ready` names.
    let (third, attempts) =
        write_handing_over(&store, &closed_run(base + 4 * span, 3), later, true).await;
    assert_eq!(attempts.len(), 2);
    let versions: Vec<u64> = attempts
        .iter()
        .map(|h| {
            store
                .open_handed(h, base + 4 * span, base + 4 * span + 2 * M, later)
                .unwrap()
                .state
                .version
        })
        .collect();
    assert_ne!(versions[0], third.version);
    assert_eq!(versions[1], third.version);
}
