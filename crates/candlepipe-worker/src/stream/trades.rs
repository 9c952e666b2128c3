//! Candles built from trades, for an exchange whose feed has no candles (Coinbase's
//! `matches`). A subscription starts inside an interval whose earlier trades it never
//! sees: that interval's candle starts from the seed, the interval's trades up to the
//! last one before the feed's first (its `last_match`), read from REST's trades, and the
//! feed's trades (all later ones) are added to it, so no trade counts twice or goes
//! missing. Every later interval is built from its trades alone, and an interval the builder saw pass without a trade is
//! handed on as quiet (the feed's `trade_id`s are contiguous: a lost trade makes the link
//! seed a new builder). A built candle ends when a trade of a later interval comes or its
//! interval is over by a grace; it is then handed on closed, for REST to confirm once the
//! exchange's publishing delay has passed (Coinbase's REST candles stay the record).

use candlepipe_core::{BuiltFrom, Candle, Interval, Millis};
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
    /// The intervals opening from `from` to `to` passed without a trade.
    Quiet { from: Millis, to: Millis },
    /// The interval opening here is over and was not built (its seed never came): REST
    /// has it.
    Unbuilt(Millis),
}

enum State {
    /// Waiting for the seed of the interval `asked_at` is in; the feed's trades meanwhile
    /// are kept.
    Seeding {
        asked_at: Millis,
        trades: Vec<Trade>,
    },
    Building {
        candle: Option<Candle>,
        /// The oldest open time not handed on yet (as a candle or as quiet).
        next: Millis,
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
        let step = self.interval.millis();
        let open = self.interval.open_of(trade.t);
        match &mut self.state {
            State::Seeding { asked_at, trades } => {
                let seeding = self.interval.open_of(*asked_at);
                if open <= seeding {
                    trades.push(trade);
                    return Vec::new();
                }
                // The seed came too late for its interval: REST has that one; this one
                // started after the subscription, so its trades are all here, and the
                // intervals between had none.
                let mut candle: Option<Candle> = None;
                for tr in trades.drain(..).chain(std::iter::once(trade)) {
                    if self.interval.open_of(tr.t) == open {
                        add(&mut candle, open, &tr);
                    }
                }
                self.state = State::Building {
                    candle: candle.clone(),
                    next: open,
                };
                let mut out = vec![Out::Unbuilt(seeding)];
                if seeding + step < open {
                    out.push(Out::Quiet {
                        from: seeding + step,
                        to: open - step,
                    });
                }
                out.extend(candle.map(Out::Update));
                out
            }
            State::Building { candle, next } => {
                let mut out = Vec::new();
                match candle {
                    Some(c) if open < c.t => return out, // older than what is built
                    Some(c) if open > c.t => {
                        let mut ended = c.clone();
                        ended.closed = true;
                        *next = c.t + step;
                        out.push(Out::Ended(ended));
                        *candle = None;
                    }
                    _ => {}
                }
                if candle.is_none() {
                    if open < *next {
                        return out; // an interval handed on already
                    }
                    if *next < open {
                        out.push(Out::Quiet {
                            from: *next,
                            to: open - step,
                        });
                    }
                    *next = open;
                }
                add(candle, open, &trade);
                out.extend(candle.clone().map(Out::Update));
                out
            }
        }
    }

    /// The seed of the interval it was asked in: that interval's trades up to the last
    /// one before the feed's (`current`; `None`: it had none), merged with the feed's
    /// trades of the interval kept meanwhile (older ones are REST's); and the interval
    /// before it, whole (`previous`), handed on ended (or quiet), so the stream also vouches
    /// for the candle that closed just before the subscription. A seed not waited for is
    /// ignored.
    pub fn seed(
        &mut self,
        asked: Millis,
        previous: Option<Candle>,
        current: Option<Candle>,
    ) -> Vec<Out> {
        let State::Seeding { asked_at, trades } = &mut self.state else {
            return Vec::new();
        };
        if *asked_at != asked {
            return Vec::new();
        }
        let step = self.interval.millis();
        let open = self.interval.open_of(asked);
        let mut out = vec![match previous.filter(|c| c.t == open - step) {
            Some(mut c) => {
                c.closed = true;
                c.synthetic = false;
                Out::Ended(c)
            }
            None => Out::Quiet {
                from: open - step,
                to: open - step,
            },
        }];
        let mut candle = current.filter(|c| c.t == open).map(|mut c| {
            c.closed = false;
            c.synthetic = false;
            c
        });
        let interval = self.interval;
        for tr in trades.drain(..).filter(|tr| interval.open_of(tr.t) == open) {
            add(&mut candle, open, &tr);
        }
        self.state = State::Building {
            candle: candle.clone(),
            next: open,
        };
        out.extend(candle.map(Out::Update));
        out
    }

    /// At `now`: a candle (or an interval waiting for its seed) over by `grace` without a
    /// later trade ends; intervals over by `grace` without a trade are quiet.
    pub fn tick(&mut self, now: Millis, grace: Millis) -> Option<Out> {
        let step = self.interval.millis();
        match &mut self.state {
            State::Building { candle, next } => match candle {
                Some(c) if c.t + step + grace <= now => {
                    let mut ended = candle.take()?;
                    ended.closed = true;
                    *next = ended.t + step;
                    Some(Out::Ended(ended))
                }
                Some(_) => None,
                None => {
                    let to = self.interval.open_of(now - grace) - step;
                    if to < *next {
                        return None;
                    }
                    let from = std::mem::replace(next, to + step);
                    Some(Out::Quiet { from, to })
                }
            },
            State::Seeding { asked_at, trades } => {
                let open = self.interval.open_of(*asked_at);
                if open + step + grace > now || !trades.is_empty() {
                    return None;
                }
                self.state = State::Building {
                    candle: None,
                    next: open + step,
                };
                Some(Out::Unbuilt(open))
            }
        }
    }
}

/// Adds `tr` to the candle opening at `open` (starting it when there is none). Values are
/// written as Coinbase's candles write them (JSON numbers: no trailing zeros), so a built
/// candle reads the same as REST's record of it.
pub fn add(candle: &mut Option<Candle>, open: Millis, tr: &Trade) {
    let price = tr.price.normalize();
    match candle {
        Some(c) => {
            c.h = c.h.max(price);
            c.l = c.l.min(price);
            c.c = price;
            c.v = (c.v + tr.size).normalize();
        }
        None => {
            *candle = Some(Candle {
                t: open,
                o: price,
                h: price,
                l: price,
                c: price,
                v: tr.size.normalize(),
                built_from: Some(BuiltFrom::Trades),
                closed: false,
                synthetic: false,
                ..Default::default()
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
            built_from: Some(BuiltFrom::Trades),
            closed: false,
            synthetic: false,
            ..Default::default()
        }
    }

    #[test]
    fn the_first_interval_is_the_seed_merged_with_the_trades_after_it() {
        let mut b = Builder::seeding(Interval::M1, T0 + 20_000);
        // The feed's trades (after the seed's last) come while the seed is read; one of
        // the interval before is REST's.
        assert_eq!(b.trade(trade(T0 - 1_000, "7", "1")), vec![]);
        assert_eq!(b.trade(trade(T0 + 30_000, "12", "2")), vec![]);
        let previous = candle(T0 - M, "9", "9", "7", "7", "3");
        let seeded = b.seed(
            T0 + 20_000,
            Some(previous.clone()),
            Some(candle(T0, "10", "11", "8", "9", "5")),
        );
        // The interval before, whole from REST's trades, ends with the seed.
        let mut previous_ended = previous;
        previous_ended.closed = true;
        assert_eq!(
            seeded,
            vec![
                Out::Ended(previous_ended),
                Out::Update(candle(T0, "10", "12", "8", "12", "7"))
            ]
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
            b.seed(T0 + 20_000, None, None),
            vec![
                Out::Quiet {
                    from: T0 - M,
                    to: T0 - M
                },
                Out::Update(candle(T0, "5", "5", "5", "5", "1"))
            ]
        );
        // A seed of another ask, or a second one, changes nothing.
        assert_eq!(b.seed(T0 + 20_000, None, None), vec![]);
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
            b.seed(T0 + 50_000, None, Some(candle(T0, "1", "1", "1", "1", "1"))),
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

    #[test]
    fn intervals_without_a_trade_are_handed_on_as_quiet() {
        let mut b = Builder::seeding(Interval::M1, T0 + 20_000);
        b.trade(trade(T0 + 30_000, "5", "1"));
        b.seed(T0 + 20_000, None, None);
        // T0 ends with the first trade two intervals later: T0+M had none.
        let out = b.trade(trade(T0 + 2 * M + 1, "6", "1"));
        let mut ended = candle(T0, "5", "5", "5", "5", "1");
        ended.closed = true;
        assert_eq!(
            out,
            vec![
                Out::Ended(ended),
                Out::Quiet {
                    from: T0 + M,
                    to: T0 + M
                },
                Out::Update(candle(T0 + 2 * M, "6", "6", "6", "6", "1"))
            ]
        );
        assert!(
            matches!(b.tick(T0 + 3 * M + 5_000, 5_000), Some(Out::Ended(c)) if c.t == T0 + 2 * M)
        );
        // Then nothing for three intervals: handed on once each is over by the grace.
        assert_eq!(b.tick(T0 + 4 * M + 4_999, 5_000), None);
        assert_eq!(
            b.tick(T0 + 6 * M + 5_000, 5_000),
            Some(Out::Quiet {
                from: T0 + 3 * M,
                to: T0 + 5 * M
            })
        );
        assert_eq!(b.tick(T0 + 6 * M + 6_000, 5_000), None);
        // A late trade of a quiet interval changes nothing (REST confirms it).
        assert_eq!(b.trade(trade(T0 + 5 * M + 59_000, "7", "1")), vec![]);
    }

    #[test]
    fn a_seed_without_trades_and_no_trade_after_it_make_the_interval_quiet() {
        let mut b = Builder::seeding(Interval::M1, T0 + 20_000);
        b.seed(T0 + 20_000, None, None);
        assert_eq!(
            b.tick(T0 + 2 * M + 5_000, 5_000),
            Some(Out::Quiet {
                from: T0,
                to: T0 + M
            })
        );
    }
}
