//! What the store's tests against a real redis-server share: one series and a store of it.

use candlepipe_core::{Exchange, Interval, SeriesKey, Symbol};
use candlepipe_store::{Keyring, Redis, SeriesStore};
use candlepipe_testkit::RedisServer;

/// Keys are under `t:`; 5,000 candles kept per series.
pub async fn store(server: &RedisServer) -> SeriesStore {
    let client = redis::Client::open(server.url()).unwrap();
    let conn = Redis::Single(redis::aio::ConnectionManager::new(client).await.unwrap());
    let keys = Keyring::new("k1", b"a test key of 32 bytes, no more.");
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
