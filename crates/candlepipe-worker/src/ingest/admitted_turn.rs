//! The exchange turn a live job's admission took for the job's first request, when the
//! turn was free at once ([`crate::budget::gcra::admit`]). The job's message carries it to
//! the fill when this process creates the job (the fill then sends its first request
//! beside its lock and stored state instead of after them), and stays taken when the
//! publish failed (the job may have reached JetStream all the same); in every other case
//! (the read answered, JetStream or a neighbour already had the job) it goes back to the
//! budget when dropped.

use std::sync::Arc;

use candlepipe_core::{Exchange, Millis};

use crate::budget::RedisBudget;

pub struct AdmittedTurn {
    /// Where it goes back to, until a created job carries it.
    back: Option<(Arc<RedisBudget>, Exchange)>,
    /// When it was taken, on the cluster clock (Redis's).
    at: Millis,
}

impl AdmittedTurn {
    pub fn new(budget: &Arc<RedisBudget>, ex: Exchange, at: Millis) -> AdmittedTurn {
        AdmittedTurn {
            back: Some((budget.clone(), ex)),
            at,
        }
    }

    pub fn at(&self) -> Millis {
        self.at
    }

    /// The job that carries it was created (the fill uses it, or lets it lapse), or may
    /// have been (a publish that failed): it is not given back.
    pub fn sent(mut self) {
        self.back = None;
        metrics::counter!("candlepipe_admission_turns_total", "outcome" => "sent").increment(1);
    }
}

impl Drop for AdmittedTurn {
    fn drop(&mut self) {
        let Some((budget, ex)) = self.back.take() else {
            return;
        };
        metrics::counter!("candlepipe_admission_turns_total", "outcome" => "given_back")
            .increment(1);
        // Outside a runtime (shutting down) it lapses: one request short for a moment.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { budget.give_back(ex).await });
        }
    }
}
