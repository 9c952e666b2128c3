//! "Confirmed wins" (SPEC §4, ARCHITECTURE's invariant), against a real redis-server: a
//! closed, covered candle is never replaced by a forming or unconfirmed one, and a
//! REST-confirmed candle only by another REST read, whatever order the writes land in.

#![allow(clippy::unwrap_used)]

mod common;

use candlepipe_core::{Candle, Fetched};
use candlepipe_store::CHUNK_CANDLES;
use candlepipe_testkit::RedisServer;
use common::{flat_candle, series, store};
use rust_decimal::Decimal;

const M: i64 = 60_000;

/// A candle at `t` whose close is `close` (the other prices follow it).
fn candle(t: i64, close: i64, volume: i64, closed: bool) -> Candle {
    flat_candle(t, Decimal::new(close, 2), Decimal::new(volume, 3), closed)
}

/// A REST answer that read `c` forming (asked again later).
fn rest_forming(c: Candle, at: i64) -> Fetched {
    Fetched {
        unconfirmed: vec![c.t],
        candles: vec![c],
        tail_fetched_at: Some(at),
        ..Fetched::default()
    }
}

/// A REST answer that returned `c` closed.
fn rest_closed(c: Candle) -> Fetched {
    Fetched {
        covered: vec![(c.t, c.t)],
        candles: vec![c],
        ..Fetched::default()
    }
}

/// The stream's closing update of `c` (Binance's `x:true`).
fn stream_closed(c: Candle) -> Fetched {
    Fetched {
        covered: vec![(c.t, c.t)],
        candles: vec![c],
        streamed: true,
        ..Fetched::default()
    }
}

/// The stream's unconfirmed value of `c` (a forming update, a candle built from trades).
fn stream_unconfirmed(c: Candle, at: i64) -> Fetched {
    Fetched {
        unconfirmed: vec![c.t],
        candles: vec![c],
        streamed: true,
        tail_fetched_at: Some(at),
        ..Fetched::default()
    }
}

async fn stored_at(store: &candlepipe_store::SeriesStore, t: i64) -> (Candle, bool) {
    let s = series();
    let read = store.read(&s, t, t).await.unwrap().unwrap();
    assert_eq!(read.candles.len(), 1, "one candle at {t}");
    (read.candles[0].clone(), read.state.coverage.covers(t))
}

#[tokio::test]
async fn a_fill_that_read_a_forming_candle_never_replaces_the_streams_close() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let s = series();
    let t = 3_000 * CHUNK_CANDLES * M + 7 * M;
    // The fill reads `t` while it forms (volume 1.000) ...
    let fill = rest_forming(candle(t, 100, 1_000, false), t + 30_000);
    // ... the stream then says `t` closed (volume 2.500) and it is stored ...
    let close = candle(t, 105, 2_500, true);
    store
        .write(&s, &stream_closed(close.clone()), t + M + 1_000)
        .await
        .unwrap();
    // ... and only then does the fill's write land.
    store.write(&s, &fill, t + M + 2_000).await.unwrap();
    let (stored, covered) = stored_at(&store, t).await;
    assert_eq!(stored, close, "the stream's close stays");
    assert!(covered, "and stays covered");
}

#[tokio::test]
async fn a_rest_confirmed_candle_is_replaced_only_by_another_rest_read() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let s = series();
    let t = 3_100 * CHUNK_CANDLES * M;
    let record = candle(t, 200, 9_630, true);
    store
        .write(&s, &rest_closed(record.clone()), t + 2 * M)
        .await
        .unwrap();
    // A stream close that differs from the record, and an unconfirmed built candle.
    store
        .write(
            &s,
            &stream_closed(candle(t, 201, 10_268, true)),
            t + 2 * M + 1,
        )
        .await
        .unwrap();
    store
        .write(
            &s,
            &stream_unconfirmed(candle(t, 202, 10_300, true), t + 2 * M),
            t + 2 * M + 2,
        )
        .await
        .unwrap();
    store
        .write(
            &s,
            &rest_forming(candle(t, 203, 1, false), t + 30_000),
            t + 2 * M + 3,
        )
        .await
        .unwrap();
    let (stored, covered) = stored_at(&store, t).await;
    assert_eq!(stored, record, "REST's record stays");
    assert!(covered);
    // Another REST read replaces it.
    let again = candle(t, 204, 9_631, true);
    store
        .write(&s, &rest_closed(again.clone()), t + 3 * M)
        .await
        .unwrap();
    assert_eq!(stored_at(&store, t).await.0, again);
}

#[tokio::test]
async fn rest_replaces_a_close_the_stream_alone_confirmed() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let s = series();
    let t = 3_200 * CHUNK_CANDLES * M;
    store
        .write(
            &s,
            &stream_closed(candle(t, 300, 10_268, true)),
            t + M + 500,
        )
        .await
        .unwrap();
    // A later stream close of the same minute (a replay) may replace it ...
    let replay = candle(t, 301, 10_269, true);
    store
        .write(&s, &stream_closed(replay.clone()), t + M + 600)
        .await
        .unwrap();
    assert_eq!(stored_at(&store, t).await.0, replay);
    // ... an unconfirmed one may not ...
    store
        .write(
            &s,
            &stream_unconfirmed(candle(t, 302, 1, false), t + M),
            t + M + 700,
        )
        .await
        .unwrap();
    assert_eq!(stored_at(&store, t).await.0, replay);
    // ... and REST's record replaces it, after which the stream no longer can.
    let record = candle(t, 303, 9_630, true);
    store
        .write(&s, &rest_closed(record.clone()), t + 2 * M)
        .await
        .unwrap();
    assert_eq!(stored_at(&store, t).await.0, record);
    store
        .write(
            &s,
            &stream_closed(candle(t, 304, 10_268, true)),
            t + 2 * M + 1,
        )
        .await
        .unwrap();
    let (stored, covered) = stored_at(&store, t).await;
    assert_eq!(stored, record);
    assert!(covered);
}

#[tokio::test]
async fn unconfirmed_candles_are_replaced_by_newer_values() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let s = series();
    let t = 3_300 * CHUNK_CANDLES * M;
    store
        .write(
            &s,
            &rest_forming(candle(t, 400, 1, false), t + 10_000),
            t + 10_000,
        )
        .await
        .unwrap();
    let newer = candle(t, 401, 2, false);
    store
        .write(
            &s,
            &stream_unconfirmed(newer.clone(), t + 20_000),
            t + 20_000,
        )
        .await
        .unwrap();
    let (stored, covered) = stored_at(&store, t).await;
    assert_eq!(stored, newer);
    assert!(!covered);
}
