//! The series store against a real redis-server: what a fetch confirms is kept, and any
//! window reads back, wherever it falls on the chunk grid.

#![allow(clippy::unwrap_used)]

use candlepipe_core::{Candle, Exchange, Fetched, Interval, SeriesKey, Symbol};
use candlepipe_store::{Keyring, Redis, SeriesStore, CHUNK_CANDLES};
use candlepipe_testkit::RedisServer;
use rust_decimal::Decimal;

const M: i64 = 60_000;

async fn store(server: &RedisServer) -> SeriesStore {
    let client = redis::Client::open(server.url()).unwrap();
    let conn = Redis::Single(redis::aio::ConnectionManager::new(client).await.unwrap());
    let keys = Keyring::new("k1", b"a test key of 32 bytes, no more.");
    SeriesStore::new(conn, keys, "t:", 5_000)
}

fn candle(t: i64, closed: bool) -> Candle {
    let d = Decimal::new(t / M, 0);
    Candle {
        t,
        o: d,
        h: d,
        l: d,
        c: d,
        v: Decimal::ONE,
        closed,
        synthetic: false,
    }
}

fn series() -> SeriesKey {
    SeriesKey::new(
        Exchange::Binance,
        Symbol::parse("BTC/USDT").unwrap(),
        Interval::M1,
    )
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
