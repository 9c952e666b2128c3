//! Stream leases with fencing, against a real redis-server: one holder per series, a new
//! fence each time a series changes hands, and the store refusing the holder that lost it.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use candlepipe_core::{Candle, Exchange, Fetched, Interval, SeriesKey, Symbol};
use candlepipe_store::{Keyring, Redis, SeriesStore, StoreError};
use candlepipe_testkit::RedisServer;
use candlepipe_worker::cluster::leases::{self, Leases};

async fn redis(server: &RedisServer) -> Redis {
    let client = redis::Client::open(server.url()).unwrap();
    Redis::Single(redis::aio::ConnectionManager::new(client).await.unwrap())
}

fn series() -> SeriesKey {
    SeriesKey::new(
        Exchange::Kraken,
        Symbol::parse("ETH/USD").unwrap(),
        Interval::M1,
    )
}

fn streamed(t: i64) -> Fetched {
    let c = rust_decimal::Decimal::new(t / 60_000, 0);
    Fetched {
        candles: vec![Candle {
            t,
            o: c,
            h: c,
            l: c,
            c,
            v: rust_decimal::Decimal::ONE,
            closed: false,
            synthetic: false,
            ..Default::default()
        }],
        unconfirmed: vec![t],
        streamed: true,
        ..Fetched::default()
    }
}

#[tokio::test]
async fn a_series_that_changes_hands_gets_a_new_fence_and_the_old_holder_is_refused() {
    let server = RedisServer::start();
    let conn = redis(&server).await;
    let leases = Leases::new(conn.clone(), "t:");
    let store = SeriesStore::new(
        conn.clone(),
        Keyring::new("k1", b"a test key of 32 bytes, no more."),
        "t:",
        5_000,
    );
    let s = series();
    leases
        .want(&s, Duration::from_secs(60), false)
        .await
        .unwrap();

    let a = leases.hold("a", 10).await.unwrap();
    assert_eq!(a.len(), 1);
    let (held, lease_a) = &a[0];
    assert_eq!(held, &s);
    assert!(lease_a.until > std::time::Instant::now() + Duration::from_secs(4));
    // B finds it taken; A's renewal keeps its fence.
    assert!(leases.hold("b", 10).await.unwrap().is_empty());
    assert_eq!(
        leases.hold("a", 10).await.unwrap()[0].1.fence,
        lease_a.fence
    );
    let t = 29_000_000 * 60_000;
    store.claim(&s, lease_a.fence).await.unwrap();
    store
        .write_streamed(&s, &streamed(t), t, lease_a.fence)
        .await
        .unwrap();

    // A stops renewing (stalled): its lease lapses and B takes the series with a new fence.
    let mut c = conn.clone();
    let member = leases::member(&s);
    let _: () = redis::cmd("HSET")
        .arg("t:stream:{live}:leases")
        .arg(&member)
        .arg(format!("a|0|{}", lease_a.fence))
        .query_async(&mut c)
        .await
        .unwrap();
    let b = leases.hold("b", 10).await.unwrap();
    assert_eq!(b.len(), 1);
    let lease_b = b[0].1;
    assert!(lease_b.fence > lease_a.fence);
    assert!(store.claim(&s, lease_b.fence).await.unwrap());
    // A wakes: Redis refuses its write and its live mark; its renewal holds nothing.
    let refused = store
        .write_streamed(&s, &streamed(t + 60_000), t, lease_a.fence)
        .await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
    let refused = store.mark_live(&s, t + 60_000, lease_a.fence).await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
    assert!(leases.hold("a", 10).await.unwrap().is_empty());
    store
        .write_streamed(&s, &streamed(t + 60_000), t, lease_b.fence)
        .await
        .unwrap();
    let read = store.read(&s, t, t + 60_000).await.unwrap().unwrap();
    assert_eq!(read.candles.len(), 2);
}
