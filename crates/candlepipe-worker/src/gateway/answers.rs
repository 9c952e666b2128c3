//! A short-lived cache of whole candle answers, so that the same request from many HTTP
//! clients at once costs one `candles.get` and one rendering: each answer of a candle
//! endpoint (Binance's klines, Kraken's OHLC, Coinbase's candles, `/v1/candles`) is kept
//! for `CANDLEPIPE_GATEWAY_CACHE_MS` (250 ms by default; 0 turns it off) under its path,
//! query and `Accept`, and identical requests that arrive while it is being made wait for
//! it instead of asking again. The forming candle a client gets may be that much older than
//! the `max_age` the request had. Bounded by [`MAX_BYTES`] of bodies.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;

/// The most body bytes kept.
const MAX_BYTES: u64 = 64 << 20;
/// The largest answer read into the cache (a 1,000-row Binance page is about 150 KB).
const MAX_ANSWER: usize = 4 << 20;

/// Why an answer was not kept.
enum NotKept {
    /// A refusal of the moment (429, 5xx): passed on to the requests that waited for it.
    Refusal(Arc<Answer>),
    /// Past [`MAX_ANSWER`], or the body failed.
    Unreadable(String),
}

/// One answer as it went out.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
pub struct Answers {
    cache: Option<moka::future::Cache<String, Arc<Answer>>>,
}

impl Answers {
    /// `ttl` zero: nothing is kept.
    pub fn new(ttl: Duration) -> Answers {
        let cache = (!ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .time_to_live(ttl)
                .max_capacity(MAX_BYTES)
                .weigher(|k: &String, a: &Arc<Answer>| {
                    (k.len() + a.body.len()).try_into().unwrap_or(u32::MAX)
                })
                .build()
        });
        Answers { cache }
    }
}

/// Whether answers at `path` are candles, and may be kept.
fn kept_path(path: &str) -> bool {
    path == "/binance/api/v3/klines"
        || path == "/kraken/0/public/OHLC"
        || path == "/v1/candles"
        || (path.starts_with("/coinbase/products/") && path.ends_with("/candles"))
}

/// The middleware: a kept answer, or the endpoint's (made once for identical requests).
pub async fn cached(State(answers): State<Answers>, req: Request, next: Next) -> Response {
    let Some(cache) = answers
        .cache
        .as_ref()
        .filter(|_| kept_path(req.uri().path()))
    else {
        return next.run(req).await;
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let key = format!("{}\n{accept}", req.uri());
    let made = cache
        .try_get_with(key, async move {
            let resp = next.run(req).await;
            let (parts, body) = resp.into_parts();
            let body = axum::body::to_bytes(body, MAX_ANSWER)
                .await
                .map_err(|e| NotKept::Unreadable(e.to_string()))?;
            let answer = Arc::new(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            });
            let of_the_moment =
                answer.status == StatusCode::TOO_MANY_REQUESTS || answer.status.is_server_error();
            match of_the_moment {
                true => Err(NotKept::Refusal(answer)),
                false => Ok(answer),
            }
        })
        .await;
    let answer = match made {
        Ok(answer) => answer,
        Err(e) => match e.as_ref() {
            NotKept::Refusal(answer) => answer.clone(),
            NotKept::Unreadable(e) => {
                tracing::warn!(error = %e, "gateway: an answer could not be read");
                let mut resp = Response::new(Body::from("answer too large"));
                *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return resp;
            }
        },
    };
    let mut resp = Response::new(Body::from(answer.body.clone()));
    *resp.status_mut() = answer.status;
    *resp.headers_mut() = answer.headers.clone();
    resp
}
