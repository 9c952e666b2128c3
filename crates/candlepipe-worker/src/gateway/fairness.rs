//! Per-client fairness: each client has at most `concurrency` requests in progress; more wait
//! their turn in arrival order, at most `queue` of them, and a request past that is refused
//! at once as its endpoint refuses too many requests (Binance's 429 -1003, Kraken's
//! `EAPI:Rate limit exceeded`, Coinbase's 429, `/v1`'s `rate_limited`), with `Retry-After`.
//! So a client sending thousands of requests at once is served in turn while every other
//! client keeps its own share of the gateway.
//!
//! A client is its peer address, or, behind a trusted load balancer, the value of the header
//! `CANDLEPIPE_GATEWAY_CLIENT_HEADER` names (e.g. `X-Forwarded-For`: its first address).
//! Clients with nothing in progress are forgotten.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::Response;
use candlepipe_core::ErrorCode;
use tokio::sync::Semaphore;

/// How the gateway shares itself among clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FairnessSettings {
    /// Requests one client may have in progress.
    pub concurrency: usize,
    /// Requests one client may have waiting for their turn; more are refused.
    pub queue: usize,
    /// The header that names the client (set by a trusted proxy); `None`: the peer address.
    pub client_header: Option<HeaderName>,
}

/// The wait a refused client is told to take.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// One client's share.
struct Share {
    turns: Arc<Semaphore>,
    waiting: AtomicUsize,
}

#[derive(Clone)]
pub struct Fairness {
    settings: Arc<FairnessSettings>,
    clients: Arc<Mutex<HashMap<String, Arc<Share>>>>,
}

impl Fairness {
    pub fn new(settings: FairnessSettings) -> Fairness {
        Fairness {
            settings: Arc::new(settings),
            clients: Arc::default(),
        }
    }

    fn client(&self, req: &Request) -> String {
        let named = self.settings.client_header.as_ref().and_then(|h| {
            let v = req.headers().get(h)?.to_str().ok()?;
            let first = v.split(',').next()?.trim();
            (!first.is_empty()).then(|| first.to_string())
        });
        named.unwrap_or_else(|| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string())
        })
    }

    fn share(&self, client: &str) -> Arc<Share> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(client.to_string())
            .or_insert_with(|| {
                Arc::new(Share {
                    turns: Arc::new(Semaphore::new(self.settings.concurrency.max(1))),
                    waiting: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Forgets `client` when nothing of it is in progress or waiting.
    fn done(&self, client: &str, share: Arc<Share>) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        // The map's and this one: nobody else holds it (shares are only cloned under the lock).
        if Arc::strong_count(&share) == 2 {
            clients.remove(client);
        }
    }

    /// How many clients have something in progress (for the gauge and tests).
    fn clients(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The middleware: waits for the client's turn, or refuses when its queue is full.
pub async fn fair(State(fairness): State<Fairness>, req: Request, next: Next) -> Response {
    let client = fairness.client(&req);
    let share = fairness.share(&client);
    let waiting = share.waiting.fetch_add(1, Ordering::SeqCst);
    let full = waiting >= fairness.settings.queue && share.turns.available_permits() == 0;
    let response = if full {
        share.waiting.fetch_sub(1, Ordering::SeqCst);
        metrics::counter!("candlepipe_gateway_refused_total", "reason" => "client_queue_full")
            .increment(1);
        tracing::debug!(client, "gateway: a client's queue is full; refused");
        super::too_many(req.uri().path(), &refusal())
    } else {
        let turn = share.turns.clone().acquire_owned().await;
        share.waiting.fetch_sub(1, Ordering::SeqCst);
        match turn {
            Ok(_turn) => next.run(req).await,
            // The semaphore is never closed.
            Err(_) => super::too_many(req.uri().path(), &refusal()),
        }
    };
    fairness.done(&client, share);
    metrics::gauge!("candlepipe_gateway_clients").set(fairness.clients() as f64);
    response
}

/// What a refused request is told, as candlepipe's `rate_limited`.
fn refusal() -> candlepipe_client::Error {
    candlepipe_client::Error::Service {
        code: ErrorCode::RateLimited,
        message: "too many requests from this client at once; retry after Retry-After seconds"
            .into(),
        retry_after: Some(RETRY_AFTER),
    }
}
