//! The simulated market: which symbols are listed where, and deterministic candles.
//!
//! A closed candle is a pure function of (exchange, symbol, interval, open time), so every
//! test and every restart sees the same history. Every candle is the aggregate of trades
//! ([`Series::trades`], what the Coinbase feed sends), so the forming one moves only as they
//! come.

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

const MINUTE: Millis = 60_000;
const HOUR: Millis = 3_600_000;

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

/// Every asset in [`listings`], bases and quotes, each once: what the currency lists name.
pub fn assets() -> impl Iterator<Item = String> {
    let quotes_only = QUOTES.into_iter().filter(|q| !ASSETS.contains(q));
    ASSETS
        .into_iter()
        .chain(quotes_only)
        .map(str::to_string)
        .chain((0..TEST_ASSETS).map(|n| format!("TEST{n}")))
}

/// Whether the asset is a fiat currency (its lists give it two decimals).
pub fn is_fiat(asset: &str) -> bool {
    matches!(asset, "USD" | "EUR")
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
pub(crate) fn scale(quote: &str) -> u32 {
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
    ///
    /// Candles of every interval are made of the same atoms (1-minute candles below an
    /// hour, 1-hour ones from an hour up), so that a 4h candle is exactly the aggregate of
    /// its four 1h candles, as on a real exchange.
    pub fn candle(&self, t: Millis, now: Millis) -> Option<SimCandle> {
        if t < LISTED_SINCE || t > now {
            return None;
        }
        let atom = if self.step >= HOUR { HOUR } else { MINUTE };
        let mut candle = self.atom(t, atom, now);
        let mut a = t + atom;
        while a < t + self.step && a <= now {
            let next = self.atom(a, atom, now);
            candle.h = candle.h.max(next.h);
            candle.l = candle.l.min(next.l);
            candle.c = next.c;
            candle.v += next.v;
            candle.quote += next.quote;
            candle.trades += next.trades;
            candle.taker_base += next.taker_base;
            candle.taker_quote += next.taker_quote;
            a += atom;
        }
        Some(candle)
    }

    /// One atom of `step` opening at `t`, as seen at `now`: the aggregate of its trades
    /// so far (the first is at `t`, so a started atom always has one).
    fn atom(&self, t: Millis, step: Millis, now: Millis) -> SimCandle {
        let full = self.full_atom(t, step);
        let trades = self.atom_trades(&full, step);
        if now >= t + step {
            return with_sums(full, &trades);
        }
        let so_far: Vec<SimTrade> = trades.into_iter().filter(|tr| tr.t <= now).collect();
        let Some(first) = so_far.first() else {
            return with_sums(full, &[]);
        };
        let mut c = SimCandle {
            o: first.price,
            h: first.price,
            l: first.price,
            c: first.price,
            v: first.size,
            ..SimCandle::empty(t, first.price)
        };
        for tr in &so_far[1..] {
            c.h = c.h.max(tr.price);
            c.l = c.l.min(tr.price);
            c.c = tr.price;
            c.v += tr.size;
        }
        with_sums(c, &so_far)
    }

    /// The atom's final values.
    fn full_atom(&self, t: Millis, step: Millis) -> SimCandle {
        let (o, c) = (self.price_at(t), self.price_at(t + step));
        let wick = unit(hash(&[self.seed, t as u64, 1])) * 0.002;
        let h = o.max(c) * (1.0 + wick);
        let l = o.min(c) * (1.0 - wick * 0.8);
        let v = 1.0 + unit(hash(&[self.seed, t as u64, 2])) * 100.0;
        SimCandle {
            o: self.dec(o),
            h: self.dec(h),
            l: self.dec(l),
            c: self.dec(c),
            v: Decimal::new((v * 1e8).round() as i64, 8),
            ..SimCandle::empty(t, Decimal::ZERO)
        }
    }

    /// The [`TRADES_PER_ATOM`] trades of an atom, `step / TRADES_PER_ATOM` apart from its
    /// open: the open price first, the close last, the high and the low between, sizes
    /// summing to the volume. The atom is exactly their aggregate. Trade ids count from
    /// the listing, contiguous (for 1-minute atoms: Coinbase's `trade_id`).
    fn atom_trades(&self, full: &SimCandle, step: Millis) -> Vec<SimTrade> {
        let n = TRADES_PER_ATOM;
        let t = full.t;
        let high_first = hash(&[self.seed, t as u64, 4]) & 1 == 0;
        let units = full.v.mantissa() as i64;
        let each = units / n;
        let first_id = ((t - LISTED_SINCE) / step * n) as u64 + 1;
        (0..n)
            .map(|k| {
                let at = t + k * step / n;
                let price = match k {
                    0 => full.o,
                    k if k == n - 1 => full.c,
                    2 => {
                        if high_first {
                            full.h
                        } else {
                            full.l
                        }
                    }
                    3 => {
                        if high_first {
                            full.l
                        } else {
                            full.h
                        }
                    }
                    _ => self.dec(self.price_at(at)).max(full.l).min(full.h),
                };
                let size = if k == n - 1 {
                    units - each * (n - 1)
                } else {
                    each
                };
                SimTrade {
                    id: first_id + k as u64,
                    t: at,
                    price,
                    size: Decimal::new(size, 8),
                    maker_sells: hash(&[self.seed, t as u64, 5 + k as u64]) & 1 == 0,
                }
            })
            .collect()
    }

    /// The trades after `after` up to and including `to`, oldest first (1-minute series).
    pub fn trades(&self, after: Millis, to: Millis) -> Vec<SimTrade> {
        let step = MINUTE;
        let mut out = Vec::new();
        let mut t = (after.max(LISTED_SINCE - 1) + 1).div_euclid(step) * step;
        while t <= to {
            let full = self.full_atom(t, step);
            out.extend(
                self.atom_trades(&full, step)
                    .into_iter()
                    .filter(|tr| tr.t > after && tr.t <= to),
            );
            t += step;
        }
        out
    }

    /// Up to `limit` trades at or before `now` with ids below `before` (all of them when
    /// `None`), newest first (1-minute series): Coinbase's REST trades pages.
    pub fn trades_before(&self, before: Option<u64>, limit: usize, now: Millis) -> Vec<SimTrade> {
        let step = MINUTE;
        let mut t = now.div_euclid(step) * step;
        if let Some(b) = before {
            let atoms = b.saturating_sub(2) / TRADES_PER_ATOM as u64;
            if let Some(atom) = i64::try_from(atoms)
                .ok()
                .and_then(|a| a.checked_mul(step))
                .and_then(|a| a.checked_add(LISTED_SINCE))
            {
                t = t.min(atom);
            }
        }
        let mut out = Vec::new();
        while t >= LISTED_SINCE && out.len() < limit {
            let full = self.full_atom(t, step);
            let mut atom: Vec<SimTrade> = self
                .atom_trades(&full, step)
                .into_iter()
                .filter(|tr| tr.t <= now && before.is_none_or(|b| tr.id < b))
                .collect();
            atom.reverse();
            out.extend(atom.into_iter().take(limit - out.len()));
            t -= step;
        }
        out
    }

    /// Up to `limit` trades after `after` and at or before `now`, oldest first, leaving out
    /// the minutes `skip` names (1-minute series): Kraken's REST trades pages.
    pub fn trades_after(
        &self,
        after: Millis,
        limit: usize,
        now: Millis,
        skip: impl Fn(Millis) -> bool,
    ) -> Vec<SimTrade> {
        let step = MINUTE;
        let mut out = Vec::new();
        let mut t = (after.max(LISTED_SINCE - 1) + 1).div_euclid(step) * step;
        while t <= now && out.len() < limit {
            if !skip(t) {
                let full = self.full_atom(t, step);
                let atom = self.atom_trades(&full, step).into_iter();
                let wanted = atom.filter(|tr| tr.t > after && tr.t <= now);
                out.extend(wanted.take(limit - out.len()));
            }
            t += step;
        }
        out
    }

    /// The last trade at or before `now` (1-minute series).
    pub fn last_trade(&self, now: Millis) -> Option<SimTrade> {
        let t = now.div_euclid(MINUTE) * MINUTE;
        self.trades(t - 1, now).pop()
    }

    /// Kraken's OHLC row for the interval opening at `t`, as seen at `now`: a quiet
    /// interval repeats the last close ([`Series::quiet_candle`]).
    pub fn kraken_row(&self, t: Millis, now: Millis, habits: Habits) -> Option<SimCandle> {
        let c = self.candle(t, now)?;
        Some(match self.quiet(t, habits) {
            true => self.quiet_candle(t, habits),
            false => c,
        })
    }

    /// Whether the interval opening at `t` had no trades under `habits`.
    pub fn quiet(&self, t: Millis, habits: Habits) -> bool {
        habits.quiet_one_in.is_some_and(|n| {
            hash(&[self.seed, t as u64, self.step as u64, 3]).is_multiple_of(u64::from(n))
        })
    }

    /// The row an exchange that lists intervals without trades serves for one: no volume,
    /// at the close of the last interval that had trades (several quiet ones in a row all
    /// repeat it).
    pub fn quiet_candle(&self, t: Millis, habits: Habits) -> SimCandle {
        let mut traded = t - self.step;
        while self.quiet(traded, habits) && traded > LISTED_SINCE {
            traded -= self.step;
        }
        // An interval's close is the price at its end.
        SimCandle::empty(t, self.dec(self.price_at(traded + self.step)))
    }

    /// Whether the closed candle opening at `t` is not published yet at `now`.
    pub fn unpublished(&self, t: Millis, now: Millis, habits: Habits) -> bool {
        let close = t + self.step;
        close <= now && now < close + habits.late_ms
    }
}

/// How an exchange publishes its candles (set with `POST /sim/faults/<exchange>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Habits {
    pub late_ms: Millis,
    pub quiet_one_in: Option<u32>,
    /// The stream's values differ from REST's record (Coinbase: every trade is sent with
    /// twice its size), so that confirmations correct what was published.
    pub stream_differs: bool,
    /// Coinbase's REST candles hold only the trades at least this old.
    pub candles_lag_ms: Millis,
}

/// Trades in one atom of the simulated market.
pub const TRADES_PER_ATOM: i64 = 6;

/// One trade.
#[derive(Debug, Clone, PartialEq)]
pub struct SimTrade {
    pub id: u64,
    pub t: Millis,
    pub price: Decimal,
    pub size: Decimal,
    /// The resting order sold (the taker bought).
    pub maker_sells: bool,
}

#[derive(Debug, Clone)]
pub struct SimCandle {
    pub t: Millis,
    pub o: Decimal,
    pub h: Decimal,
    pub l: Decimal,
    pub c: Decimal,
    pub v: Decimal,
    /// Σ price × size of its trades, exact (each exchange writes it its own way).
    pub quote: Decimal,
    pub trades: u64,
    /// Σ size and Σ price × size of the trades whose taker bought.
    pub taker_base: Decimal,
    pub taker_quote: Decimal,
}

impl SimCandle {
    /// No trades: every price `p`, no volume.
    fn empty(t: Millis, p: Decimal) -> SimCandle {
        SimCandle {
            t,
            o: p,
            h: p,
            l: p,
            c: p,
            v: Decimal::new(0, 8),
            quote: Decimal::ZERO,
            trades: 0,
            taker_base: Decimal::new(0, 8),
            taker_quote: Decimal::ZERO,
        }
    }

    /// Binance's quote-side decimals: 8 places.
    pub fn binance_quote(d: Decimal) -> Decimal {
        let mut d = d.round_dp(8);
        d.rescale(8);
        d
    }

    /// Kraken's vwap: Σ price × size / volume at the price's decimals ("0.0"-like without
    /// trades).
    pub fn kraken_vwap(&self) -> Decimal {
        let scale = self.o.scale();
        let mut vwap = match self.v.is_zero() {
            true => Decimal::ZERO,
            // Cut, not rounded, as Kraken's.
            false => (self.quote / self.v)
                .round_dp_with_strategy(scale, rust_decimal::RoundingStrategy::ToZero),
        };
        vwap.rescale(scale);
        vwap
    }
}

/// `c` with its trades' sums.
fn with_sums(mut c: SimCandle, trades: &[SimTrade]) -> SimCandle {
    c.quote = trades.iter().map(|tr| tr.price * tr.size).sum();
    c.trades = trades.len() as u64;
    let bought = trades.iter().filter(|tr| tr.maker_sells);
    c.taker_base = bought
        .clone()
        .fold(Decimal::new(0, 8), |sum, tr| sum + tr.size);
    c.taker_quote = bought.map(|tr| tr.price * tr.size).sum();
    c
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
    fn longer_candles_are_made_of_shorter_ones() {
        let t = 1_764_000_000_000 - 1_764_000_000_000 % (4 * HOUR);
        let now = t + 100 * HOUR;
        let h4 = Series::new("binance", "ETH", "USDT", 4 * HOUR)
            .candle(t, now)
            .unwrap();
        let h1 = Series::new("binance", "ETH", "USDT", HOUR);
        let hours: Vec<SimCandle> = (0..4)
            .map(|i| h1.candle(t + i * HOUR, now).unwrap())
            .collect();
        assert_eq!(h4.o, hours[0].o);
        assert_eq!(h4.c, hours[3].c);
        assert_eq!(h4.h, hours.iter().map(|c| c.h).max().unwrap());
        assert_eq!(h4.l, hours.iter().map(|c| c.l).min().unwrap());
        assert_eq!(h4.v, hours.iter().map(|c| c.v).sum::<Decimal>());
        assert_eq!(h4.trades, 4 * TRADES_PER_ATOM as u64);
        assert_eq!(h4.quote, hours.iter().map(|c| c.quote).sum::<Decimal>());
        assert_eq!(
            h4.taker_base,
            hours.iter().map(|c| c.taker_base).sum::<Decimal>()
        );
        assert!(h4.taker_base <= h4.v && h4.taker_quote <= h4.quote);
        // The vwap lies within the candle and has the price's decimals.
        let vwap = h4.kraken_vwap();
        assert!(
            h4.l <= vwap && vwap <= h4.h && vwap.scale() == h4.o.scale(),
            "{vwap}"
        );
        let quiet = h1.quiet_candle(t, Habits::default());
        assert_eq!(
            (quiet.trades, quiet.kraken_vwap().to_string()),
            (0, "0.00".into())
        );
    }

    #[test]
    fn trades_pages_go_back_by_id_newest_first() {
        let s = Series::new("coinbase", "BTC", "USD", MINUTE);
        let t = 1_764_000_000_000 - 1_764_000_000_000 % MINUTE;
        let now = t + 35_000;
        let all = s.trades(t - 3 * MINUTE, now);
        let newest = s.trades_before(None, 5, now);
        let expected: Vec<u64> = all.iter().rev().take(5).map(|tr| tr.id).collect();
        assert_eq!(newest.iter().map(|tr| tr.id).collect::<Vec<_>>(), expected);
        let older = s.trades_before(Some(newest[4].id), 7, now);
        let expected: Vec<u64> = all.iter().rev().skip(5).take(7).map(|tr| tr.id).collect();
        assert_eq!(older.iter().map(|tr| tr.id).collect::<Vec<_>>(), expected);
        assert!(older.iter().all(|tr| tr.t <= now));
    }

    #[test]
    fn candles_are_the_aggregate_of_contiguous_trades() {
        let s = Series::new("coinbase", "BTC", "USD", MINUTE);
        let t = 1_764_000_000_000 - 1_764_000_000_000 % MINUTE;
        let trades = s.trades(t - 1, t + 2 * MINUTE - 1);
        assert_eq!(trades.len() as i64, 2 * TRADES_PER_ATOM);
        assert!(trades
            .windows(2)
            .all(|w| w[1].id == w[0].id + 1 && w[1].t > w[0].t));
        for now in [t, t + 15_000, t + 59_999, t + MINUTE] {
            let c = s.candle(t, now).unwrap();
            let mine: Vec<&SimTrade> = trades
                .iter()
                .filter(|tr| tr.t < t + MINUTE && tr.t <= now)
                .collect();
            assert_eq!(c.o, mine[0].price);
            assert_eq!(c.c, mine[mine.len() - 1].price);
            assert_eq!(c.h, mine.iter().map(|tr| tr.price).max().unwrap());
            assert_eq!(c.l, mine.iter().map(|tr| tr.price).min().unwrap());
            assert_eq!(c.v, mine.iter().map(|tr| tr.size).sum::<Decimal>());
        }
        assert_eq!(s.last_trade(t + 30_000).unwrap().t, t + 30_000);
        assert_eq!(s.trades(t + 30_000, t + 30_000), vec![]);
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
        let assets: std::collections::HashSet<String> = assets().collect();
        assert_eq!(assets.len(), 20 + 4 + 2000);
        assert!(all
            .iter()
            .all(|(b, q)| assets.contains(b) && assets.contains(*q)));
    }
}
