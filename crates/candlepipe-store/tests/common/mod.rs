//! What the store's tests against a real redis-server share: one series and a store of it.

use candlepipe_core::{Candle, Exchange, Interval, SeriesKey, Symbol};
use candlepipe_store::{Keyring, Redis, SeriesStore};
use candlepipe_testkit::RedisServer;
use rust_decimal::Decimal;

/// Keys are under `t:`; 5,000 candles kept per series.
pub async fn store(server: &RedisServer) -> SeriesStore {
    store_with(server, keyring()).await
}

/// [`store`] keeping up to 1 MiB of the values it verified, as workers do.
#[allow(dead_code)] // not every test file reads twice
pub async fn remembering_store(server: &RedisServer) -> SeriesStore {
    store_with(server, keyring().remembering(1 << 20)).await
}

fn keyring() -> Keyring {
    Keyring::new("k1", b"a test key of 32 bytes, no more.")
}

async fn store_with(server: &RedisServer, keys: Keyring) -> SeriesStore {
    let client = redis::Client::open(server.url()).unwrap();
    let conn = Redis::Single(redis::aio::ConnectionManager::new(client).await.unwrap());
    SeriesStore::new(conn, keys, "t:", 5_000)
}

/// Binance BTC/USDT 1m: keys `t:s:{binance:BTC-USDT:1m}:…`.
pub fn series() -> SeriesKey {
    SeriesKey::new(
        Exchange::Binance,
        Symbol::parse("BTC/USDT").unwrap(),
        Interval::M1,
    )
}

/// A candle opening at `t` whose prices are all `price` and whose volume is `volume`.
#[allow(dead_code)] // not every test file builds candles
pub fn flat_candle(t: i64, price: Decimal, volume: Decimal, closed: bool) -> Candle {
    Candle {
        t,
        o: price,
        h: price,
        l: price,
        c: price,
        v: volume,
        closed,
        synthetic: false,
        ..Default::default()
    }
}
