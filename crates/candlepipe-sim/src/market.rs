//! The simulated market: which symbols are listed where, and deterministic candles.
//!
//! A closed candle is a pure function of (exchange, symbol, interval, open time), so every
//! test and every restart sees the same history. The forming candle moves with the clock.

use candlepipe_core::Millis;
use rust_decimal::Decimal;

/// Assets every simulated exchange lists in every quote of [`QUOTES`].
const ASSETS: [&str; 20] = [
    "BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "LTC", "DOT", "AVAX", "LINK", "ATOM", "TRX",
    "MATIC", "UNI", "XLM", "BCH", "ETC", "FIL", "NEAR",
];
const QUOTES: [&str; 5] = ["USDT", "USDC", "USD", "EUR", "BTC"];
/// Load-test assets `TEST0` … `TEST1999`, listed in these quotes only.
pub const TEST_ASSETS: u32 = 2000;
const TEST_QUOTES: [&str; 2] = ["USDT", "USD"];

/// First candle the sim has: 2017-01-01T00:00:00Z.
pub const LISTED_SINCE: Millis = 1_483_228_800_000;

fn is_test_asset(code: &str) -> bool {
    code.strip_prefix("TEST")
        .and_then(|n| n.parse::<u32>().ok().filter(|n| format!("TEST{n}") == code))
        .is_some_and(|n| n < TEST_ASSETS)
}

pub fn is_listed(base: &str, quote: &str) -> bool {
    base != quote
        && ((ASSETS.contains(&base) && QUOTES.contains(&quote))
            || (is_test_asset(base) && TEST_QUOTES.contains(&quote)))
}

/// Every listed pair, as (base, quote): what the market lists hold.
pub fn listings() -> impl Iterator<Item = (String, &'static str)> {
    let majors = ASSETS.into_iter().flat_map(|b| {
        QUOTES
            .into_iter()
            .filter(move |q| *q != b)
            .map(move |q| (b.to_string(), q))
    });
    let tests = (0..TEST_ASSETS).flat_map(|n| {
        TEST_QUOTES
            .into_iter()
            .map(move |q| (format!("TEST{n}"), q))
    });
    majors.chain(tests)
}

/// Splits a concatenated native id (`BTCUSDT`) at a known quote.
pub fn split_concat(id: &str) -> Option<(String, String)> {
    QUOTES
        .iter()
        .filter(|q| id.len() > q.len() && id.ends_with(*q))
        .map(|q| (id[..id.len() - q.len()].to_string(), q.to_string()))
        .find(|(b, q)| is_listed(b, q))
}

fn hash(parts: &[u64]) -> u64 {
    // SplitMix64 over the parts: stable across runs and platforms.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for p in parts {
        x ^= p
            .wrapping_add(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(x << 6)
            .wrapping_add(x >> 2);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}

fn text_seed(s: &str) -> u64 {
    s.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    })
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn base_price(base: &str, quote: &str) -> f64 {
    let usd = match base {
        "BTC" => 90_000.0,
        "ETH" => 3_000.0,
        "SOL" => 150.0,
        "BNB" => 600.0,
        "LTC" | "AVAX" | "BCH" | "ETC" => 40.0,
        _ => 1.0 + unit(text_seed(base)) * 20.0,
    };
    match quote {
        "BTC" => usd / 90_000.0,
        "EUR" => usd * 0.92,
        _ => usd,
    }
}

/// Price scale for a quote: cents for fiat and stablecoins, satoshis for BTC.
fn scale(quote: &str) -> u32 {
    if quote == "BTC" {
        8
    } else {
        2
    }
}

/// One series of the simulated market.
pub struct Series {
    seed: u64,
    base: f64,
    scale: u32,
    step: Millis,
}

impl Series {
    pub fn new(exchange: &str, base: &str, quote: &str, step: Millis) -> Self {
        Series {
            seed: text_seed(exchange)
                ^ text_seed(base).rotate_left(17)
                ^ text_seed(quote).rotate_left(33),
            base: base_price(base, quote),
            scale: scale(quote),
            step,
        }
    }

    fn price_at(&self, t: Millis) -> f64 {
        let x = t as f64 / 3_600_000.0;
        let phase = unit(self.seed) * std::f64::consts::TAU;
        let wave = 0.08 * (x / 97.0 + phase).sin()
            + 0.03 * (x / 7.3 + phase * 2.0).sin()
            + 0.01 * (x * 1.7).sin();
        let noise = (unit(hash(&[self.seed, t as u64])) - 0.5) * 0.002;
        self.base * (1.0 + wave + noise)
    }

    fn dec(&self, v: f64) -> Decimal {
        let factor = 10f64.powi(self.scale as i32);
        Decimal::new((v * factor).round() as i64, self.scale)
    }

    /// The candle opening at `t`, as seen at `now`; `None` before listing or in the future.
    pub fn candle(&self, t: Millis, now: Millis) -> Option<SimCandle> {
        if t < LISTED_SINCE || t > now {
            return None;
        }
        let end = (t + self.step).min(now);
        let (o, c) = (self.price_at(t), self.price_at(end));
        let wick = unit(hash(&[self.seed, t as u64, 1])) * 0.002;
        let h = o.max(c) * (1.0 + wick);
        let l = o.min(c) * (1.0 - wick * 0.8);
        let full_volume = 1.0 + unit(hash(&[self.seed, t as u64, 2])) * 100.0;
        let v = full_volume * (end - t) as f64 / self.step as f64;
        Some(SimCandle {
            t,
            o: self.dec(o),
            h: self.dec(h),
            l: self.dec(l),
            c: self.dec(c),
            v: Decimal::new((v * 1e8).round() as i64, 8),
        })
    }
}

#[derive(Debug, Clone)]
pub struct SimCandle {
    pub t: Millis,
    pub o: Decimal,
    pub h: Decimal,
    pub l: Decimal,
    pub c: Decimal,
    pub v: Decimal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_candles_are_stable_and_consistent() {
        let s = Series::new("binance", "BTC", "USDT", 60_000);
        let t = 1_764_000_000_000;
        let a = s.candle(t, t + 3_600_000).unwrap();
        let b = s.candle(t, t + 7_200_000).unwrap();
        assert_eq!((a.o, a.c, a.v), (b.o, b.c, b.v));
        assert!(a.h >= a.o.max(a.c) && a.l <= a.o.min(a.c));
        let next = s.candle(t + 60_000, t + 3_600_000).unwrap();
        assert_eq!(a.c, next.o);
        assert!(s.candle(LISTED_SINCE - 60_000, t).is_none());
    }

    #[test]
    fn listings_are_finite_and_agree_with_is_listed() {
        assert_eq!(split_concat("BTCUSDT"), Some(("BTC".into(), "USDT".into())));
        assert_eq!(
            split_concat("TEST17USDT"),
            Some(("TEST17".into(), "USDT".into()))
        );
        assert_eq!(split_concat("NOPEUSDT"), None);
        assert_eq!(split_concat("TEST2000USDT"), None);
        assert_eq!(split_concat("TEST017USDT"), None);
        assert_eq!(split_concat("TEST17EUR"), None);
        let all: Vec<_> = listings().collect();
        assert_eq!(all.len(), 20 * 5 - 1 + 2000 * 2); // BTC is not quoted in BTC
        assert!(all.iter().all(|(b, q)| is_listed(b, q)));
    }
}
