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

    /// Whether a request may go out now. Past the cool-down, the first caller becomes the
    /// half-open probe.
    pub fn allow(&self, now: Instant) -> bool {
        let mut inner = self.lock();
        match inner.state {
            State::Closed => true,
            State::Open { until } if now >= until => {
                inner.state = State::HalfOpen;
                true
            }
            State::Open { .. } | State::HalfOpen => false,
        }
    }

    /// Reports how a request that [`Breaker::allow`] let through went.
    pub fn record(&self, now: Instant, failed: bool) {
        let s = self.settings;
        let mut inner = self.lock();
        match inner.state {
            State::HalfOpen => {
                inner.outcomes.clear();
                inner.state = if failed {
                    State::Open {
                        until: now + s.cool_down,
                    }
                } else {
                    State::Closed
                };
            }
            State::Open { .. } => {}
            State::Closed => {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> (Breaker, Instant) {
        (Breaker::new(BreakerSettings::default()), Instant::now())
    }

    #[test]
    fn opens_on_a_failure_rate_and_probes_after_the_cool_down() {
        let (b, t) = breaker();
        for i in 0..9 {
            assert!(b.allow(t));
            b.record(t, i % 3 != 0); // 6 of 9 failed: too few samples to judge
        }
        assert_eq!(b.state(), State::Closed);
        b.record(t, true); // 7 of 10
        assert!(matches!(b.state(), State::Open { .. }));
        assert!(!b.allow(t + Duration::from_secs(4)));
        // Cool-down over: exactly one probe.
        let later = t + Duration::from_secs(5);
        assert!(b.allow(later));
        assert!(!b.allow(later));
        assert_eq!(b.state(), State::HalfOpen);
        b.record(later, false);
        assert_eq!(b.state(), State::Closed);
        assert!(b.allow(later));
    }

    #[test]
    fn a_failed_probe_reopens() {
        let (b, t) = breaker();
        for _ in 0..10 {
            b.record(t, true);
        }
        let later = t + Duration::from_secs(6);
        assert!(b.allow(later));
        b.record(later, true);
        assert!(!b.allow(later + Duration::from_secs(4)));
        assert!(b.allow(later + Duration::from_secs(5)));
    }

    #[test]
    fn mostly_healthy_or_old_failures_keep_it_closed() {
        let (b, t) = breaker();
        for i in 0..40 {
            b.record(t, i % 4 == 0); // 25% failures
        }
        assert_eq!(b.state(), State::Closed);
        let (b, t) = breaker();
        for _ in 0..9 {
            b.record(t, true);
        }
        // Those nine are out of the window when the tenth comes.
        b.record(t + Duration::from_secs(31), true);
        assert_eq!(b.state(), State::Closed);
    }
}
