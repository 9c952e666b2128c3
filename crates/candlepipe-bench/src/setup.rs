//! What the harness takes from the product's configuration: the subject prefix, the
//! exchanges' endpoints, and how to connect to NATS as the product does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use candlepipe_exchange::ExchangeSettings;
use tokio_util::sync::CancellationToken;

/// Opens a NATS connection named `name`, retrying for `patience`, the way the product
/// connects (servers, credentials, TLS and inbox prefix from its configuration).
pub type Connect = Arc<
    dyn Fn(
            String,
            Duration,
        ) -> Pin<Box<dyn Future<Output = anyhow::Result<async_nats::Client>> + Send>>
        + Send
        + Sync,
>;

/// What the harness takes from the product's configuration.
#[derive(Clone)]
pub struct Setup {
    /// The NATS subject prefix (`candlepipe`).
    pub prefix: String,
    /// The exchanges' endpoints, for the `direct` workload (calls without candlepipe).
    pub exchanges: ExchangeSettings,
    /// How long ingest waits for a fill by default (the `burst` scenario reports against it).
    pub fill_wait: Duration,
    pub connect: Connect,
    /// Cancelled when the person running the bench asks it to stop (the echo responder).
    pub stop: CancellationToken,
}

impl Setup {
    pub async fn nats(&self, name: &str, patience: Duration) -> anyhow::Result<async_nats::Client> {
        (self.connect)(name.to_string(), patience).await
    }
}
