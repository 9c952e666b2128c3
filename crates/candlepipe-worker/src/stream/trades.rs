//! Candles built from trades, for an exchange whose feed has no candles (Coinbase's
//! `matches`). A subscription starts inside an interval whose earlier trades it never
//! sees: that interval's candle is REST's forming candle (the seed, asked for when the
//! subscription starts) merged with the trades after the ask. Every later interval is
//! built from its trades alone. A built candle ends when a trade of a later interval
//! comes or its interval is over by a grace; it is then handed on closed, for REST to
//! confirm (Coinbase's REST candles stay the record).

use candlepipe_core::{Candle, Interval, Millis};
use rust_decimal::Decimal;

/// One trade of the product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trade {
    pub t: Millis,
    pub price: Decimal,
    pub size: Decimal,
}

/// What a builder hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// The forming candle's values now.
    Update(Candle),
    /// A candle whose interval is over, as the trades made it (`closed`): REST confirms it.
    Ended(Candle),
    /// The interval opening here is over and was not built (its seed never came): REST
    /// has it.
    Unbuilt(Millis),
}

enum State {
    /// Waiting for REST's candle of the interval `asked_at` is in; trades since are kept.
    Seeding {
        asked_at: Millis,
        trades: Vec<Trade>,
    },
    Building {
        candle: Option<Candle>,
    },
}

/// One series' candles from one product's trades.
pub struct Builder {
    interval: Interval,
    state: State,
}

impl Builder {
    /// A builder whose first interval waits for the seed asked at `asked_at`.
    pub fn seeding(interval: Interval, asked_at: Millis) -> Self {
        Builder {
            interval,
            state: State::Seeding {
                asked_at,
                trades: Vec::new(),
            },
        }
    }

    /// The seed it waits for, by when it was asked.
    pub fn waits_for(&self) -> Option<Millis> {
        match self.state {
            State::Seeding { asked_at, .. } => Some(asked_at),
            State::Building { .. } => None,
        }
    }

    pub fn trade(&mut self, trade: Trade) -> Vec<Out> {
        let open = self.interval.open_of(trade.t);
        match &mut self.state {
            State::Seeding { asked_at, trades } => {
                let seeding = self.interval.open_of(*asked_at);
                if open <= seeding {
                    trades.push(trade);
                    return Vec::new();
                }
                // The seed came too late for its interval: REST has that one; this one
                // started after the subscription, so its trades are all here.
                let mut candle: Option<Candle> = None;
                for tr in trades.drain(..).chain(std::iter::once(trade)) {
                    if self.interval.open_of(tr.t) == open {
                        add(&mut candle, open, &tr);
                    }
                }
                self.state = State::Building {
                    candle: candle.clone(),
                };
                let mut out = vec![Out::Unbuilt(seeding)];
                out.extend(candle.map(Out::Update));
                out
            }
            State::Building { candle } => {
                let mut out = Vec::new();
                match candle {
                    Some(c) if open < c.t => return out, // older than what is built
                    Some(c) if open > c.t => {
                        let mut ended = c.clone();
                        ended.closed = true;
                        out.push(Out::Ended(ended));
                        *candle = None;
                    }
                    _ => {}
                }
                add(candle, open, &trade);
                out.extend(candle.clone().map(Out::Update));
                out
            }
        }
    }

    /// REST's candle for the interval the seed was asked in (`None`: it has no trades
    /// yet), merged with the trades after `asked_at`. A seed not waited for is ignored.
    pub fn seed(&mut self, asked: Millis, rest: Option<Candle>) -> Vec<Out> {
        let State::Seeding { asked_at, trades } = &mut self.state else {
            return Vec::new();
        };
        if *asked_at != asked {
            return Vec::new();
        }
        let open = self.interval.open_of(asked);
        let mut candle = rest.filter(|c| c.t == open).map(|mut c| {
            c.closed = false;
            c.synthetic = false;
            c
        });
        for tr in trades.drain(..).filter(|tr| tr.t > asked) {
            add(&mut candle, open, &tr);
        }
        self.state = State::Building {
            candle: candle.clone(),
        };
        candle.map(Out::Update).into_iter().collect()
    }

    /// At `now`: a candle (or an interval waiting for its seed) over by `grace` without a
    /// later trade ends.
    pub fn tick(&mut self, now: Millis, grace: Millis) -> Option<Out> {
        let step = self.interval.millis();
        match &mut self.state {
            State::Building { candle } => {
                let over = candle.as_ref().is_some_and(|c| c.t + step + grace <= now);
                if !over {
                    return None;
                }
                candle.take().map(|mut c| {
                    c.closed = true;
                    Out::Ended(c)
                })
            }
            State::Seeding { asked_at, trades } => {
                let open = self.interval.open_of(*asked_at);
                if open + step + grace > now || !trades.is_empty() {
                    return None;
                }
                self.state = State::Building { candle: None };
                Some(Out::Unbuilt(open))
            }
        }
    }
}

fn add(candle: &mut Option<Candle>, open: Millis, tr: &Trade) {
    match candle {
        Some(c) => {
            c.h = c.h.max(tr.price);
            c.l = c.l.min(tr.price);
            c.c = tr.price;
            c.v += tr.size;
        }
        None => {
            *candle = Some(Candle {
                t: open,
                o: tr.price,
                h: tr.price,
                l: tr.price,
                c: tr.price,
                v: tr.size,
                closed: false,
                synthetic: false,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Millis = 60_000;
    const T0: Millis = 1_764_000_000_000 - 1_764_000_000_000 % M;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn trade(t: Millis, price: &str, size: &str) -> Trade {
        Trade {
            t,
            price: d(price),
            size: d(size),
        }
    }

    fn candle(t: Millis, o: &str, h: &str, l: &str, c: &str, v: &str) -> Candle {
        Candle {
            t,
            o: d(o),
            h: d(h),
            l: d(l),
            c: d(c),
            v: d(v),
            closed: false,
            synthetic: false,
        }
    }

    #[test]
    fn the_first_interval_is_the_seed_merged_with_the_trades_after_it() {
        let mut b = Builder::seeding(Interval::M1, T0 + 20_000);
        assert_eq!(b.trade(trade(T0 + 10_000, "9", "1")), vec![]);
        assert_eq!(b.trade(trade(T0 + 30_000, "12", "2")), vec![]);
        let seeded = b.seed(T0 + 20_000, Some(candle(T0, "10", "11", "8", "9", "5")));
        // The trade before the ask is in REST's candle already.
        assert_eq!(
            seeded,
            vec![Out::Update(candle(T0, "10", "12", "8", "12", "7"))]
        );
        let out = b.trade(trade(T0 + M + 1, "13", "1"));
        let mut ended = candle(T0, "10", "12", "8", "12", "7");
        ended.closed = true;
        assert_eq!(
            out,
            vec![
                Out::Ended(ended),
                Out::Update(candle(T0 + M, "13", "13", "13", "13", "1"))
            ]
        );
        assert_eq!(b.tick(T0 + 2 * M + 4_999, 5_000), None);
        assert!(
            matches!(b.tick(T0 + 2 * M + 5_000, 5_000), Some(Out::Ended(c)) if c.t == T0 + M && c.closed)
        );
    }

    #[test]
    fn no_rest_candle_yet_means_the_trades_after_the_ask_are_all() {
        let mut b = Builder::seeding(Interval::M1, T0 + 20_000);
        b.trade(trade(T0 + 25_000, "5", "1"));
        assert_eq!(
            b.seed(T0 + 20_000, None),
            vec![Out::Update(candle(T0, "5", "5", "5", "5", "1"))]
        );
        // A seed of another ask, or a second one, changes nothing.
        assert_eq!(b.seed(T0 + 20_000, None), vec![]);
    }

    #[test]
    fn a_seed_later_than_its_interval_leaves_that_interval_to_rest() {
        let mut b = Builder::seeding(Interval::M1, T0 + 50_000);
        b.trade(trade(T0 + 55_000, "5", "1"));
        b.trade(trade(T0 + M + 1_000, "6", "1"));
        let out = b.trade(trade(T0 + M + 2_000, "7", "2"));
        assert_eq!(
            out,
            vec![Out::Update(candle(T0 + M, "6", "7", "6", "7", "3"))]
        );
        assert_eq!(b.waits_for(), None);
        assert_eq!(
            b.seed(T0 + 50_000, Some(candle(T0, "1", "1", "1", "1", "1"))),
            vec![]
        );

        let mut quiet = Builder::seeding(Interval::M1, T0 + 50_000);
        assert_eq!(quiet.tick(T0 + M + 5_000, 5_000), Some(Out::Unbuilt(T0)));
    }

    #[test]
    fn the_seeding_trade_that_opens_the_next_interval_says_the_first_was_not_built() {
        let mut b = Builder::seeding(Interval::M1, T0 + 50_000);
        let out = b.trade(trade(T0 + M + 1_000, "6", "1"));
        assert_eq!(
            out,
            vec![
                Out::Unbuilt(T0),
                Out::Update(candle(T0 + M, "6", "6", "6", "6", "1"))
            ]
        );
    }
}
