//! A typed async client for candlepipe's producer-facing NATS subjects (SPEC §3): candles
//! (`candlepipe.candles.get`, JSON or MessagePack), analyses (`candlepipe.analysis.run`, and
//! the async job on `candlepipe.jobs.analyze` with its reply), and live candles
//! (`candlepipe.candles.watch`, renewed while the [`Live`] stream is held).
//!
//! Errors mirror the wire codes ([`Error::Service`] with [`candlepipe_core::ErrorCode`] and
//! `retry_after` where the service gives one). Every call waits as long as the request's own
//! `timeout_ms` (the service answers before it) plus [`NETWORK_MARGIN`].
//!
//! ```no_run
//! // no_run: needs a running candlepipe (`scripts/demo.sh` starts one); the test suite runs
//! // the same calls against real servers (tests/e2e/client.rs).
//! use candlepipe_client::{Client, CandlesRequest};
//!
//! # async fn example() -> Result<(), candlepipe_client::Error> {
//! let client = Client::connect("nats://127.0.0.1:4222").await?;
//! let reply = client
//!     .candles(&CandlesRequest::latest("binance", "BTC/USDT", "1h", 100))
//!     .await?;
//! for c in &reply.candles {
//!     println!("{} {} {}", c.t, c.c, c.closed);
//! }
//! # Ok(())
//! # }
//! ```

mod error;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use candlepipe_core::analysis::{Answer, ResultRequest, REPLY_HEADER};
use candlepipe_core::encoding::CONTENT_TYPE_HEADER;
use candlepipe_core::request::AnyReply;
use candlepipe_core::watch::{WatchReply, WatchRequest};
pub use candlepipe_core::{
    AnalysisReply, AnalysisRequest, Candle, CandlesReply, CandlesRequest, Encoding, ErrorCode,
};
use candlepipe_core::{Subjects, WireError};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::Error;

/// What a request waits beyond its own `timeout_ms`: the way to the service and back.
pub const NETWORK_MARGIN: Duration = Duration::from_secs(1);
/// `timeout_ms` of a candles request that sets none.
pub const DEFAULT_CANDLES_TIMEOUT: Duration = Duration::from_secs(10);
/// `timeout_ms` of an analysis that sets none.
pub const DEFAULT_ANALYSIS_TIMEOUT: Duration = Duration::from_secs(60);
/// Header of a live candle: the exchange's event time (ms), when it says.
pub const EVENT_MS_HEADER: &str = "Candlepipe-Event-Ms";

/// A producer's handle on candlepipe. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    nats: async_nats::Client,
    subjects: Subjects,
    encoding: Encoding,
}

impl Client {
    /// Over an existing NATS connection, subject prefix `candlepipe`, JSON.
    pub fn new(nats: async_nats::Client) -> Client {
        Client {
            nats,
            subjects: Subjects::new("candlepipe"),
            encoding: Encoding::Json,
        }
    }

    /// Connects to NATS at `url` (see [`Client::new`]).
    pub async fn connect(url: &str) -> Result<Client, Error> {
        let nats = async_nats::connect(url)
            .await
            .map_err(|e| Error::Nats(format!("{url}: {e}")))?;
        Ok(Client::new(nats))
    }

    /// Connects with `options`: credentials, and for a tenant with its own inboxes
    /// `custom_inbox_prefix("_INBOX_desk1")` (the service answers only on inboxes it is
    /// told of: `CANDLEPIPE_REPLY_PREFIXES=_INBOX_desk1.`).
    pub async fn connect_with(
        url: &str,
        options: async_nats::ConnectOptions,
    ) -> Result<Client, Error> {
        let nats = options
            .connect(url)
            .await
            .map_err(|e| Error::Nats(format!("{url}: {e}")))?;
        Ok(Client::new(nats))
    }

    /// Another subject prefix (`CANDLEPIPE_SUBJECT_PREFIX` of the service).
    pub fn with_prefix(mut self, prefix: &str) -> Client {
        self.subjects = Subjects::new(prefix);
        self
    }

    /// Requests and replies in `encoding` (MessagePack is smaller and faster to decode).
    pub fn with_encoding(mut self, encoding: Encoding) -> Client {
        self.encoding = encoding;
        self
    }

    /// The NATS connection underneath.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// `candlepipe.candles.get`. A request without `timeout_ms` is sent with
    /// [`DEFAULT_CANDLES_TIMEOUT`], so the service and the client agree on the deadline.
    pub async fn candles(&self, req: &CandlesRequest) -> Result<CandlesReply, Error> {
        let mut req = req.clone();
        let deadline = deadline(&mut req.timeout_ms, DEFAULT_CANDLES_TIMEOUT);
        let reply: AnyReply = self
            .request(self.subjects.candles_get(), &req, deadline)
            .await?;
        reply.into_result().map_err(Error::from)
    }

    /// `candlepipe.candles.get`, the reply left as it came: its payload, in the client's
    /// encoding, whether it holds candles or the service's error (for a proxy that passes
    /// it on).
    pub async fn candles_reply(&self, req: &CandlesRequest) -> Result<Bytes, Error> {
        let mut req = req.clone();
        let deadline = deadline(&mut req.timeout_ms, DEFAULT_CANDLES_TIMEOUT);
        let msg = self
            .request_message(self.subjects.candles_get(), &req, deadline)
            .await?;
        Ok(msg.payload)
    }

    /// `candlepipe.analysis.run`; an error for the whole request is an [`Error::Service`],
    /// per-symbol errors are in the reply's `errors`.
    pub async fn analyze(&self, req: &AnalysisRequest) -> Result<AnalysisReply, Error> {
        let mut req = req.clone();
        let deadline = deadline(&mut req.timeout_ms, DEFAULT_ANALYSIS_TIMEOUT);
        let answer: Answer = self
            .request(self.subjects.analysis_run(), &req, deadline)
            .await?;
        answer_result(answer)
    }

    /// Queues an analysis on `candlepipe.jobs.analyze` (JetStream: it survives worker
    /// restarts) under `job_id`, the result to come on a subject of this connection's own.
    /// The job is stored by JetStream when this returns; [`AnalysisJob::result`] waits for
    /// the answer. Queuing the same `job_id` again (a retry) within JetStream's
    /// deduplication window queues nothing: its result is then the first job's, asked for on
    /// `candlepipe.analysis.result`.
    pub async fn analysis_job(
        &self,
        req: &AnalysisRequest,
        job_id: &str,
    ) -> Result<AnalysisJob, Error> {
        let reply_to = self.nats.new_inbox();
        let replies = self
            .nats
            .subscribe(reply_to.clone())
            .await
            .map_err(|e| Error::Nats(e.to_string()))?;
        let mut headers = HeaderMap::new();
        headers.insert(REPLY_HEADER, reply_to.as_str());
        headers.insert("Nats-Msg-Id", job_id);
        let subject = self.subjects.analyze_job();
        let body = serde_json::to_vec(req).map_err(|e| Error::Decode(e.to_string()))?;
        let ack = async_nats::jetstream::new(self.nats.clone())
            .publish_with_headers(subject.clone(), headers, Bytes::from(body))
            .await
            .map_err(|e| Error::Nats(format!("{subject}: {e}")))?
            .await
            .map_err(|e| Error::Nats(format!("{subject} not stored: {e}")))?;
        let waiting = match ack.duplicate {
            true => Waiting::Stored(self.clone()),
            false => Waiting::Reply(replies),
        };
        Ok(AnalysisJob {
            id: job_id.to_string(),
            subject,
            waiting,
        })
    }

    /// `candlepipe.analysis.result`: the answer of the async job `job_id` (kept 24 h),
    /// waiting up to `within` while it runs; [`ErrorCode::Timeout`] when there is none by
    /// then (unknown id, or still running).
    pub async fn analysis_result(
        &self,
        job_id: &str,
        within: Duration,
    ) -> Result<AnalysisReply, Error> {
        let req = ResultRequest {
            job_id: job_id.to_string(),
            timeout_ms: Some(within.as_millis() as i64),
        };
        let answer: Answer = self
            .request(self.subjects.analysis_result(), &req, within)
            .await?;
        answer_result(answer)
    }

    /// Keeps a series live (`candlepipe.candles.watch`) and yields each change of its
    /// newest candles. The watch is renewed while the [`Live`] is held and lapses by itself
    /// after it is dropped.
    pub async fn watch(&self, exchange: &str, symbol: &str, interval: &str) -> Result<Live, Error> {
        let req = WatchRequest {
            exchange: exchange.into(),
            symbol: symbol.into(),
            interval: interval.into(),
        };
        let reply = self.watch_once(&req).await?;
        let updates = self
            .nats
            .subscribe(reply.subject.clone())
            .await
            .map_err(|e| Error::Nats(e.to_string()))?;
        let lasts = Duration::from_millis(reply.expires_in_ms);
        let renew_every = (lasts / 3).max(Duration::from_secs(1));
        let client = self.clone();
        let (failed_tx, failed) = tokio::sync::oneshot::channel();
        let renewal = tokio::spawn(async move {
            let mut renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(renew_every).await;
                match client.watch_once(&req).await {
                    Ok(_) => renewed = tokio::time::Instant::now(),
                    // A transient failure is tried again at the next turn while the watch
                    // still holds; one that lasts until it lapses, or one that asking again
                    // cannot mend, ends the stream with it.
                    Err(e) if e.is_transient() && renewed.elapsed() + renew_every < lasts => {}
                    Err(e) => {
                        let _ = failed_tx.send(e);
                        return;
                    }
                }
            }
        });
        Ok(Live {
            subject: reply.subject,
            encoding: self.encoding,
            updates,
            renewal,
            failed: Some(failed),
            ended: false,
        })
    }

    async fn watch_once(&self, req: &WatchRequest) -> Result<WatchReply, Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Reply {
            Ok(WatchReply),
            Err { error: WireError },
        }
        match self
            .request(self.subjects.candles_watch(), req, DEFAULT_CANDLES_TIMEOUT)
            .await?
        {
            Reply::Ok(r) => Ok(r),
            Reply::Err { error } => Err(error.into()),
        }
    }

    /// One request in the client's encoding, waiting `deadline` plus the network margin.
    async fn request<Q: Serialize, R: DeserializeOwned>(
        &self,
        subject: String,
        body: &Q,
        deadline: Duration,
    ) -> Result<R, Error> {
        decode(&self.request_message(subject, body, deadline).await?)
    }

    /// [`Client::request`]'s answer before it is decoded.
    async fn request_message<Q: Serialize>(
        &self,
        subject: String,
        body: &Q,
        deadline: Duration,
    ) -> Result<async_nats::Message, Error> {
        let wait = deadline + NETWORK_MARGIN;
        let mut request = async_nats::Request::new()
            .payload(Bytes::from(self.encoding.encode(body)))
            .timeout(Some(wait));
        if self.encoding == Encoding::Msgpack {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE_HEADER, self.encoding.content_type());
            request = request.headers(headers);
        }
        self.nats
            .send_request(subject.clone(), request)
            .await
            .map_err(|e| match e.kind() {
                async_nats::RequestErrorKind::NoResponders => Error::NoResponders {
                    subject: subject.clone(),
                },
                async_nats::RequestErrorKind::TimedOut => Error::TimedOut {
                    subject: subject.clone(),
                    after: wait,
                },
                _ => Error::Nats(e.to_string()),
            })
    }
}

/// Sets the request's `timeout_ms` to `default` when it has none; the deadline to wait.
fn deadline(timeout_ms: &mut Option<i64>, default: Duration) -> Duration {
    let ms = *timeout_ms.get_or_insert(default.as_millis() as i64);
    Duration::from_millis(ms.max(0) as u64)
}

/// A reply in the encoding its `Content-Type` says (JSON without one).
fn decode<R: DeserializeOwned>(msg: &async_nats::Message) -> Result<R, Error> {
    Encoding::from_content_type(
        msg.headers
            .as_ref()
            .and_then(|h| h.get(CONTENT_TYPE_HEADER))
            .map(|v| v.as_str()),
    )
    .decode(&msg.payload)
    .map_err(|e| Error::Decode(e.0))
}

fn answer_result(answer: Answer) -> Result<AnalysisReply, Error> {
    match answer {
        Answer::Done(r) => Ok(r),
        Answer::Failed(e) => Err(e.error.into()),
    }
}

/// An analysis queued on JetStream, its answer to come.
pub struct AnalysisJob {
    id: String,
    subject: String,
    waiting: Waiting,
}

/// Where an [`AnalysisJob`]'s answer comes from.
enum Waiting {
    /// Its own reply subject: the job was queued.
    Reply(async_nats::Subscriber),
    /// `candlepipe.analysis.result`: the job id was queued before (a retry).
    Stored(Client),
}

impl AnalysisJob {
    /// The job's id: its `Nats-Msg-Id`, and the Redis record the result is stored under
    /// (`analysis:<id>`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits up to `within` for the answer.
    pub async fn result(self, within: Duration) -> Result<AnalysisReply, Error> {
        let mut replies = match self.waiting {
            Waiting::Reply(replies) => replies,
            Waiting::Stored(client) => return client.analysis_result(&self.id, within).await,
        };
        let msg = tokio::time::timeout(within, replies.next())
            .await
            .map_err(|_| Error::TimedOut {
                subject: self.subject.clone(),
                after: within,
            })?
            .ok_or_else(|| Error::Nats("the reply subscription closed".into()))?;
        answer_result(decode(&msg)?)
    }
}

/// One change of a watched series.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCandle {
    pub candle: Candle,
    /// On a closed candle: whether it is the exchange's record. One published `false` (built
    /// from trades, or closed by the stream's word alone) comes again as `true` once REST
    /// confirms it.
    pub confirmed: Option<bool>,
    /// Published again because the record differs from what came before for this open time.
    pub revised: bool,
    /// When the exchange made the change (ms), when it says.
    pub event_ms: Option<i64>,
}

/// The changes of a watched series, as a [`Stream`]; the watch is renewed while it is held.
/// When renewals fail until the watch lapses (no `stream` role answers, NATS is gone), or
/// the service refuses the watch, the stream yields that error once and ends.
pub struct Live {
    subject: String,
    encoding: Encoding,
    updates: async_nats::Subscriber,
    renewal: tokio::task::JoinHandle<()>,
    /// The renewal's final failure, while it may still come.
    failed: Option<tokio::sync::oneshot::Receiver<Error>>,
    /// The failure was yielded: the stream is over.
    ended: bool,
}

impl Live {
    /// The live subject (`candlepipe.candles.live.<exchange>.<BASE-QUOTE>.<interval>`, with
    /// `.msgpack` for a MessagePack client).
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

impl Stream for Live {
    type Item = Result<LiveCandle, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.failed.as_mut().map(|f| Pin::new(f).poll(cx)) {
            Some(Poll::Ready(Ok(e))) => {
                self.failed = None;
                self.ended = true;
                return Poll::Ready(Some(Err(e)));
            }
            // The renewal is gone with nothing to say.
            Some(Poll::Ready(Err(_))) => self.failed = None,
            // Renewing: candles as they come.
            Some(Poll::Pending) | None => {}
        }
        let encoding = self.encoding;
        self.updates.poll_next_unpin(cx).map(|msg| {
            msg.map(|msg| {
                let live: candlepipe_core::watch::LiveCandle = encoding
                    .decode(&msg.payload)
                    .map_err(|e| Error::Decode(e.0))?;
                let event_ms = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(EVENT_MS_HEADER))
                    .and_then(|v| v.as_str().parse().ok());
                Ok(LiveCandle {
                    candle: live.candle,
                    confirmed: live.confirmed,
                    revised: live.revised,
                    event_ms,
                })
            })
        })
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}
