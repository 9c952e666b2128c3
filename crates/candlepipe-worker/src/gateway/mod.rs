//! The gateway role: the exchanges' own public HTTP market-data endpoints, answered from
//! candlepipe's cache, so a client of an exchange (ccxt, binance-connector, plain HTTP)
//! joins by changing its base URL. One prefix per exchange (`/binance/api/v3/klines`,
//! `/kraken/0/public/OHLC`, `/coinbase/products/{id}/candles`, …).
//!
//! Every candle request goes through `candlepipe.candles.get` like any NATS producer's, so
//! the cache, deduplication, admission, deadlines and the cluster's exchange budgets are
//! shared with them; the gateway keeps no state and scales out behind any HTTP load
//! balancer. Symbols are the exchange's native ids, mapped through the cluster's market
//! lists ([`crate::cluster::markets`]).
//!
//! candlepipe's own API is under `/v1` ([`native`]): `candles.get` and live candles (SSE)
//! over HTTP, the cluster's stats and an OpenAPI description; `/` is a page charting any
//! series live ([`page`]). Clients share the gateway fairly ([`fairness`]); identical
//! candle requests within a moment share one answer ([`answers`]).
//!
//! Owns: the HTTP listener (`CANDLEPIPE_GATEWAY_ADDR`, `run gateway --gateway-addr`).
//! - NATS: requests `<prefix>.candles.get` (answers on its inbox); nothing else.
//! - Redis: reads the market lists (`<prefix>mk:<exchange>`); writes nothing.

mod answers;
mod binance;
mod coinbase;
mod fairness;
mod kraken;
mod native;
mod page;
mod window;

use std::net::SocketAddr;

pub use fairness::FairnessSettings;

use axum::Router;
use candlepipe_client::Client;
use tokio_util::sync::CancellationToken;

use candlepipe_core::{Exchange, Symbol};

use crate::cluster::markets::{Markets, NoList, Served};
use crate::context::Context;
use crate::error::BoxError;

/// The longest query string served: far above any real request, far below what could
/// cost memory.
const MAX_QUERY_BYTES: usize = 2048;

/// What every endpoint needs; cheap to clone.
#[derive(Clone)]
struct Gateway {
    ctx: Context,
    client: Client,
    /// The same, in MessagePack (`/v1/candles` with `Accept: application/msgpack`).
    msgpack_client: Client,
}

/// The gateway's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// Where it listens.
    pub addr: SocketAddr,
    pub fairness: FairnessSettings,
    /// How long a candle answer is kept for identical requests (zero: not at all).
    pub answer_ttl: std::time::Duration,
}

/// Serves until `shutdown`, then stops taking connections and finishes the requests in
/// flight.
pub async fn run(
    ctx: Context,
    settings: GatewaySettings,
    shutdown: CancellationToken,
) -> Result<(), BoxError> {
    let addr = settings.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("gateway: binding {addr}: {e} (set CANDLEPIPE_GATEWAY_ADDR)"))?;
    let bound = listener.local_addr()?;
    ctx.markets.read_all().await;
    let follow = tokio::spawn(ctx.markets.clone().follow(shutdown.clone()));
    let client = Client::new(ctx.nats.clone()).with_prefix(ctx.settings.subjects.prefix());
    let msgpack_client = client
        .clone()
        .with_encoding(candlepipe_core::Encoding::Msgpack);
    let app = router(
        Gateway {
            ctx,
            client,
            msgpack_client,
        },
        fairness::Fairness::new(settings.fairness),
        answers::Answers::new(settings.answer_ttl),
    );
    tracing::info!(addr = %bound, "gateway ready");
    let stop = shutdown.clone();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    follow.abort();
    Ok(())
}

fn router(gateway: Gateway, fairness: fairness::Fairness, answers: answers::Answers) -> Router {
    Router::new()
        .nest("/binance", binance::routes())
        .nest("/kraken", kraken::routes())
        .nest("/coinbase", coinbase::routes())
        .nest("/v1", native::routes())
        .route("/", axum::routing::get(page::page))
        .layer(axum::middleware::from_fn_with_state(
            answers,
            answers::cached,
        ))
        .layer(axum::middleware::from_fn_with_state(
            fairness,
            fairness::fair,
        ))
        .layer(axum::middleware::from_fn(bounded_query))
        .with_state(gateway)
}

/// A request refused before its endpoint saw it, as the endpoint's exchange (or `/v1`)
/// refuses.
fn too_many(path: &str, e: &candlepipe_client::Error) -> axum::response::Response {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/binance") {
        binance::refused(e)
    } else if under("/kraken") {
        kraken::refused(e)
    } else if under("/coinbase") {
        coinbase::refused(e)
    } else {
        native::refused(e)
    }
}

/// What `look` finds in the cluster's market lists; when nothing yet, looked for once more
/// after reading Redis (the gateway just started, or the fill workers only now loaded it).
async fn at_hand<T>(gw: &Gateway, look: impl Fn(&Markets) -> Option<T>) -> Option<T> {
    if let Some(found) = look(&gw.ctx.markets) {
        return Some(found);
    }
    gw.ctx.markets.read_all().await;
    look(&gw.ctx.markets)
}

/// One of `ex`'s lists as it wrote it (`pick` says which), if at hand.
async fn served<T>(gw: &Gateway, ex: Exchange, pick: fn(Served) -> Option<T>) -> Option<T> {
    at_hand(gw, |m| m.served(ex).ok().and_then(pick)).await
}

/// The unified symbol `ex` lists as `native`: `Ok(None)` when not listed, `Err` when no list
/// is at hand.
async fn unified(gw: &Gateway, ex: Exchange, native: &str) -> Result<Option<Symbol>, NoList> {
    at_hand(gw, |m| m.unified(ex, native).ok())
        .await
        .ok_or(NoList(ex))
}

/// `Retry-After` for a `rate_limited` answer: the service's wait in whole seconds, at least 1.
fn retry_after_seconds(e: &candlepipe_client::Error) -> u64 {
    e.retry_after()
        .map_or(1, |d| d.as_millis().div_ceil(1000).max(1) as u64)
}

/// A JSON body with its content type.
fn json(status: axum::http::StatusCode, body: String) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    use axum::response::IntoResponse;
    let json = HeaderValue::from_static("application/json");
    (status, [(header::CONTENT_TYPE, json)], body).into_response()
}

/// A query string past [`MAX_QUERY_BYTES`] is refused before any handler reads it.
async fn bounded_query(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if req.uri().query().is_some_and(|q| q.len() > MAX_QUERY_BYTES) {
        return (
            axum::http::StatusCode::URI_TOO_LONG,
            "query string too long",
        )
            .into_response();
    }
    next.run(req).await
}
