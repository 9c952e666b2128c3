//! The series store against a real redis-server: what a fetch confirms is kept, and any
//! window reads back, wherever it falls on the chunk grid.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use candlepipe_core::Encoding;
use candlepipe_core::{Candle, Fetched};
use candlepipe_store::{JobWrite, ReplyRead, WriteBasis, WriteSignal, CHUNK_CANDLES};
use candlepipe_testkit::RedisServer;
use common::{flat_candle, series, store};
use rust_decimal::Decimal;

const M: i64 = 60_000;

fn candle(t: i64, closed: bool) -> Candle {
    flat_candle(t, Decimal::new(t / M, 0), Decimal::ONE, closed)
}

#[tokio::test]
async fn windows_ending_on_a_chunk_start_read_back() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let s = series();
    let span = CHUNK_CANDLES * M;
    let base = 1_000 * span;
    let fetched = Fetched {
        candles: (0..3 * CHUNK_CANDLES)
            .map(|i| candle(base + i * M, true))
            .collect(),
        covered: vec![(base, base + (3 * CHUNK_CANDLES - 1) * M)],
        ..Fetched::default()
    };
    store.write(&s, &fetched, base + span * 10).await.unwrap();
    for (from, to) in [
        (base + span, base + span),
        (base, base + span),
        (base + 5 * M, base + 2 * span),
    ] {
        let read = store.read(&s, from, to).await.unwrap().unwrap();
        assert_eq!(
            read.candles.len() as i64,
            (to - from) / M + 1,
            "{from}..{to}"
        );
        assert!(read.state.coverage.contains(from, to));
    }
}

#[tokio::test]
async fn unconfirmed_open_times_are_remembered_until_confirmed() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let s = series();
    let base = 2_000 * CHUNK_CANDLES * M;
    // 10 closed, 11 not committed yet, 12 forming: asked at `first`.
    let first = base + 12 * M + 5_000;
    let fetched = Fetched {
        candles: vec![
            candle(base + 10 * M, true),
            candle(base + 11 * M, false),
            candle(base + 12 * M, false),
        ],
        covered: vec![(base + 10 * M, base + 10 * M)],
        unconfirmed: vec![base + 11 * M, base + 12 * M],
        history_from: Some(base + 5 * M),
        tail_fetched_at: Some(first),
        streamed: false,
    };
    store.write(&s, &fetched, first).await.unwrap();
    let state = store
        .read(&s, base, base + 12 * M)
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(state.asked.get(&(base + 11 * M)), Some(&first));
    assert_eq!(state.history_from, base + 5 * M);

    // 11 committed and 12 confirmed empty after all: the open candle stored for 12 goes.
    let later = first + 60_000;
    let fetched = Fetched {
        candles: vec![candle(base + 11 * M, true)],
        covered: vec![(base + 11 * M, base + 12 * M)],
        ..Fetched::default()
    };
    store.write(&s, &fetched, later).await.unwrap();
    let read = store.read(&s, base, base + 12 * M).await.unwrap().unwrap();
    assert!(read.state.asked.is_empty());
    assert!(read.state.coverage.contains(base + 10 * M, base + 12 * M));
    assert_eq!(
        read.candles
            .iter()
            .map(|c| (c.t, c.closed))
            .collect::<Vec<_>>(),
        vec![(base + 10 * M, true), (base + 11 * M, true)]
    );
}

fn closed_run(from: i64, count: i64) -> Fetched {
    Fetched {
        candles: (0..count).map(|i| candle(from + i * M, true)).collect(),
        covered: vec![(from, from + (count - 1) * M)],
        ..Fetched::default()
    }
}

#[tokio::test]
async fn a_job_write_marks_its_job_and_merges_even_when_it_thought_nothing_stored() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let s = series();
    let base = 3_000 * CHUNK_CANDLES * M;
    let nothing = WriteBasis::default();
    let job = |id| JobWrite {
        id,
        done_for: Duration::from_secs(60),
        basis: Some(&nothing),
        signal: false,
    };

    // A new series: written without a read first, the job marked in the same swap.
    let first = closed_run(base, 10);
    let w = store
        .write_for_job(&s, &first, base + 20 * M, job("job-1"))
        .await
        .unwrap();
    // A first version is the write time in microseconds: never one a Redis that lost its
    // data had named before.
    let first_version = (base + 20 * M) as u64 * 1000;
    assert_eq!(w.version, first_version);
    assert!(store.job_done(&s, "job-1").await.unwrap());
    assert!(!store.job_done(&s, "job-2").await.unwrap());

    // Another job that read nothing before this write landed: its swap fails, it reads and
    // merges, and nothing of the first write is lost.
    let second = closed_run(base + 10 * M, 10);
    let w = store
        .write_for_job(&s, &second, base + 21 * M, job("job-2"))
        .await
        .unwrap();
    assert_eq!(w.version, first_version + 1);
    assert!(store.job_done(&s, "job-2").await.unwrap());
    let read = store.read(&s, base, base + 19 * M).await.unwrap().unwrap();
    assert_eq!(read.candles.len(), 20);
    assert!(read.state.coverage.contains(base, base + 19 * M));

    // The mark expires with the dedup window.
    let mut conn = server.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*job:job-1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
}

/// GETs Redis has run so far (the scripts' own included).
async fn gets_run(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn a_job_write_merges_into_what_its_read_found_and_reads_again_if_a_write_came_between() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let mut conn = server.conn().await;
    let s = series();
    let base = 3_500 * CHUNK_CANDLES * M;
    let job = |id, basis| JobWrite {
        id,
        done_for: Duration::from_secs(60),
        basis,
        signal: false,
    };
    let read = |to| store.read(&s, base, to);
    store
        .write(&s, &closed_run(base, 10), base + 20 * M)
        .await
        .unwrap();

    // A write came between the job's read and its write: the swap fails on the version,
    // and the write reads and merges on top of it; nothing of either is lost.
    let before = read(base + 9 * M).await.unwrap().unwrap();
    let between = store
        .write(&s, &closed_run(base + 10 * M, 10), base + 21 * M)
        .await
        .unwrap();
    let w = store
        .write_for_job(
            &s,
            &closed_run(base + 20 * M, 10),
            base + 22 * M,
            job("job-1", Some(&before.basis)),
        )
        .await
        .unwrap();
    assert_eq!(w.version, between.version + 1);
    let all = read(base + 29 * M).await.unwrap().unwrap();
    assert_eq!(all.candles.len(), 30);
    assert!(all.state.coverage.contains(base, base + 29 * M));
    assert!(store.job_done(&s, "job-1").await.unwrap());

    // Nothing came between: the write merges into what the read found without reading the
    // series' version and meta again (two GETs fewer than a write that reads first).
    let write_on = |basis, id, from| {
        let (store, s) = (&store, &s);
        async move {
            store
                .write_for_job(s, &closed_run(from, 10), from + 20 * M, job(id, basis))
                .await
                .unwrap()
        }
    };
    let gets = gets_run(&mut conn).await;
    let w = write_on(Some(&all.basis), "job-2", base + 30 * M).await;
    let on_basis = gets_run(&mut conn).await - gets;
    assert_eq!(w.version, all.state.version + 1);
    let gets = gets_run(&mut conn).await;
    write_on(None, "job-3", base + 40 * M).await;
    let reading_first = gets_run(&mut conn).await - gets;
    assert_eq!(reading_first, on_basis + 2, "{on_basis} GETs on the basis");
    let all = read(base + 49 * M).await.unwrap().unwrap();
    assert_eq!(all.candles.len(), 50);
    assert!(all.state.coverage.contains(base, base + 49 * M));
}

#[tokio::test]
async fn history_past_the_cap_goes_with_its_runs() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let s = series();
    let base = 4_000 * CHUNK_CANDLES * M;
    let span = CHUNK_CANDLES * M;
    // 5,000 candles are kept: 79 chunks, plus one of slack.
    let chunks = 90;
    for i in 0..chunks {
        let at = base + i * span;
        store
            .write(&s, &closed_run(at, CHUNK_CANDLES), at + span)
            .await
            .unwrap();
    }
    let conn = server.conn().await;
    let count = |pattern: &'static str| {
        let mut conn = conn.clone();
        async move {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.len() as i64
        }
    };
    let kept = count("t:s:*:c:*").await;
    assert_eq!(kept, 80);
    // Every kept chunk has its four runs in each format, and no dropped one left any.
    assert_eq!(count("t:s:*:j:*").await, kept * 4);
    assert_eq!(count("t:s:*:m:*").await, kept * 4);
    let oldest = base + (chunks - kept) * span;
    let read = store
        .read(&s, oldest - span, oldest + span - M)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.candles.first().map(|c| c.t), Some(oldest));
    assert!(!read.state.coverage.contains(oldest - M, oldest));
}

#[tokio::test]
async fn a_write_of_many_chunks_is_stored_whole() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let s = series();
    let base = 5_000 * CHUNK_CANDLES * M;
    // 70 chunks: 630 values, more than one MSET of the write script takes.
    let count = 70 * CHUNK_CANDLES;
    let end = base + (count - 1) * M;
    store
        .write(&s, &closed_run(base, count), end + M)
        .await
        .unwrap();
    let read = store.read(&s, base, end).await.unwrap().unwrap();
    assert_eq!(read.candles.len() as i64, count);
    assert!(read.state.coverage.contains(base, end));
    let reply = store
        .read_reply(&s, end - 99 * M, end, candlepipe_core::Encoding::Json)
        .await
        .unwrap();
    match reply {
        candlepipe_store::ReplyRead::Served(r) => assert_eq!(r.rows.len(), 100),
        other => panic!("not served from fragments: {other:?}"),
    }
}

/// The next signal heard on the store's channel, if one comes within 300 ms.
async fn next_signal(
    heard: &mut (impl futures::Stream<Item = redis::Msg> + Unpin),
) -> Option<WriteSignal> {
    use futures::StreamExt;
    let msg = tokio::time::timeout(Duration::from_millis(300), heard.next())
        .await
        .ok()
        .flatten()?;
    Some(WriteSignal::parse(Bytes::copy_from_slice(msg.get_payload_bytes())).unwrap())
}

#[tokio::test]
async fn a_signalling_job_write_publishes_its_ready_event_and_values_once_as_it_lands() {
    let server = RedisServer::start();
    let store = store(&server).await;
    assert_eq!(store.ready_channel(), "t:ready");
    let client = redis::Client::open(server.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(store.ready_channel()).await.unwrap();
    let mut heard = pubsub.into_on_message();
    let s = series();
    let base = 5_000 * CHUNK_CANDLES * M;
    let nothing = WriteBasis::default();
    let job = |id, signal| JobWrite {
        id,
        done_for: Duration::from_secs(60),
        basis: Some(&nothing),
        signal,
    };
    // What the signal's values open to for `[from, to]`, beside what a read finds.
    let opened = |sig: &WriteSignal, from, to| {
        let values = sig.values.as_ref().expect("the write's values");
        store
            .read_signalled(&s, sig.event.version, values, from, to)
            .map(|r| (r.state.version, r.state.coverage, r.candles))
    };
    let read = |from, to| {
        let store = store.clone();
        let s = s.clone();
        async move {
            let r = store.read(&s, from, to).await.unwrap().unwrap();
            Some((r.state.version, r.state.coverage, r.candles))
        }
    };

    // Applied at the first attempt: its event, with the version and newest open time written.
    let w = store
        .write_for_job(&s, &closed_run(base, 10), base + 20 * M, job("a", true))
        .await
        .unwrap();
    let sig = next_signal(&mut heard).await.expect("the write's signal");
    let event = &sig.event;
    assert_eq!(event.series, s);
    assert_eq!(event.version, w.version);
    assert_eq!(event.last_t, Some(base + 9 * M));
    assert!(event.error.is_none());
    assert_eq!(
        opened(&sig, base, base + 9 * M),
        read(base, base + 9 * M).await
    );
    assert_eq!(opened(&sig, base + 2 * M, base + 3 * M).unwrap().2.len(), 2);
    assert!(
        store
            .read_signalled(
                &s,
                w.version + 1,
                sig.values.as_ref().unwrap(),
                base,
                base + 9 * M
            )
            .is_none(),
        "values of another version than the event's"
    );
    assert!(
        next_signal(&mut heard).await.is_none(),
        "one signal per write"
    );
    // Its runs follow the swap: until they are written a Redis hit reads the chunks (and
    // drops nothing), then it is served from them.
    let hit = |from, to| store.read_reply(&s, from, to, Encoding::Json);
    assert!(matches!(
        hit(base, base + 9 * M).await.unwrap(),
        ReplyRead::Unserved
    ));
    assert_eq!(read(base, base + 9 * M).await.unwrap().2.len(), 10);
    store
        .write_runs(w.runs.clone().expect("runs to follow"))
        .await;
    match hit(base, base + 9 * M).await.unwrap() {
        ReplyRead::Served(r) => assert_eq!(r.rows.len(), 10),
        other => panic!("not served from its runs: {other:?}"),
    }

    // Its first swap refused (it thought nothing stored), the merge applied: one signal, for
    // the version that landed, carrying the merged chunk.
    let w = store
        .write_for_job(
            &s,
            &closed_run(base + 10 * M, 10),
            base + 21 * M,
            job("b", true),
        )
        .await
        .unwrap();
    let sig = next_signal(&mut heard)
        .await
        .expect("the merged write's signal");
    assert_eq!(
        (sig.event.version, sig.event.last_t),
        (w.version, Some(base + 19 * M))
    );
    let got = opened(&sig, base, base + 19 * M);
    assert_eq!(got.as_ref().unwrap().2.len(), 20);
    assert_eq!(got, read(base, base + 19 * M).await);
    assert!(
        next_signal(&mut heard).await.is_none(),
        "the refused swap published nothing"
    );
    // A write that replaced the chunk before the runs came keeps its own runs.
    store
        .write(&s, &closed_run(base + 10 * M, 12), base + 22 * M)
        .await
        .unwrap();
    store
        .write_runs(w.runs.clone().expect("runs to follow"))
        .await;
    match hit(base, base + 21 * M).await.unwrap() {
        ReplyRead::Served(r) => assert_eq!(r.rows.len(), 22),
        other => panic!("the later write's runs were replaced: {other:?}"),
    }

    // A write to the next chunk carries that chunk only: a window reaching back into the
    // one it did not rewrite is not opened from it.
    let next = base + CHUNK_CANDLES * M;
    store
        .write_for_job(&s, &closed_run(next, 5), next + 10 * M, job("d", true))
        .await
        .unwrap();
    let sig = next_signal(&mut heard).await.expect("the signal");
    assert_eq!(
        opened(&sig, next, next + 4 * M),
        read(next, next + 4 * M).await
    );
    assert!(opened(&sig, base, next + 4 * M).is_none());

    // Altered on its way, a value does not open.
    store
        .write_for_job(
            &s,
            &closed_run(next + 5 * M, 5),
            next + 20 * M,
            job("e", true),
        )
        .await
        .unwrap();
    let msg = tokio::time::timeout(
        Duration::from_millis(300),
        futures::StreamExt::next(&mut heard),
    )
    .await
    .unwrap()
    .unwrap();
    let mut payload = msg.get_payload_bytes().to_vec();
    let last = payload.len() - 1;
    payload[last] ^= 1;
    let sig = WriteSignal::parse(Bytes::from(payload)).unwrap();
    assert!(opened(&sig, next, next + 9 * M).is_none());

    // Writes that do not signal publish nothing.
    let w = store
        .write_for_job(
            &s,
            &closed_run(base + 20 * M, 5),
            base + 30 * M,
            job("c", false),
        )
        .await
        .unwrap();
    assert!(w.runs.is_none(), "its runs came in the swap");
    store
        .write(&s, &closed_run(base + 25 * M, 5), base + 31 * M)
        .await
        .unwrap();
    assert!(next_signal(&mut heard).await.is_none());
}
