//! Hostile input: thousands of malformed, mistyped, oversized and injecting requests, each
//! answered with a typed error while the worker keeps serving.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const INJECTIONS: [&str; 14] = [
    "BTC/USDT.>",
    "BTC/*",
    ">",
    "*",
    "BTC/USDT\r\nPUB x 1",
    "../../etc/passwd",
    "BTC/USDT ",
    " BTC/USDT",
    "BTC/ÜSDT",
    "BTC/USDT\0",
    "{\"$ne\":1}",
    "BTC/USDT; DROP",
    "BTC\\/USDT",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/B",
];

fn payload(rng: &mut Rng, i: usize) -> Vec<u8> {
    match i % 8 {
        0 => {
            let n = rng.below(300);
            rng.bytes(n)
        }
        1 => serde_json::to_vec(&req("binance", INJECTIONS[rng.below(INJECTIONS.len())], "1m", 5)).unwrap(),
        2 => serde_json::to_vec(&json!({"exchange": rng.next(), "symbol": [1, 2], "interval": null})).unwrap(),
        3 => serde_json::to_vec(&json!({"exchange": "binance", "symbol": "BTC/USDT", "interval": "1m", "limit": "many"})).unwrap(),
        4 => serde_json::to_vec(&json!({"exchange": "binance", "symbol": "BTC/USDT", "interval": "1m", "limit": rng.next() as i64 | (1 << 40)})).unwrap(),
        5 => serde_json::to_vec(&json!({"exchange": "binance", "symbol": "BTC/USDT", "interval": ["1m"], "end": "yesterday"})).unwrap(),
        6 => {
            // Valid JSON cut short anywhere.
            let mut v = serde_json::to_vec(&req("kraken", "ETH/USD", "1h", 10)).unwrap();
            v.truncate(rng.below(v.len()));
            v
        }
        _ => serde_json::to_vec(&json!({"exchange": "binance\u{0}", "symbol": "BTC/USDT", "interval": "1m"})).unwrap(),
    }
}

#[tokio::test]
async fn thousands_of_hostile_payloads_each_get_a_typed_error_and_the_worker_keeps_serving() {
    let stack = stack().await;
    let mut worker = stack.worker(&["all"]).await;
    let client = stack.client().await;
    let mut rng = Rng(0x5EED_CAFE_F00D_0001);
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..4000 {
        let (client, body) = (client.clone(), payload(&mut rng, i));
        set.spawn(async move {
            (
                request_within(&client, body.clone(), Duration::from_secs(30)).await,
                body,
            )
        });
        if set.len() >= 200 {
            let (reply, body) = set.join_next().await.unwrap().unwrap();
            *codes.entry(code(&reply).to_string()).or_default() += 1;
            assert_ne!(
                reply["ok"],
                true,
                "accepted {:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    while let Some(done) = set.join_next().await {
        let (reply, _) = done.unwrap();
        *codes.entry(code(&reply).to_string()).or_default() += 1;
    }
    // Bodies near NATS's 1 MiB limit, of garbage and of padded JSON.
    for body in [vec![b'{'; (1 << 20) - 4096], rng.bytes((1 << 20) - 4096)] {
        *codes
            .entry(code(&request_raw(&client, body).await).to_string())
            .or_default() += 1;
    }
    assert_eq!(codes.values().sum::<usize>(), 4002, "{codes:?}");
    let allowed = [
        "bad_request",
        "invalid_symbol",
        "unknown_exchange",
        "unsupported_interval",
        "limit_out_of_range",
    ];
    assert!(
        codes.keys().all(|c| allowed.contains(&c.as_str())),
        "{codes:?}"
    );
    assert!(
        codes["bad_request"] > 1000 && codes["invalid_symbol"] > 400,
        "{codes:?}"
    );
    assert_eq!(
        stack.sim.stats().await["binance"]["requests"],
        0,
        "nothing hostile reached an exchange"
    );

    // Still serving, and still the same process.
    let reply = get(&client, req("binance", "BTC/USDT", "1m", 3)).await;
    assert_eq!(ok(&reply).len(), 3);
    worker.child.signal("TERM");
    assert_eq!(
        worker.child.wait_exit(Duration::from_secs(15)).await,
        Some(0)
    );
}
