//! Replies to core-NATS requests leave through one task, in batches.
//!
//! Each request is handled in its own task; were each to publish its reply itself, the NATS
//! connection's writer would run after every one of them (tokio runs the task a finishing
//! task woke next) and send one reply per write: nats-server then reads one message per
//! system call, and under load spent twice the CPU per request it spends on an echo. Here
//! the replies of the requests that finish together are published together: the task
//! yields once after the first reply arrives, so that the others ready to run finish first,
//! and then hands them all to the writer at once. Nothing waits for a timer.

use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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
