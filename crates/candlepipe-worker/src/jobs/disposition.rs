//! The two decisions about a failure, each made in exactly one place:
//! [`wire_code`] — which error code a producer sees — and [`decide`] — what happens to the
//! JetStream job (ack, nak with delay, terminate, dead-letter).

use std::time::Duration;

use candlepipe_core::ErrorCode;
use candlepipe_exchange::FetchError;
use candlepipe_store::StoreError;
use rand::Rng;

use crate::cluster::markets::MarketError;

/// Why a job (fill or analyze) failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job's payload cannot be understood: poison.
    #[error("undecodable job: {0}")]
    BadJob(String),
    /// The job's result could not be published.
    #[error("publishing the result failed: {0}")]
    Publish(String),
    /// The exchange's market list, which names its pairs, could not be had yet.
    #[error("{0}'s market list is not at hand yet")]
    NoMarketList(candlepipe_core::Exchange),
}

impl From<MarketError> for JobError {
    fn from(e: MarketError) -> Self {
        match e {
            MarketError::Fetch(e) => JobError::Fetch(e),
            MarketError::Store(e) => JobError::Store(e),
            MarketError::NoList(ex) => JobError::NoMarketList(ex),
        }
    }
}

/// What to do with a JetStream message after handling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    /// Redeliver after the delay.
    Nak(Duration),
    /// Never redeliver; no retry can help.
    Term,
    /// Copy to the dead-letter stream, then terminate.
    DeadLetter,
    /// Nobody waits for this live job any more: move it to its exchange's bulk lane (which
    /// runs on budget no live job needs), then ack it here.
    Demote,
}

pub fn wire_code(e: &JobError) -> ErrorCode {
    match e {
        JobError::Fetch(f) => fetch_code(f),
        JobError::Store(_) | JobError::Publish(_) | JobError::NoMarketList(_) => {
            ErrorCode::Unavailable
        }
        JobError::BadJob(_) => ErrorCode::BadRequest,
    }
}

/// The code of an exchange request's failure (a job's, or a CLI command's).
pub fn fetch_code(f: &FetchError) -> ErrorCode {
    match f {
        FetchError::UnknownSymbol(_) => ErrorCode::UnknownSymbol,
        FetchError::UnsupportedInterval(_) => ErrorCode::UnsupportedInterval,
        FetchError::RateLimited { .. } => ErrorCode::RateLimited,
        FetchError::Timeout | FetchError::NoWaiter => ErrorCode::Timeout,
        FetchError::Budget(_) => ErrorCode::Unavailable,
        FetchError::Status { .. }
        | FetchError::Connect(_)
        | FetchError::Malformed(_)
        | FetchError::CircuitOpen => ErrorCode::UpstreamError,
    }
}

/// The code of a failure to name a series' market (as [`wire_code`] of its [`JobError`]).
pub fn market_code(e: &MarketError) -> ErrorCode {
    match e {
        MarketError::Fetch(f) => fetch_code(f),
        MarketError::Store(_) | MarketError::NoList(_) => ErrorCode::Unavailable,
    }
}

/// How often and how patiently a failing job is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries before the job is dead-lettered.
    pub max_deliver: u64,
    /// Full-jitter exponential backoff: a delay drawn from 0..=min(cap, base·2^n).
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_deliver: 5,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    pub fn backoff(&self, delivered: u64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << delivered.min(16))
            .min(self.cap);
        Duration::from_millis(rand::rng().random_range(0..=exp.as_millis() as u64))
    }
}

/// `delivered` counts this delivery (1 for the first).
pub fn decide(e: &JobError, delivered: u64, policy: &RetryPolicy) -> Disposition {
    let max_deliver = policy.max_deliver;
    match e {
        JobError::BadJob(_) => return Disposition::DeadLetter,
        JobError::Fetch(FetchError::NoWaiter) => return Disposition::Demote,
        // The exchange refused this request for good: asking again cannot help.
        JobError::Fetch(f) if f.is_permanent_rejection() => return Disposition::Term,
        _ => {}
    }
    if !wire_code(e).is_transient() {
        return Disposition::Term;
    }
    if delivered >= max_deliver {
        return Disposition::DeadLetter;
    }
    match e {
        JobError::Fetch(FetchError::RateLimited {
            retry_after: Some(after),
            ..
        }) => Disposition::Nak(*after),
        _ => Disposition::Nak(policy.backoff(delivered)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(e: FetchError) -> JobError {
        JobError::Fetch(e)
    }

    const P: RetryPolicy = RetryPolicy {
        max_deliver: 5,
        base: Duration::from_millis(500),
        cap: Duration::from_secs(30),
    };

    #[test]
    fn input_errors_terminate_at_once() {
        for e in [
            fetch(FetchError::UnknownSymbol("x".into())),
            fetch(FetchError::UnsupportedInterval("x".into())),
        ] {
            assert_eq!(decide(&e, 1, &P), Disposition::Term);
        }
        assert_eq!(
            decide(&JobError::BadJob("x".into()), 1, &P),
            Disposition::DeadLetter
        );
    }

    #[test]
    fn permanent_rejections_terminate_and_abandoned_jobs_move_to_bulk() {
        for status in [400, 401, 403, 404, 451] {
            let e = fetch(FetchError::Status {
                status,
                message: String::new(),
            });
            assert_eq!(decide(&e, 1, &P), Disposition::Term, "HTTP {status}");
        }
        assert_eq!(
            decide(&fetch(FetchError::NoWaiter), 1, &P),
            Disposition::Demote
        );
        assert_eq!(
            decide(&fetch(FetchError::NoWaiter), 5, &P),
            Disposition::Demote
        );
    }

    #[test]
    fn transient_errors_retry_then_dead_letter() {
        let e = fetch(FetchError::Status {
            status: 503,
            message: String::new(),
        });
        for n in 1..5 {
            match decide(&e, n, &P) {
                Disposition::Nak(d) => assert!(d <= Duration::from_millis(500 << n)),
                other => panic!("delivery {n}: {other:?}"),
            }
        }
        assert_eq!(decide(&e, 5, &P), Disposition::DeadLetter);
        assert_eq!(wire_code(&e), ErrorCode::UpstreamError);
        assert_eq!(wire_code(&fetch(FetchError::Timeout)), ErrorCode::Timeout);
    }

    #[test]
    fn retry_after_is_honoured() {
        let e = fetch(FetchError::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
            banned: false,
            message: String::new(),
        });
        assert_eq!(decide(&e, 1, &P), Disposition::Nak(Duration::from_secs(2)));
        assert_eq!(wire_code(&e), ErrorCode::RateLimited);
    }
}
