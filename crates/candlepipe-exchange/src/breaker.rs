//! A circuit breaker per exchange: after too many failures in a short window it opens and
//! requests fail at once (ingest then serves stale copies); after a cool-down one probe is
//! let through, and its outcome closes or reopens the circuit.
//!
//! Only failures that say the exchange is unwell count (5xx, timeouts, connection errors,
//! malformed bodies); "no such symbol" is a healthy answer, and rate limits have their own
//! cluster-wide pause.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Outcomes older than this are forgotten.
    pub window: Duration,
    /// No verdict on fewer outcomes than this.
    pub min_samples: usize,
    /// Open at or above this share of failures.
    pub failure_ratio: f64,
    /// How long an open circuit refuses before letting one probe through.
    pub cool_down: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            window: Duration::from_secs(30),
            min_samples: 10,
            failure_ratio: 0.5,
            cool_down: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open {
        until: Instant,
    },
    /// One probe is out; everyone else is refused until it reports.
    HalfOpen,
}

impl State {
    /// 0 closed, 1 half-open, 2 open: the value of the breaker metric.
    pub fn level(self) -> u8 {
        match self {
            State::Closed => 0,
            State::HalfOpen => 1,
            State::Open { .. } => 2,
        }
    }
}

/// How a request that was let through went, as far as the exchange's health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The exchange answered (a "no such symbol" or a 4xx is a healthy answer).
    Healthy,
    /// 5xx, timeout, connection error, malformed body.
    Failed,
    /// Nothing learned about its health: rate limited (429/418), or no answer at all
    /// (the request was abandoned before it completed).
    Inconclusive,
}

/// The lock is std's: it is held for a few field updates, never across `.await`.
pub struct Breaker {
    settings: BreakerSettings,
    inner: Mutex<Inner>,
}

struct Inner {
    state: State,
    /// (when, failed) of recent outcomes while closed.
    outcomes: VecDeque<(Instant, bool)>,
}

/// Permission for one request from [`Breaker::admit`]. Settle it with the request's
/// [`Outcome`]; a ticket dropped unsettled counts as [`Outcome::Inconclusive`], so a
/// half-open probe always settles the breaker, however its request ended.
pub struct Ticket<'a> {
    breaker: &'a Breaker,
    probe: bool,
    settled: bool,
}

impl Ticket<'_> {
    pub fn settle(mut self, now: Instant, outcome: Outcome) {
        self.settled = true;
        self.breaker.record(now, self.probe, outcome);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker
                .record(Instant::now(), self.probe, Outcome::Inconclusive);
        }
    }
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Breaker {
            settings,
            inner: Mutex::new(Inner {
                state: State::Closed,
                outcomes: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    /// Whether [`Breaker::admit`] would let a request through now, without taking the
    /// probe: asked before waiting for the budget, so no permit is spent on a refusal.
    pub fn would_admit(&self, now: Instant) -> bool {
        match self.lock().state {
            State::Closed => true,
            State::Open { until } => now >= until,
            State::HalfOpen => false,
        }
    }

    /// A ticket if a request may go out now. Past the cool-down, the first caller becomes
    /// the half-open probe and everyone else is refused until it settles.
    pub fn admit(&self, now: Instant) -> Option<Ticket<'_>> {
        let mut inner = self.lock();
        let probe = match inner.state {
            State::Closed => false,
            State::Open { until } if now >= until => {
                inner.state = State::HalfOpen;
                true
            }
            State::Open { .. } | State::HalfOpen => return None,
        };
        Some(Ticket {
            breaker: self,
            probe,
            settled: false,
        })
    }

    fn record(&self, now: Instant, probe: bool, outcome: Outcome) {
        let s = self.settings;
        let mut inner = self.lock();
        if probe {
            inner.outcomes.clear();
            inner.state = match outcome {
                Outcome::Healthy => State::Closed,
                Outcome::Failed => State::Open {
                    until: now + s.cool_down,
                },
                // Nothing learned: the next request probes again.
                Outcome::Inconclusive => State::Open { until: now },
            };
            return;
        }
        let failed = match outcome {
            Outcome::Healthy => false,
            Outcome::Failed => true,
            Outcome::Inconclusive => return,
        };
        // An ordinary request that finished after the circuit opened says nothing new.
        if inner.state != State::Closed {
            return;
        }
        inner.outcomes.push_back((now, failed));
        while inner
            .outcomes
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > s.window)
        {
            inner.outcomes.pop_front();
        }
        let n = inner.outcomes.len();
        let failures = inner.outcomes.iter().filter(|(_, f)| *f).count();
        if n >= s.min_samples && failures as f64 >= s.failure_ratio * n as f64 {
            inner.state = State::Open {
                until: now + s.cool_down,
            };
            inner.outcomes.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> (Breaker, Instant) {
        (Breaker::new(BreakerSettings::default()), Instant::now())
    }

    fn request(b: &Breaker, at: Instant, outcome: Outcome) {
        b.admit(at).expect("admitted").settle(at, outcome);
    }

    fn fail(failed: bool) -> Outcome {
        if failed {
            Outcome::Failed
        } else {
            Outcome::Healthy
        }
    }

    /// Opens the breaker at `t` with ten failures.
    fn opened(b: &Breaker, t: Instant) {
        for _ in 0..10 {
            request(b, t, Outcome::Failed);
        }
        assert!(matches!(b.state(), State::Open { .. }));
    }

    #[test]
    fn opens_on_a_failure_rate_and_probes_after_the_cool_down() {
        let (b, t) = breaker();
        for i in 0..9 {
            request(&b, t, fail(i % 3 != 0)); // 6 of 9 failed: too few samples to judge
        }
        assert_eq!(b.state(), State::Closed);
        request(&b, t, Outcome::Failed); // 7 of 10
        assert!(matches!(b.state(), State::Open { .. }));
        assert!(b.admit(t + Duration::from_secs(4)).is_none());
        assert!(!b.would_admit(t + Duration::from_secs(4)));
        // Cool-down over: exactly one probe.
        let later = t + Duration::from_secs(5);
        assert!(b.would_admit(later));
        let probe = b.admit(later).expect("the probe");
        assert!(b.admit(later).is_none());
        assert!(!b.would_admit(later));
        assert_eq!(b.state(), State::HalfOpen);
        probe.settle(later, Outcome::Healthy);
        assert_eq!(b.state(), State::Closed);
        assert!(b.admit(later).is_some());
    }

    #[test]
    fn a_failed_probe_reopens() {
        let (b, t) = breaker();
        opened(&b, t);
        let later = t + Duration::from_secs(6);
        request(&b, later, Outcome::Failed);
        assert!(b.admit(later + Duration::from_secs(4)).is_none());
        assert!(b.admit(later + Duration::from_secs(5)).is_some());
    }

    #[test]
    fn a_probe_that_learns_nothing_still_settles_the_breaker() {
        // Rate limited (429), refused by the budget, or never answered: the breaker must
        // not stay half-open (refusing everything) forever.
        let (b, t) = breaker();
        opened(&b, t);
        let later = t + Duration::from_secs(5);
        request(&b, later, Outcome::Inconclusive);
        assert!(matches!(b.state(), State::Open { .. }));
        let probe = b.admit(later).expect("the next request probes at once");
        drop(probe); // abandoned mid-request
        assert!(matches!(b.state(), State::Open { .. }));
        request(&b, later, Outcome::Healthy);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn mostly_healthy_or_old_failures_keep_it_closed() {
        let (b, t) = breaker();
        for i in 0..40 {
            request(&b, t, fail(i % 4 == 0)); // 25% failures
        }
        assert_eq!(b.state(), State::Closed);
        let (b, t) = breaker();
        for _ in 0..9 {
            request(&b, t, Outcome::Failed);
        }
        // Those nine are out of the window when the tenth comes.
        request(&b, t + Duration::from_secs(31), Outcome::Failed);
        assert_eq!(b.state(), State::Closed);
    }
}
