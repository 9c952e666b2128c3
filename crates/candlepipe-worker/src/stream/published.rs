//! What the stream published on each series' live subject, so that the exchange's record
//! corrects it there: a closed candle published `confirmed:false` is published again once
//! REST confirms it (`revised:true` when the record differs), and a close the stream never
//! published (its closing update missed) is published from the record.

use std::collections::{BTreeMap, HashMap};

use candlepipe_core::watch::LiveCandle;
use candlepipe_core::{Candle, Millis, SeriesKey};

/// Open times remembered per series.
const KEEP: usize = 64;

#[derive(Debug, Default)]
pub struct Published {
    by_series: HashMap<SeriesKey, BTreeMap<Millis, Sent>>,
}

#[derive(Debug)]
struct Sent {
    candle: Candle,
    confirmed: bool,
}

impl Published {
    /// `candle` went out on `series`' live subject (`confirmed`: as the record).
    pub fn note(&mut self, series: &SeriesKey, candle: &Candle, confirmed: bool) {
        let sent = self.by_series.entry(series.clone()).or_default();
        sent.insert(
            candle.t,
            Sent {
                candle: candle.clone(),
                confirmed,
            },
        );
        while sent.len() > KEEP {
            sent.pop_first();
        }
    }

    /// The series is no longer published from here.
    pub fn forget(&mut self, series: &SeriesKey) {
        self.by_series.remove(series);
    }

    /// What to publish again now that `record` (closed candles REST confirmed, ascending)
    /// is known; each is then remembered as confirmed.
    pub fn corrections(&mut self, series: &SeriesKey, record: &[Candle]) -> Vec<LiveCandle> {
        let Some(sent) = self.by_series.get_mut(series) else {
            return Vec::new();
        };
        let Some(&oldest) = sent.keys().next() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for c in record.iter().filter(|c| c.closed && c.t >= oldest) {
            let revised = match sent.get(&c.t) {
                Some(s) if s.confirmed && same(&s.candle, c) => continue,
                // Published forming only (its close never came) or unconfirmed.
                Some(s) => s.candle.closed && !same(&s.candle, c),
                // Never published: a close the stream missed.
                None => false,
            };
            out.push(LiveCandle::new(c, true, revised));
            sent.insert(
                c.t,
                Sent {
                    candle: c.clone(),
                    confirmed: true,
                },
            );
        }
        while sent.len() > KEEP {
            sent.pop_first();
        }
        out
    }
}

/// The same values (decimals compared as numbers: `9630.08` is `9630.080`).
fn same(a: &Candle, b: &Candle) -> bool {
    (a.o, a.h, a.l, a.c, a.v) == (b.o, b.h, b.l, b.c, b.v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candlepipe_core::{Exchange, Interval, Symbol};
    use rust_decimal::Decimal;

    const M: Millis = 60_000;

    fn series() -> SeriesKey {
        SeriesKey::new(
            Exchange::Coinbase,
            Symbol::parse("BTC/USD").unwrap(),
            Interval::M1,
        )
    }

    fn candle(t: Millis, v: i64, closed: bool) -> Candle {
        let p = Decimal::new(100, 0);
        Candle {
            t,
            o: p,
            h: p,
            l: p,
            c: p,
            v: Decimal::new(v, 2),
            closed,
            synthetic: false,
            ..Default::default()
        }
    }

    #[test]
    fn the_record_confirms_revises_and_fills_in_what_was_published() {
        let s = series();
        let mut p = Published::default();
        // 1: built from trades, unconfirmed, and REST agrees (a longer scale, same value).
        p.note(&s, &candle(M, 963008, true), false);
        // 2: built with too much volume.
        p.note(&s, &candle(2 * M, 1026815, true), false);
        // 3: the record already (Binance's closing update).
        p.note(&s, &candle(3 * M, 500, true), true);
        // 4: published forming; its close never came. 5: forming now.
        p.note(&s, &candle(4 * M, 100, false), false);
        p.note(&s, &candle(6 * M, 100, false), false);
        let mut same_value = candle(M, 963008, true);
        same_value.v = Decimal::new(9630080, 3);
        let record = vec![
            same_value,
            candle(2 * M, 963008, true),
            candle(3 * M, 500, true),
            candle(4 * M, 150, true),
            candle(5 * M, 10, true),
        ];
        let out = p.corrections(&s, &record);
        let said: Vec<(Millis, Option<bool>, bool)> = out
            .iter()
            .map(|c| (c.candle.t, c.confirmed, c.revised))
            .collect();
        assert_eq!(
            said,
            vec![
                (M, Some(true), false),
                (2 * M, Some(true), true),
                (4 * M, Some(true), false),
                (5 * M, Some(true), false),
            ]
        );
        assert_eq!(out[1].candle.v, Decimal::new(963008, 2));
        // Once confirmed, the same record publishes nothing again.
        assert!(p.corrections(&s, &record).is_empty());
        // Nor does a record older than anything published from here.
        assert!(p.corrections(&s, &[candle(0, 1, true)]).is_empty());
    }
}
