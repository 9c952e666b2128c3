//! Replies to core-NATS requests leave through one task, in batches.
//!
//! Each request is handled in its own task; were each to publish its reply itself, the NATS
//! connection's writer would run after every one of them (tokio runs the task a finishing
//! task woke next) and send one reply per write: nats-server then reads one message per
//! system call, and under load spent twice the CPU per request it spends on an echo. Here
//! the replies of the requests that finish together are published together: the task
//! yields once after the first reply arrives, so that the others ready to run finish first,
//! and then hands them all to the writer at once. Nothing waits for a timer.
//!
//! Every role answers only on inboxes ([`permitted`]): a reply subject outside the allowed
//! prefixes is not answered, counted (`candlepipe_refused_replies_total{reason}`) and
//! logged at most once per [`REFUSAL_LOG_EVERY_MS`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use candlepipe_core::reply_to::{Refused, ReplyPolicy};
use candlepipe_core::{now_ms, Millis};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Refusals are logged at most this often (each line says how many it stands for).
pub const REFUSAL_LOG_EVERY_MS: Millis = 10_000;

static LAST_LOGGED: AtomicI64 = AtomicI64::new(i64::MIN);
static UNLOGGED: AtomicU64 = AtomicU64::new(0);

/// Whether `subject` may take the answer to a request on `request`; a refusal is counted and
/// logged (see the module's docs).
pub fn permitted(policy: &ReplyPolicy, subject: &str, request: &str) -> bool {
    match policy.check(subject) {
        Ok(()) => true,
        Err(refused) => {
            refuse(policy, refused, subject, request);
            false
        }
    }
}

/// Counts and logs one refused reply subject.
pub fn refuse(policy: &ReplyPolicy, refused: Refused, subject: &str, request: &str) {
    metrics::counter!("candlepipe_refused_replies_total", "reason" => refused.reason())
        .increment(1);
    let now = now_ms();
    let last = LAST_LOGGED.load(Ordering::Relaxed);
    let due = last == i64::MIN || now - last >= REFUSAL_LOG_EVERY_MS;
    if due
        && LAST_LOGGED
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let also = UNLOGGED.swap(0, Ordering::Relaxed);
        tracing::warn!(
            reply = %subject.chars().take(80).collect::<String>(),
            request,
            reason = refused.reason(),
            allowed = %policy,
            refused_since_last_line = also,
            "request not answered: its reply subject is not an inbox"
        );
    } else {
        UNLOGGED.fetch_add(1, Ordering::Relaxed);
    }
}

struct Reply {
    subject: Subject,
    headers: Option<HeaderMap>,
    body: Bytes,
}

/// Cheap to clone; replies sent through any clone leave in order of sending.
#[derive(Clone)]
pub struct Replies {
    tx: mpsc::UnboundedSender<Reply>,
}

/// Replies published per batch at most (the rest wait for the next round).
const MAX_BATCH: usize = 512;

impl Replies {
    /// Starts the publishing task; it ends once every clone is dropped and the replies
    /// sent before are published.
    pub fn start(nats: async_nats::Client) -> (Replies, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Replies { tx }, tokio::spawn(publish(nats, rx)))
    }

    pub fn send(&self, subject: Subject, headers: Option<HeaderMap>, body: Bytes) {
        let reply = Reply {
            subject,
            headers,
            body,
        };
        if self.tx.send(reply).is_err() {
            tracing::warn!("reply not sent: the publishing task has ended");
        }
    }
}

async fn publish(nats: async_nats::Client, mut rx: mpsc::UnboundedReceiver<Reply>) {
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Requests already running finish first and join this batch.
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        metrics::histogram!("candlepipe_reply_batch_size").record(batch.len() as f64);
        for r in batch.drain(..) {
            let sent = match r.headers {
                Some(h) => nats.publish_with_headers(r.subject, h, r.body).await,
                None => nats.publish(r.subject, r.body).await,
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, "could not publish reply");
            }
        }
    }
}
