//! Reply fragments against a real redis-server: what a Redis hit copies into a reply is
//! byte for byte the stored candles encoded, and a run that is altered, missing or of
//! another write is never served.

#![allow(clippy::unwrap_used)]

mod common;

use candlepipe_core::reply_parts::write_candle;
use candlepipe_core::{Candle, Encoding, Fetched};
use candlepipe_store::{ReplyRead, SeriesStore, StoredReply, RUN_CANDLES};
use candlepipe_testkit::{flip_a_byte, RedisServer};
use common::series;
use rust_decimal::Decimal;

const M: i64 = 60_000;
/// A run-aligned start (runs and chunks align on the epoch for minutes).
const BASE: i64 = 1_000 * 64 * M;

async fn connect(server: &RedisServer) -> (SeriesStore, redis::aio::MultiplexedConnection) {
    (common::store(server).await, server.conn().await)
}

fn candle(t: i64, closed: bool) -> Candle {
    let n = (t - BASE) / M;
    Candle {
        t,
        o: Decimal::new(9_123_410 + n, 2),
        h: Decimal::new(91_300 + n, 0),
        l: Decimal::new(-5 * n, 3),
        c: Decimal::new(n, 8),
        v: Decimal::new(1_234_500, 5),
        closed,
        synthetic: false,
        ..Default::default()
    }
}

fn run_key(letter: &str, start: i64) -> String {
    format!("t:s:{{binance:BTC-USDT:1m}}:{letter}:{start}")
}

fn chunk_key(start: i64) -> String {
    format!("t:s:{{binance:BTC-USDT:1m}}:c:{start}")
}

async fn served(store: &SeriesStore, from: i64, to: i64, enc: Encoding) -> StoredReply {
    match store.read_reply(&series(), from, to, enc).await.unwrap() {
        ReplyRead::Served(r) => r,
        other => panic!("{from}..{to} {enc:?}: {other:?}"),
    }
}

/// 3 chunks' worth with holes, the last candle open; then a second write changing some.
async fn written(store: &SeriesStore) {
    let s = series();
    let first = Fetched {
        candles: (0..190)
            .filter(|i| i % 7 != 3)
            .map(|i| candle(BASE + i * M, i < 189))
            .collect(),
        covered: vec![(BASE, BASE + 188 * M)],
        ..Fetched::default()
    };
    store.write(&s, &first, BASE + 200 * M).await.unwrap();
    let mut again = candle(BASE + 189 * M, true);
    again.v = Decimal::new(7, 1);
    let second = Fetched {
        candles: vec![candle(BASE + 188 * M, true), again],
        covered: vec![(BASE + 188 * M, BASE + 189 * M)],
        ..Fetched::default()
    };
    store.write(&s, &second, BASE + 201 * M).await.unwrap();
}

/// The fragments of every row, as bytes.
fn fragments(reply: &StoredReply) -> Vec<Vec<u8>> {
    reply
        .rows
        .iter()
        .map(|r| reply.fragment(r).to_vec())
        .collect()
}

#[tokio::test]
async fn fragments_are_the_stored_candles_encoded() {
    let server = RedisServer::start();
    let (store, _) = connect(&server).await;
    written(&store).await;
    stored_candles_encoded(&store).await;
    // A store that keeps what it verified answers its second read from the kept values:
    // the same fragments.
    let remembering = common::remembering_store(&server).await;
    stored_candles_encoded(&remembering).await;
    stored_candles_encoded(&remembering).await;
}

async fn stored_candles_encoded(store: &SeriesStore) {
    for (from, to) in [
        (BASE, BASE + 99 * M),
        (BASE + 5 * M, BASE + 104 * M),
        (BASE + 18 * M, BASE + 18 * M),
        (BASE + 63 * M, BASE + 64 * M),
        (BASE + 150 * M, BASE + 260 * M),
        (BASE - 20 * M, BASE + 3 * M),
    ] {
        let read = store.read(&series(), from, to).await.unwrap().unwrap();
        assert!(!read.candles.is_empty(), "{from}..{to}");
        for enc in [Encoding::Json, Encoding::Msgpack] {
            let reply = served(store, from, to, enc).await;
            assert_eq!(reply.state.version, read.state.version);
            assert_eq!(reply.state.coverage, read.state.coverage);
            let times: Vec<i64> = reply.rows.iter().map(|r| r.t).collect();
            let want: Vec<i64> = read.candles.iter().map(|c| c.t).collect();
            assert_eq!(times, want, "{from}..{to} {enc:?}");
            for (row, c) in reply.rows.iter().zip(&read.candles) {
                let mut bytes = Vec::new();
                write_candle(enc, c, &mut bytes);
                assert_eq!(reply.fragment(row), &bytes[..], "{} {enc:?}", c.t);
            }
        }
    }
    // The second write's change is what the fragments hold.
    let last = served(store, BASE + 189 * M, BASE + 189 * M, Encoding::Json).await;
    let text = String::from_utf8(last.fragment(&last.rows[0]).to_vec()).unwrap();
    assert!(text.contains("\"v\":\"0.7\",\"closed\":true"), "{text}");
}

#[tokio::test]
async fn runs_altered_missing_or_of_another_write_are_not_served() {
    let server = RedisServer::start();
    let (store, mut raw) = connect(&server).await;
    written(&store).await;
    let get = |key: String| {
        let mut c = redis::cmd("GET");
        c.arg(key);
        c
    };
    let exists = |key: String| {
        let mut c = redis::cmd("EXISTS");
        c.arg(key);
        c
    };

    // A run of the first write, put back over the second's: left in place, not served.
    let run = BASE + 128 * M + RUN_CANDLES * 3 * M; // holds 188 and 189
    let old_run: Vec<u8> = get(run_key("j", run)).query_async(&mut raw).await.unwrap();
    let s = series();
    let third = Fetched {
        candles: vec![candle(BASE + 189 * M, true)],
        covered: vec![(BASE + 189 * M, BASE + 189 * M)],
        ..Fetched::default()
    };
    store.write(&s, &third, BASE + 202 * M).await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(run_key("j", run))
        .arg(&old_run)
        .query_async(&mut raw)
        .await
        .unwrap();
    let read = store
        .read_reply(&s, BASE + 150 * M, BASE + 189 * M, Encoding::Json)
        .await
        .unwrap();
    assert!(matches!(read, ReplyRead::Unserved), "{read:?}");
    assert_eq!(
        exists(run_key("j", run))
            .query_async::<i64>(&mut raw)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        exists(chunk_key(BASE + 128 * M))
            .query_async::<i64>(&mut raw)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.tampered_total(), 0);
    // MessagePack runs of that chunk are still current.
    served(&store, BASE + 150 * M, BASE + 189 * M, Encoding::Msgpack).await;

    // An altered run: deleted with its chunk, counted; the full read then lacks that chunk.
    let key = run_key("m", BASE + 16 * M);
    flip_a_byte(&mut raw, &key).await;
    let read = store
        .read_reply(&s, BASE, BASE + 40 * M, Encoding::Msgpack)
        .await
        .unwrap();
    assert!(matches!(read, ReplyRead::Unserved), "{read:?}");
    assert_eq!(store.tampered_total(), 1);
    assert_eq!(exists(key).query_async::<i64>(&mut raw).await.unwrap(), 0);
    assert_eq!(
        exists(chunk_key(BASE))
            .query_async::<i64>(&mut raw)
            .await
            .unwrap(),
        0
    );
    let full = store.read(&s, BASE, BASE + 40 * M).await.unwrap().unwrap();
    assert!(
        full.candles.is_empty(),
        "the chunk is refetched, not served"
    );
    assert!(!full.state.coverage.covers(BASE + 16 * M));

    // A missing run: its chunk goes too, so a fill rewrites both.
    let _: () = redis::cmd("DEL")
        .arg(run_key("j", BASE + 64 * M))
        .query_async(&mut raw)
        .await
        .unwrap();
    let read = store
        .read_reply(&s, BASE + 64 * M, BASE + 70 * M, Encoding::Json)
        .await
        .unwrap();
    assert!(matches!(read, ReplyRead::Unserved), "{read:?}");
    assert_eq!(
        exists(chunk_key(BASE + 64 * M))
            .query_async::<i64>(&mut raw)
            .await
            .unwrap(),
        0
    );

    // An altered chunk, found by a full read: its runs go with it.
    let key = chunk_key(BASE + 128 * M);
    flip_a_byte(&mut raw, &key).await;
    store
        .read(&s, BASE + 128 * M, BASE + 140 * M)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.tampered_total(), 2);
    for letter in ["j", "m"] {
        let run = run_key(letter, BASE + 128 * M);
        assert_eq!(
            exists(run).query_async::<i64>(&mut raw).await.unwrap(),
            0,
            "{letter}"
        );
    }
    let read = store
        .read_reply(&s, BASE + 128 * M, BASE + 140 * M, Encoding::Msgpack)
        .await
        .unwrap();
    assert!(matches!(read, ReplyRead::Unserved), "{read:?}");
}

#[tokio::test]
async fn kept_runs_are_served_while_the_meta_names_them_and_never_after() {
    let server = RedisServer::start();
    let store = common::remembering_store(&server).await;
    let mut raw = server.conn().await;
    written(&store).await;
    let s = series();
    let first = served(&store, BASE, BASE + 99 * M, Encoding::Json).await;
    assert_eq!(first.rows.len(), 86);

    // Altered behind the kept copy: this store serves the value it verified, of the
    // version the meta names, without reading it again.
    let key = run_key("j", BASE + 16 * M);
    flip_a_byte(&mut raw, &key).await;
    let again = served(&store, BASE, BASE + 99 * M, Encoding::Json).await;
    assert_eq!(fragments(&again), fragments(&first));
    assert_eq!(store.tampered_total(), 0);
    // A process that kept nothing finds the alteration: deleted with its chunk, counted.
    let other = common::store(&server).await;
    let read = other
        .read_reply(&s, BASE, BASE + 99 * M, Encoding::Json)
        .await
        .unwrap();
    assert!(matches!(read, ReplyRead::Unserved), "{read:?}");
    assert_eq!(other.tampered_total(), 1);

    // Rewritten: the meta names a newer version, which is read and served, not the kept one.
    let before = served(&store, BASE + 150 * M, BASE + 189 * M, Encoding::Json).await;
    let mut changed = candle(BASE + 189 * M, true);
    changed.v = Decimal::new(9, 1);
    let third = Fetched {
        candles: vec![changed],
        covered: vec![(BASE + 189 * M, BASE + 189 * M)],
        ..Fetched::default()
    };
    store.write(&s, &third, BASE + 202 * M).await.unwrap();
    let after = served(&store, BASE + 150 * M, BASE + 189 * M, Encoding::Json).await;
    assert!(after.state.version > before.state.version);
    let last = |r: &StoredReply| String::from_utf8(fragments(r).pop().unwrap()).unwrap();
    assert!(last(&before).contains("\"v\":\"0.7\""), "{}", last(&before));
    assert!(last(&after).contains("\"v\":\"0.9\""), "{}", last(&after));

    // Redis lost everything and the series was written again: its versions start past any
    // it named before, so no kept value is taken for the new ones.
    let _: () = redis::cmd("FLUSHALL").query_async(&mut raw).await.unwrap();
    let mut forming = candle(BASE + 189 * M, false);
    forming.v = Decimal::new(1, 1);
    let anew = Fetched {
        candles: vec![forming],
        covered: vec![],
        ..Fetched::default()
    };
    other.write(&s, &anew, BASE + 189 * M).await.unwrap();
    let fresh = served(&store, BASE + 150 * M, BASE + 189 * M, Encoding::Json).await;
    assert_eq!(fresh.rows.len(), 1);
    assert!(last(&fresh).contains("\"v\":\"0.1\""), "{}", last(&fresh));
}

#[tokio::test]
async fn values_of_the_format_before_fragments_are_plain_misses() {
    let server = RedisServer::start();
    let (store, mut raw) = connect(&server).await;
    written(&store).await;
    // What the previous release wrote: the same envelope with format 4 (no runs then).
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("t:s:*")
        .query_async(&mut raw)
        .await
        .unwrap();
    for key in keys
        .iter()
        .filter(|k| k.ends_with(":meta") || k.contains(":c:"))
    {
        let value: Vec<u8> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut raw)
            .await
            .unwrap();
        let at = value
            .windows(3)
            .position(|w| w == [0xa1, b'f', candlepipe_store::envelope::FORMAT_VERSION])
            .expect("format field");
        let mut older = value.clone();
        older[at + 2] = 4;
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(older)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    for letter in ["j", "m"] {
        let runs: Vec<String> = redis::cmd("KEYS")
            .arg(format!("t:s:*:{letter}:*"))
            .query_async(&mut raw)
            .await
            .unwrap();
        let _: () = redis::cmd("DEL")
            .arg(runs)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    let read = store
        .read_reply(&series(), BASE, BASE + 99 * M, Encoding::Json)
        .await
        .unwrap();
    assert!(matches!(read, ReplyRead::Absent), "{read:?}");
    assert!(store
        .read(&series(), BASE, BASE + 99 * M)
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.tampered_total(), 0, "not tampering: a plain miss");
    let meta: i64 = redis::cmd("EXISTS")
        .arg("t:s:{binance:BTC-USDT:1m}:meta")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(meta, 0, "the old meta is deleted");
}

#[tokio::test]
async fn kept_values_never_make_a_read_racing_writes_see_damage() {
    // A reader that kept every run and chunk it verified, against a writer rewriting one
    // of their chunks without pause: each read finds the meta naming newer versions than
    // it kept and reads those again, while the writer may write once more in between.
    // Whatever the interleaving, every read must be whole: the meta's coverage and every
    // candle of it, and every run served.
    let server = RedisServer::start();
    let reader = common::remembering_store(&server).await;
    let writer = common::store(&server).await;
    written(&writer).await;
    let s = series();
    let whole = reader
        .read(&s, BASE, BASE + 189 * M)
        .await
        .unwrap()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = tokio::spawn({
        let (stop, s) = (stop.clone(), s.clone());
        async move {
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let mut c = candle(BASE + 189 * M, true);
                c.v = Decimal::new(n, 1);
                let fetched = Fetched {
                    candles: vec![c],
                    covered: vec![(BASE + 189 * M, BASE + 189 * M)],
                    ..Fetched::default()
                };
                writer
                    .write(&s, &fetched, BASE + 202 * M + n)
                    .await
                    .unwrap();
            }
            n
        }
    });
    for i in 0..400 {
        let read = reader
            .read(&s, BASE, BASE + 189 * M)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.state.coverage, whole.state.coverage, "read {i}");
        assert_eq!(read.candles.len(), whole.candles.len(), "read {i}");
        let reply = served(&reader, BASE, BASE + 189 * M, Encoding::Json).await;
        assert_eq!(reply.rows.len(), whole.candles.len(), "reply {i}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writing.await.unwrap();
    assert!(writes >= 50, "only {writes} writes raced the reads");
    assert_eq!(reader.tampered_total(), 0);
}
