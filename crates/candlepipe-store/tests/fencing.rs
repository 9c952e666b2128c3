//! Lease fencing (SPEC §4), against a real redis-server: a stream holder's writes and live
//! marks carry its lease's fence and are refused in Redis once a holder with a newer
//! fence claimed or wrote the series; fills (REST) are never fenced.

#![allow(clippy::unwrap_used)]

mod common;

use candlepipe_core::Fetched;
use candlepipe_store::{StoreError, CHUNK_CANDLES};
use candlepipe_testkit::RedisServer;
use common::{flat_candle, series, store};
use rust_decimal::Decimal;

const M: i64 = 60_000;

fn streamed(t: i64, close: i64) -> Fetched {
    Fetched {
        candles: vec![flat_candle(t, Decimal::new(close, 0), Decimal::ONE, false)],
        unconfirmed: vec![t],
        tail_fetched_at: Some(t + 1_000),
        streamed: true,
        ..Fetched::default()
    }
}

#[tokio::test]
async fn a_holder_that_lost_its_lease_can_no_longer_write_or_vouch() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let s = series();
    let t = 4_000 * CHUNK_CANDLES * M;
    // Holder A (fence 7) writes; holder B takes the lease (fence 8) and claims the series.
    store
        .write_streamed(&s, &streamed(t, 100), t + 1_000, 7)
        .await
        .unwrap();
    store.mark_live(&s, t + 1_000, 7).await.unwrap();
    assert!(store.claim(&s, 8).await.unwrap());
    // A, not knowing yet, is refused in Redis: its candle is not stored, its mark not set.
    let refused = store
        .write_streamed(&s, &streamed(t, 101), t + 2_000, 7)
        .await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
    let refused = store.mark_live(&s, t + 2_000, 7).await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
    let read = store.read(&s, t, t).await.unwrap().unwrap();
    assert_eq!(read.candles[0].c, Decimal::new(100, 0));
    assert_eq!(read.state.streamed_at, t + 1_000, "A's old mark only");
    // B writes and vouches; a claim with A's older fence changes nothing.
    store
        .write_streamed(&s, &streamed(t, 102), t + 3_000, 8)
        .await
        .unwrap();
    store.mark_live(&s, t + 3_000, 8).await.unwrap();
    assert!(!store.claim(&s, 7).await.unwrap());
    let read = store.read(&s, t, t).await.unwrap().unwrap();
    assert_eq!(read.candles[0].c, Decimal::new(102, 0));
    assert_eq!(read.state.streamed_at, t + 3_000);
    // A fill (REST) is not fenced.
    let mut rest = streamed(t, 103);
    rest.streamed = false;
    store.write(&s, &rest, t + 4_000).await.unwrap();
    let read = store.read(&s, t, t).await.unwrap().unwrap();
    assert_eq!(read.candles[0].c, Decimal::new(103, 0));
}
