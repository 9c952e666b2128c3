//! Answering core-NATS requests taken from a queue group, each in its own task; on shutdown
//! the loop stops taking requests and answers the ones already delivered. Also the
//! encoding a request names and the headers its reply carries.

use std::future::Future;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The encoding a request's `Content-Type` header names (JSON without one).
pub fn encoding_of(headers: Option<&async_nats::HeaderMap>) -> candlepipe_core::Encoding {
    candlepipe_core::Encoding::from_content_type(
        headers
            .and_then(|h| h.get(candlepipe_core::encoding::CONTENT_TYPE_HEADER))
            .map(|v| v.as_str()),
    )
}

/// The headers of a reply in `enc`: its `Content-Type` when it is not JSON.
pub fn reply_headers(enc: candlepipe_core::Encoding) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    if enc == candlepipe_core::Encoding::Msgpack {
        h.insert(
            candlepipe_core::encoding::CONTENT_TYPE_HEADER,
            enc.content_type(),
        );
    }
    h
}

/// Handles each request on `requests` in its own task until `shutdown`; then unsubscribes,
/// answers the requests already delivered, and returns once every handler has finished.
pub async fn answer_requests<F, Fut>(
    mut requests: async_nats::Subscriber,
    shutdown: CancellationToken,
    handle: F,
) where
    F: Fn(async_nats::Message) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tracker = TaskTracker::new();
    let mut draining = false;
    loop {
        tokio::select! {
            msg = requests.next() => match msg {
                Some(msg) => {
                    tracker.spawn(handle(msg));
                }
                None => break,
            },
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                if let Err(e) = requests.drain().await {
                    tracing::warn!(error = %e, "drain failed");
                    break;
                }
            }
        }
    }
    tracker.close();
    tracker.wait().await;
}
