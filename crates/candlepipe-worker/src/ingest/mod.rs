//! The ingest role: answers `candlepipe.candles.get` (queue group `ingest`) from L1, then
//! Redis, and on a miss publishes one deduplicated fill job and waits for its `ready` event.
//! Every request gets a reply before its deadline (`timeout_ms`): candles, stale candles, or
//! a typed error. A miss whose job could not get its exchange's turn before the deadline is
//! not queued at all: it is answered at once, stale or `rate_limited` with `retry_after_ms`.
//!
//! Owns: the L1 cache, the waiters of this process ([`waiters`]), the widest recent window
//! per exchange and interval ([`widest`]), and which series it is asked for often ([`hot`]).
//! - NATS: answers `<prefix>.candles.get` on inboxes only; publishes
//!   `<prefix>.jobs.fill.<exchange>` (JetStream); hears `<prefix>.candles.ready.>`.
//! - Redis: reads the series (`<prefix>s:{<exchange>:<symbol>:<interval>}…`) and the market
//!   lists; writes a live job into its exchange's waiting set (`<prefix>rl:{<exchange>}:waiting`,
//!   through [`crate::budget`]) and hot series into `cp:stream:{live}:wanted`
//!   ([`crate::cluster::leases`]); hears fill writes land on the channel `<prefix>ready`
//!   ([`write_signals`]). Never calls an exchange.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{HeaderMap, Message};
use bytes::Bytes;
use candlepipe_core::candle::fill_with_previous;
use candlepipe_core::encoding::CONTENT_TYPE_HEADER;
use candlepipe_core::reply_parts;
use candlepipe_core::request::{CandlesReplyRef, ErrorReply, Window};
use candlepipe_core::subjects::INGEST_QUEUE_GROUP;
use candlepipe_core::{
    now_ms, CandleQuery, CandlesRequest, Completeness, Encoding, ErrorCode, Exchange, FillGaps,
    FillJob, Lane, Millis, Priority, SeriesKey, SeriesState, Source, Verdict, WireError,
};
use candlepipe_exchange::{page_candles, pages_history};
use candlepipe_store::{ReplyKey, ReplyRead, Snapshot, WriteSignal};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

mod admitted_turn;
mod hot;
mod waiters;
mod widest;
mod write_signals;

use self::admitted_turn::AdmittedTurn;
use self::hot::{Hot, HOT_FOR};
use self::waiters::{Outcome, Waiter, Waiters};
use self::widest::Widest;
use crate::budget::RedisBudget;
use crate::cluster::leases::Leases;
use crate::cluster::stats::Field;
use crate::context::Context;
use crate::error::BoxError;
use crate::requests::answer::answer_requests;
use crate::requests::replies::Replies;
use crate::requests::traces;

/// A successful answer.
struct Answer {
    source: Source,
    stale: bool,
    body: Body,
}

enum Body {
    /// The candles of `window` in a snapshot (L1, a read after a fill, a stale answer).
    Slice { snap: Arc<Snapshot>, window: Window },
    /// The reply itself, assembled from the store's reply fragments (a Redis hit).
    Encoded(Bytes),
}

impl Answer {
    fn slice(source: Source, stale: bool, snap: Arc<Snapshot>, window: Window) -> Answer {
        Answer {
            source,
            stale,
            body: Body::Slice { snap, window },
        }
    }

    /// `history_unavailable` when the window holds no candle and reaches before the
    /// exchange's history: there is nothing to answer with.
    fn or_history_unavailable(self) -> Result<Answer, WireError> {
        if let Body::Slice { snap, window: w } = &self.body {
            if snap.slice(w.from, w.to).is_empty() {
                history_check(&snap.series, &snap.state, w)?;
            }
        }
        Ok(self)
    }
}

/// For a window without candles: `history_unavailable` if it reaches before the exchange's
/// history.
fn history_check(series: &SeriesKey, state: &SeriesState, w: &Window) -> Result<(), WireError> {
    if state.history_from > w.from {
        return Err(WireError::new(
            ErrorCode::HistoryUnavailable,
            format!(
                "{} serves {} {} candles only from open time {}; the window ends at {}",
                series.exchange,
                series.symbol,
                series.interval,
                instant(state.history_from),
                instant(w.to)
            ),
        ));
    }
    Ok(())
}

/// `ms` as people read it in a message: RFC 3339 UTC, with the milliseconds.
fn instant(ms: Millis) -> String {
    let rfc = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    match rfc {
        Some(rfc) => format!("{rfc} ({ms} ms)"),
        None => format!("{ms} ms"),
    }
}

/// What every request's task holds, behind one `Arc`: a task's future is copied into the
/// task as it is spawned and again as it finishes, so it holds a reference count rather
/// than a copy of the context (BENCHMARKS.md §12).
struct Shared {
    ctx: Context,
    waiters: Waiters,
    local: Local,
}

/// What one ingest process keeps across requests.
struct Local {
    widest: Widest,
    /// Series asked for often, to be streamed.
    hot: Hot,
    leases: Leases,
    replies: Replies,
    /// Series being loaded into L1 in the background after a Redis hit.
    warming: Arc<Mutex<HashSet<SeriesKey>>>,
    /// Series this process found stored lately, noted when a request taken for a cold miss
    /// was answered: a miss of any other is taken for a cold one, its job admitted alongside
    /// the read ([`ahead_of_read`]).
    stored: moka::sync::Cache<SeriesKey, ()>,
}

/// What only the ingest role reads.
#[derive(Debug, Clone, Default)]
pub struct IngestSettings {
    /// Where it hears fill writes land ([`write_signals`]): a client of one Redis server
    /// (any node of a cluster: a `PUBLISH` reaches them all). `None`: `ready` events only.
    pub write_signals: Option<redis::Client>,
}

pub async fn run(
    ctx: Context,
    own: IngestSettings,
    shutdown: CancellationToken,
) -> Result<(), BoxError> {
    let waiters = Waiters::default();
    let (replies, replier) = Replies::start(ctx.nats.clone());
    let local = Local {
        replies,
        widest: Widest::default(),
        hot: Hot::new(ctx.settings.hot_per_minute),
        leases: Leases::new(ctx.redis.clone(), &ctx.settings.redis_prefix),
        warming: Arc::default(),
        stored: moka::sync::Cache::builder()
            .max_capacity(STORED_SERIES)
            .time_to_idle(Duration::from_secs(600))
            .build(),
    };
    // Subscribe to ready events before taking requests, so no event can be missed.
    let ready = ctx
        .nats
        .subscribe(ctx.settings.subjects.ready_all())
        .await?;
    let (heard, signals) = tokio::sync::mpsc::channel(write_signals::QUEUED_SIGNALS);
    let listener = own.write_signals.map(|client| {
        let channel = ctx.store.ready_channel();
        tokio::spawn(write_signals::hear(
            client,
            channel,
            heard,
            shutdown.clone(),
        ))
    });
    let dispatcher = tokio::spawn(dispatch_ready(ctx.clone(), waiters.clone(), ready, signals));
    ctx.markets.read_all().await;
    let lists = tokio::spawn(ctx.markets.clone().follow(shutdown.clone()));

    let requests = ctx
        .nats
        .queue_subscribe(
            ctx.settings.subjects.candles_get(),
            INGEST_QUEUE_GROUP.to_string(),
        )
        .await?;
    let (l1, store) = (ctx.l1.clone(), ctx.store.clone());
    let gauges = tokio::spawn(async move {
        loop {
            metrics::gauge!("candlepipe_l1_entries").set(l1.entries() as f64);
            metrics::gauge!("candlepipe_verified_bytes").set(store.verified_bytes() as f64);
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    });
    // Ready means the server routes requests here: the subscription is flushed.
    ctx.nats.flush().await?;
    tracing::info!(subject = %ctx.settings.subjects.candles_get(), "ingest ready");
    let shared = Arc::new(Shared {
        ctx,
        waiters,
        local,
    });
    answer_requests(requests, shutdown, |msg| {
        let shared = shared.clone();
        async move {
            let Shared {
                ctx,
                waiters,
                local,
            } = &*shared;
            // A producer's trace is followed; an untraced request costs nothing more (a
            // miss starts a trace on its fill job).
            match traces::from_headers(msg.headers.as_ref()) {
                Some(trace) => {
                    let span = tracing::info_span!("request", trace_id = tracing::field::Empty);
                    traces::within(trace, span, handle(ctx, waiters, local, msg)).await
                }
                None => handle(ctx, waiters, local, msg).await,
            }
        }
    })
    .await;
    dispatcher.abort();
    if let Some(listener) = listener {
        listener.abort();
    }
    gauges.abort();
    lists.abort();
    // The last replies leave once the last handle on them is gone.
    drop(shared);
    if let Err(e) = replier.await {
        tracing::warn!(error = %e, "reply task failed");
    }
    tracing::info!("ingest drained");
    Ok(())
}

async fn handle(ctx: &Context, waiters: &Waiters, local: &Local, msg: Message) {
    let Some(reply_to) = msg.reply.clone() else {
        tracing::debug!("request without reply subject dropped");
        return;
    };
    if !crate::requests::replies::permitted(&ctx.settings.replies, &reply_to, &msg.subject) {
        return;
    }
    let enc = crate::requests::answer::encoding_of(msg.headers.as_ref());
    let started = Instant::now();
    let answered = answer(ctx, waiters, local, &msg.payload, enc, started)
        .await
        .and_then(|(a, fill)| Ok((a.or_history_unavailable()?, fill)));
    record(ctx, answered.as_ref().map(|(a, _)| a), started);
    let body = match answered {
        Ok((a, fill)) => encode_answer(ctx, &a, enc, fill),
        Err(e) => {
            tracing::debug!(code = %e.code, message = %e.message, "request failed");
            Bytes::from(enc.encode(&ErrorReply::new(e)))
        }
    };
    let headers = match enc {
        Encoding::Json => None,
        Encoding::Msgpack => {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE_HEADER, enc.content_type());
            Some(headers)
        }
    };
    local.replies.send(reply_to, headers, body);
}

/// The encoded reply. L1 answers are memoized on their snapshot: the same window in the
/// same encoding is encoded once per snapshot, however many requests it answers.
fn encode_answer(ctx: &Context, a: &Answer, enc: Encoding, fill: FillGaps) -> Bytes {
    let (snap, window) = match &a.body {
        Body::Encoded(bytes) => return bytes.clone(),
        Body::Slice { snap, window } => (snap, window),
    };
    let memo = (matches!(a.source, Source::L1 | Source::Stream) && !a.stale).then_some(ReplyKey {
        from: window.from,
        to: window.to,
        tag: enc as u8 | (fill as u8) << 1 | u8::from(a.source == Source::Stream) << 2,
    });
    if let Some(bytes) = memo.and_then(|k| snap.reply(k)) {
        return bytes;
    }
    let series = &snap.series;
    let iv = series.interval;
    let stored = snap.slice(window.from, window.to);
    let lacks = snap.state.completeness(
        iv.millis(),
        window.from,
        window.to,
        stored.iter().map(|c| c.t),
    );
    let filled;
    let candles = match fill {
        FillGaps::Previous if !lacks.missing.is_empty() => {
            filled = fill_with_previous(stored, &lacks.missing);
            &filled[..]
        }
        _ => stored,
    };
    let bytes = Bytes::from(enc.encode_candles(&CandlesReplyRef {
        candles,
        ..reply_head(series, a.source, a.stale, &lacks)
    }));
    if let Some(k) = memo {
        ctx.l1.remember_reply(snap, k, bytes.clone());
    }
    bytes
}

/// A reply for `series` without its candles.
fn reply_head<'a>(
    series: &'a SeriesKey,
    source: Source,
    stale: bool,
    lacks: &'a Completeness,
) -> CandlesReplyRef<'a> {
    let iv = series.interval;
    CandlesReplyRef {
        ok: true,
        exchange: series.exchange,
        symbol: &series.symbol,
        interval: iv,
        source,
        stale,
        complete: lacks.complete,
        missing: &lacks.missing,
        aggregated_from: series.exchange.source_interval(iv).filter(|&b| b != iv),
        candles: &[],
    }
}

/// Requests by the tier that answered (`source`), stale or not, or by error code.
fn record(ctx: &Context, answered: Result<&Answer, &WireError>, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    ctx.stats.add(
        match answered {
            Ok(a) if a.stale => Field::RequestsStale,
            Ok(a) => Field::Requests(a.source),
            Err(e) => Field::RequestsError(e.code),
        },
        1,
    );
    match answered {
        Ok(a) => {
            let stale = if a.stale { "true" } else { "false" };
            metrics::counter!("candlepipe_requests_total", "source" => a.source.as_str(), "stale" => stale, "code" => "ok").increment(1);
            metrics::histogram!("candlepipe_request_duration_seconds", "source" => a.source.as_str()).record(seconds);
        }
        Err(e) => {
            metrics::counter!("candlepipe_requests_total", "source" => "none", "stale" => "false", "code" => e.code.as_str()).increment(1);
            metrics::histogram!("candlepipe_request_duration_seconds", "source" => "none")
                .record(seconds);
        }
    }
}

/// How many series [`Local::stored`] remembers.
const STORED_SERIES: u64 = 100_000;

/// Replies leave this long before the producer's deadline, so they arrive in time.
const REPLY_GUARD: Duration = Duration::from_millis(20);

/// When the reply to a request received at `received` must be sent: its `timeout_ms` (or
/// the configured fill wait), at most the configured cap, less [`REPLY_GUARD`].
fn deadline_of(ctx: &Context, q: &CandleQuery, received: Instant) -> Instant {
    let set = &ctx.settings;
    let timeout = q
        .timeout_ms
        .map_or(set.fill_wait, |ms| Duration::from_millis(ms as u64))
        .min(set.max_timeout);
    received + timeout.saturating_sub(REPLY_GUARD)
}

/// The answer to a request, and how the producer wants gaps filled.
async fn answer(
    ctx: &Context,
    waiters: &Waiters,
    local: &Local,
    payload: &[u8],
    enc: Encoding,
    received: Instant,
) -> Result<(Answer, FillGaps), WireError> {
    let req: CandlesRequest = enc.decode_request(payload)?;
    let q = req.validate()?;
    let answer = answer_query(ctx, waiters, local, &q, enc, received).await?;
    // Counted once answered: a symbol the exchange does not list never becomes hot.
    if q.end.is_none() && local.hot.note(&q.series, now_ms()) {
        let (leases, series) = (local.leases.clone(), q.series.clone());
        tokio::spawn(async move {
            if let Err(e) = leases.want(&series, HOT_FOR, false).await {
                tracing::debug!(error = %e, "hot series not marked for streaming");
            }
        });
    }
    Ok((answer, q.fill_gaps))
}

/// The source of a cache hit from `tier`: `stream` while the exchange's stream keeps the
/// series fresh.
fn from_cache(ctx: &Context, tier: Source, state: &SeriesState, now: Millis) -> Source {
    let fresh_since = now - ctx.settings.stream_silence.as_millis() as Millis;
    if state.streamed_at > 0 && state.streamed_at >= fresh_since {
        Source::Stream
    } else {
        tier
    }
}

async fn answer_query(
    ctx: &Context,
    waiters: &Waiters,
    local: &Local,
    q: &CandleQuery,
    enc: Encoding,
    received: Instant,
) -> Result<Answer, WireError> {
    let now = now_ms();

    let l1 = ctx.l1.get(&q.series);
    if let Some(snap) = &l1 {
        if let Verdict::Fresh(w) = snap.state.verdict(q, now) {
            if snap.holds(&w) {
                let source = from_cache(ctx, Source::L1, &snap.state, now);
                return Ok(Answer::slice(source, false, snap.clone(), w));
            }
        }
    }

    let w = q.window(now);
    let stale: Option<Arc<Snapshot>> = l1
        .as_ref()
        .filter(|s| !s.slice(w.from, w.to).is_empty())
        .cloned();
    let deadline = deadline_of(ctx, q, received);
    // A likely cold miss ([`ahead_of_read`]): its live job is admitted in the same round
    // trip as the read, and released if the read answers. Its first turn is taken with
    // the admission when free, and kept only if no fill worker held the series' lock as
    // the read missed: a job in flight for the series would make the fill's early request
    // (see `crate::fill`) a second one.
    let (cached, ahead) = match ahead_of_read(ctx, local, q, w, now, l1.as_deref()).await {
        Some(job) => {
            let id = job.msg_id(now);
            // A job for the forming candle that must fetch after a moment still to come
            // could not use a turn taken now.
            let take_turn = !job.must_wait(now);
            // Boxed: these futures at once would make every request's task larger (a
            // cold miss pays for the allocation, a hit does not).
            let (cached, mut admitted, lock_free) = Box::pin(async {
                tokio::join!(
                    from_store(ctx, local, q, w, enc, now, stale),
                    admit(ctx, q, (&id, deadline), take_turn),
                    async { take_turn && matches!(ctx.store.locked(&q.series).await, Ok(false)) }
                )
            })
            .await;
            if !lock_free {
                if let Ok(turn) = &mut admitted {
                    drop(turn.take()); // back to the budget
                }
            }
            (cached, Some((job, Admitted { id, admitted })))
        }
        None => (from_store(ctx, local, q, w, enc, now, stale).await, None),
    };
    let guessed = ahead.is_some();
    let (miss, stale) = match cached {
        Cached::Answered(answer) => {
            if let Some((_, a)) = ahead {
                metrics::counter!("candlepipe_admissions_ahead_total", "outcome" => "released")
                    .increment(1);
                if a.admitted.is_ok() {
                    release_in_background(ctx, q.series.exchange, a.id);
                }
                if answer.is_ok() {
                    local.stored.insert(q.series.clone(), ());
                }
            }
            return answer;
        }
        Cached::Miss(stale) => match ahead {
            Some((job, a)) => {
                metrics::counter!("candlepipe_admissions_ahead_total", "outcome" => "used")
                    .increment(1);
                (
                    Miss {
                        job,
                        admitted: Some(a),
                    },
                    stale,
                )
            }
            None => {
                let job = fill_job(local, q, w, now);
                (
                    Miss {
                        job,
                        admitted: None,
                    },
                    stale,
                )
            }
        },
    };
    let answer = wait_for_fill(ctx, waiters, q, miss, w, stale, deadline).await;
    if guessed && answer.is_ok() {
        local.stored.insert(q.series.clone(), ());
    }
    answer
}

/// The fill job for a miss of window `w`, widened to the widest window asked for lately.
fn fill_job(local: &Local, q: &CandleQuery, w: Window, now: Millis) -> FillJob {
    let mut job = FillJob::new(q, w, now);
    let ex = q.series.exchange;
    let wide = local.widest.note(ex, q.series.interval, q.limit);
    job.widen(i64::from(wide).min(page_candles(ex, q.series.interval)));
    job
}

/// The live job to admit alongside the read, for a likely cold miss: a series this process
/// has not seen stored lately, or one L1 holds (`l1`) without any of the window covered and
/// no stream keeping it live (a new window of a known series: another process may have
/// filled it since, and then the admission is released). Listed by its exchange, and not
/// paging through history.
async fn ahead_of_read(
    ctx: &Context,
    local: &Local,
    q: &CandleQuery,
    w: Window,
    now: Millis,
    l1: Option<&Snapshot>,
) -> Option<FillJob> {
    let likely_cold = match l1 {
        Some(snap) => {
            let streamed_since = now - ctx.settings.stream_silence.as_millis() as Millis;
            let streamed = snap.state.streamed_at > 0 && snap.state.streamed_at >= streamed_since;
            !streamed && !snap.state.coverage.touches(w.from, w.to)
        }
        None => !local.stored.contains_key(&q.series),
    };
    if !likely_cold || q.fill_gaps != FillGaps::None {
        return None;
    }
    let job = fill_job(local, q, w, now);
    if pages_history(q.series.exchange, q.series.interval, job.from, now) {
        return None;
    }
    ctx.markets.check(&q.series).await.ok()?;
    Some(job)
}

/// A miss's fill job, and its admission when it was asked ahead of the read.
struct Miss {
    job: FillJob,
    admitted: Option<Admitted>,
}

/// A live job admitted ahead of the read, and what admission said (with the job's first
/// turn, when it took it).
struct Admitted {
    id: String,
    admitted: Result<Option<AdmittedTurn>, WireError>,
}

/// Takes a live job admitted ahead of a read that answered out of its exchange's waiting
/// set. The id names window and time bucket, so another producer's job of the same id was
/// admitted and read at about the same moment and found what this read found; were one
/// queued all the same, its fill would find no waiter and run it in the bulk lane.
fn release_in_background(ctx: &Context, ex: Exchange, id: String) {
    let budget = ctx.budget.clone();
    tokio::spawn(async move { budget.release(ex, &id).await });
}

/// What L1 and Redis made of a request.
enum Cached {
    /// Served (fresh, or stale as allowed), or a final error.
    Answered(Result<Answer, WireError>),
    /// To be filled; with a stale copy to answer if the fill fails.
    Miss(Option<Arc<Snapshot>>),
}

/// The answer from Redis when it holds the window fresh (or stale, as the request allows).
async fn from_store(
    ctx: &Context,
    local: &Local,
    q: &CandleQuery,
    w: Window,
    enc: Encoding,
    now: Millis,
    mut stale: Option<Arc<Snapshot>>,
) -> Cached {
    // Synthetic candles are made from decoded ones: `fill_gaps` requests read them.
    let stored = match q.fill_gaps {
        FillGaps::None => from_fragments(ctx, local, q, w, enc, now).await,
        FillGaps::Previous => Fragments::FullRead,
    };
    let read = match stored {
        Fragments::Answered(answer) => return Cached::Answered(answer),
        Fragments::NotStored => Ok(None),
        Fragments::FullRead => ctx.store.read(&q.series, w.from, w.to).await,
        Fragments::Failed(e) => Err(e),
    };
    match read {
        Ok(Some(read)) => {
            let snap = ctx.l1.put(
                &q.series,
                Snapshot::new(q.series.clone(), read.state, w.from, w.to, read.candles),
            );
            if let Verdict::Fresh(w) = snap.state.verdict(q, now) {
                if snap.holds(&w) {
                    let source = from_cache(ctx, Source::Redis, &snap.state, now);
                    return Cached::Answered(Ok(Answer::slice(source, false, snap, w)));
                }
            }
            if !snap.slice(w.from, w.to).is_empty() {
                stale = Some(snap);
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, series = %q.series, "redis read failed");
            return Cached::Answered(match stale {
                Some(snap) => Ok(Answer::slice(Source::L1, true, snap, w)),
                None => Err(WireError::new(
                    ErrorCode::Unavailable,
                    "the cache store is unavailable",
                )),
            });
        }
    }
    if q.allow_stale {
        if let Some(snap) = stale {
            // Nobody waits for the refresh: it runs in the bulk lane.
            let job = FillJob::new(q, w, now);
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let id = format!("{}.bulk", job.msg_id(now));
                let lane = Lane::new(job.series.exchange, Priority::Bulk);
                if let Err(e) = ctx.jobs.publish(&job, lane, &id, None).await {
                    tracing::warn!(error = %e, "background refresh not published");
                }
            });
            return Cached::Answered(Ok(Answer::slice(Source::Redis, true, snap, w)));
        }
    }
    Cached::Miss(stale)
}

/// What the store's reply fragments made of a request.
enum Fragments {
    /// A fresh Redis hit (or `history_unavailable`), encoded.
    Answered(Result<Answer, WireError>),
    /// Redis holds no candle of the window.
    NotStored,
    /// Not fresh, or a run could not be used: the full read decides.
    FullRead,
    Failed(candlepipe_store::StoreError),
}

/// A Redis hit answered from the reply fragments stored with the candles: verified runs
/// copied into the reply, no candle decoded. L1 is loaded in the background, so that
/// later requests for the series are L1 hits.
async fn from_fragments(
    ctx: &Context,
    local: &Local,
    q: &CandleQuery,
    w: Window,
    enc: Encoding,
    now: Millis,
) -> Fragments {
    let stored = match ctx.store.read_reply(&q.series, w.from, w.to, enc).await {
        Ok(ReplyRead::Served(stored)) => stored,
        Ok(ReplyRead::Absent) => return Fragments::NotStored,
        Ok(ReplyRead::Unserved) => return Fragments::FullRead,
        Err(e) => return Fragments::Failed(e),
    };
    let fresh = match stored.state.verdict(q, now) {
        Verdict::Fresh(f) if w.from <= f.from && f.to <= w.to => f,
        // No candle of the window is stored (a cold window): the full read would find no
        // stale copy either.
        _ if stored.rows.is_empty() => return Fragments::NotStored,
        _ => return Fragments::FullRead,
    };
    warm_l1(ctx, local, &q.series, w);
    let lo = stored.rows.partition_point(|r| r.t < fresh.from);
    let hi = stored.rows.partition_point(|r| r.t <= fresh.to).max(lo);
    let rows = &stored.rows[lo..hi];
    if rows.is_empty() {
        if let Err(e) = history_check(&q.series, &stored.state, &fresh) {
            return Fragments::Answered(Err(e));
        }
    }
    let series = &q.series;
    let iv = series.interval;
    let lacks =
        stored
            .state
            .completeness(iv.millis(), fresh.from, fresh.to, rows.iter().map(|r| r.t));
    let source = from_cache(ctx, Source::Redis, &stored.state, now);
    let head = reply_head(series, source, false, &lacks);
    let fragments = || rows.iter().map(|r| stored.fragment(r));
    let bytes = fragments().map(<[u8]>::len).sum();
    let reply = reply_parts::assemble(enc, &head, rows.len(), fragments(), bytes);
    Fragments::Answered(Ok(Answer {
        source,
        stale: false,
        body: Body::Encoded(Bytes::from(reply)),
    }))
}

/// Loads `[w.from, w.to]` of `series` into L1 in the background (once at a time per
/// series; not at all without an L1).
fn warm_l1(ctx: &Context, local: &Local, series: &SeriesKey, w: Window) {
    if !ctx.l1.enabled() {
        return;
    }
    {
        let mut warming = local.warming.lock().unwrap_or_else(|p| p.into_inner());
        if !warming.insert(series.clone()) {
            return;
        }
    }
    let (ctx, series, local_warming) = (ctx.clone(), series.clone(), local.warming.clone());
    tokio::spawn(async move {
        match ctx.store.read(&series, w.from, w.to).await {
            Ok(Some(read)) => {
                ctx.l1.put(
                    &series,
                    Snapshot::new(series.clone(), read.state, w.from, w.to, read.candles),
                );
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, series = %series, "L1 not loaded"),
        }
        local_warming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&series);
    });
}

/// Asks for a place in the exchange's queue of live jobs for job `id`, due before
/// `deadline`; with `take_turn`, the job's first turn too when it is free at once. `Err`
/// is the answer to give at once: the job's turn would come too late. When the budget
/// cannot be asked (Redis trouble), the job is queued all the same.
async fn admit(
    ctx: &Context,
    q: &CandleQuery,
    (id, deadline): (&str, Instant),
    take_turn: bool,
) -> Result<Option<AdmittedTurn>, WireError> {
    let ex = q.series.exchange;
    let remaining = deadline.saturating_duration_since(Instant::now());
    let times = (remaining, ctx.settings.admission_margin);
    match ctx.budget.admit(ex, id, times, take_turn).await {
        Ok(a) if a.admitted => Ok(a.turn_at.map(|at| AdmittedTurn::new(&ctx.budget, ex, at))),
        Ok(a) => {
            let after = a.wait.as_millis() as u64;
            metrics::counter!("candlepipe_admission_refused_total", "exchange" => ex.as_str())
                .increment(1);
            Err(WireError::rate_limited(
                format!(
                    "{ex}'s request budget is taken for about {after} ms, longer than this request waits ({} ms)",
                    remaining.as_millis()
                ),
                after,
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, exchange = %ex, "admission not asked; queueing the job anyway");
            Ok(None)
        }
    }
}

/// Publishes the miss's job for the producer's query `q` (window `w`), admitted first unless
/// it was ahead of the read, and waits for its `ready`.
async fn wait_for_fill(
    ctx: &Context,
    waiters: &Waiters,
    q: &CandleQuery,
    miss: Miss,
    w: Window,
    stale: Option<Arc<Snapshot>>,
    deadline: Instant,
) -> Result<Answer, WireError> {
    let Miss { job, admitted } = miss;
    let now = now_ms();
    // A window that pages through history (Kraken's trades) is bulk work: it runs on the
    // bulk lane, without a place in the live queue, and this producer waits for it as long
    // as its deadline allows.
    let history = pages_history(q.series.exchange, q.series.interval, job.from, now);
    let priority = if history {
        Priority::Bulk
    } else {
        Priority::Live
    };
    let lane = Lane::new(q.series.exchange, priority);
    let stale_or = |err: WireError| match &stale {
        Some(snap) => Ok(Answer::slice(Source::Redis, true, snap.clone(), w)),
        None => Err(err),
    };
    // A symbol the exchange does not have costs no call: no job, no place in the queue
    // (a job admitted ahead of the read was checked before it).
    let mut id = match &admitted {
        Some(a) => a.id.clone(),
        None => {
            ctx.markets.check(&q.series).await?;
            job.msg_id(now)
        }
    };
    let admission = match admitted {
        Some(a) if !history => a.admitted,
        Some(a) => {
            // The window began to page through history since: the job runs in bulk (a
            // turn taken with the admission goes back).
            if a.admitted.is_ok() {
                release_in_background(ctx, q.series.exchange, a.id);
            }
            Ok(None)
        }
        None if !history => admit(ctx, q, (&id, deadline), false).await,
        None => Ok(None),
    };
    let mut turn = match admission {
        Ok(turn) => turn,
        Err(refused) => return stale_or(refused),
    };
    let mut waiter = waiters.register(&q.series, w.from, w.to);
    // Publish the job. If JetStream already had it (or a neighbour in this process published
    // it), the data may be stored already; and if that job finished without satisfying us
    // (the data was lost since), publish it once more under a new id.
    for attempt in 0..2 {
        let at = turn.as_ref().map(AdmittedTurn::at);
        let created = if waiter.claim_publish(&id) {
            match publish_claimed(ctx, &waiter, &job, (lane, &id, at), deadline).await {
                Ok(created) => created,
                Err(err) => {
                    // The job may have reached JetStream all the same: its turn is not
                    // given back (at worst the budget is one request short for a moment).
                    if let Some(turn) = turn.take() {
                        turn.sent();
                    }
                    return stale_or(err);
                }
            }
        } else {
            false
        };
        // The turn goes with the job this process created; any other goes back.
        if let Some(turn) = turn.take() {
            if created {
                turn.sent();
            }
        }
        if created {
            break;
        }
        if let Ok(Some(read)) = ctx.store.read(&q.series, w.from, w.to).await {
            let snap = Arc::new(Snapshot::new(
                q.series.clone(),
                read.state,
                w.from,
                w.to,
                read.candles,
            ));
            if let Some(a) = after_fill(&snap, q, job.fresh_after) {
                return Ok(a);
            }
        }
        if attempt == 1 || !ctx.store.job_done(&q.series, &id).await.unwrap_or(false) {
            break; // still in flight: its ready event will come
        }
        id = format!("{id}.again.{}", now_ms());
        if !history {
            match admit(ctx, q, (&id, deadline), false).await {
                Ok(again) => turn = again,
                Err(refused) => return stale_or(refused),
            }
        }
    }
    let mut last_error: Option<WireError> = None;
    let ex = q.series.exchange;
    let mut pauses = ctx.budget.pauses();
    let mut hearing = true;
    loop {
        tokio::select! {
            heard = pauses.changed(), if hearing => {
                if heard.is_err() {
                    hearing = false;
                    continue;
                }
                let until = RedisBudget::pause_of(&pauses.borrow_and_update(), ex);
                let left = Duration::from_millis((until - now_ms()).max(0) as u64);
                // A pause (429/418) that outlasts this producer's wait: say so now rather
                // than let it time out.
                if !left.is_zero() && Instant::now() + left + ctx.settings.admission_margin > deadline {
                    return stale_or(WireError::rate_limited(
                        format!("{ex} asked to be left alone for {} ms, past this request's deadline", left.as_millis()),
                        left.as_millis() as u64,
                    ));
                }
            }
            changed = waiter.rx.changed() => {
                if changed.is_err() {
                    return stale_or(WireError::new(ErrorCode::Unavailable, "ingest is shutting down"));
                }
                let outcome = waiter.rx.borrow_and_update().clone();
                let Some(outcome) = outcome else { continue };
                if let Some(err) = &outcome.event.error {
                    if stale.is_some() || outcome.event.is_final {
                        return stale_or(err.clone());
                    }
                    last_error = Some(err.clone());
                    continue;
                }
                if let Some(snap) = &outcome.snapshot {
                    if let Some(a) = after_fill(snap, q, job.fresh_after) {
                        return Ok(a);
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                return stale_or(last_error.unwrap_or_else(|| WireError::new(
                    ErrorCode::Timeout,
                    "no fill before the request's deadline",
                )));
            }
        }
    }
}

/// Publishes a job whose id this process claimed, with the time of the turn its admission
/// took (if it took one); true if JetStream did not have it yet.
async fn publish_claimed(
    ctx: &Context,
    waiter: &Waiter,
    job: &FillJob,
    (lane, id, turn_at): (Lane, &str, Option<Millis>),
    deadline: Instant,
) -> Result<bool, WireError> {
    let publish = ctx.jobs.publish(job, lane, id, turn_at);
    let result = tokio::time::timeout_at(deadline.into(), publish).await;
    let err = match result {
        Ok(Ok(duplicate)) => return Ok(!duplicate),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "fill job not published");
            WireError::new(
                ErrorCode::Unavailable,
                format!("the job queue did not take the job: {e}"),
            )
        }
        Err(_) => WireError::new(ErrorCode::Timeout, "the job queue did not confirm in time"),
    };
    waiter.release_publish(id);
    Err(err)
}

fn after_fill(snap: &Arc<Snapshot>, q: &CandleQuery, fresh_after: Millis) -> Option<Answer> {
    match snap.state.verdict_after_fill(q, fresh_after, now_ms()) {
        Verdict::Fresh(w) if snap.holds(&w) => {
            Some(Answer::slice(Source::Exchange, false, snap.clone(), w))
        }
        _ => None,
    }
}

/// Reads each series once per announced write (heard on Redis as it lands, or by its
/// `ready` event on NATS, whichever comes first) and hands the result to its waiters;
/// failures come only on NATS. A write heard on Redis with its values is opened from them,
/// without a read.
async fn dispatch_ready(
    ctx: Context,
    waiters: Waiters,
    mut ready: async_nats::Subscriber,
    mut signals: tokio::sync::mpsc::Receiver<Bytes>,
) {
    let mut hearing = true;
    loop {
        let (payload, signal) = tokio::select! {
            msg = ready.next() => match msg {
                Some(msg) => (msg.payload, false),
                None => return,
            },
            heard = signals.recv(), if hearing => match heard {
                Some(payload) => (payload, true),
                None => {
                    hearing = false;
                    continue;
                }
            },
        };
        let heard = match signal {
            true => WriteSignal::parse(payload).map_err(|e| e.to_string()),
            // NATS's event is the JSON alone: it carries no values.
            false => serde_json::from_slice(&payload)
                .map(|event| WriteSignal {
                    event,
                    values: None,
                })
                .map_err(|e| e.to_string()),
        };
        let WriteSignal { event, values } = match heard {
            Ok(heard) => heard,
            Err(error) => {
                tracing::warn!(%error, signal, "undecodable ready event");
                continue;
            }
        };
        if signal && event.error.is_some() {
            continue;
        }
        let Some((from, to)) = waiters.claim_read(&event.series, event.version) else {
            continue;
        };
        // A fill that ended after an interval boundary answers with the newer window.
        let to = to.max(event.series.interval.open_of(now_ms()));
        let (ctx, waiters) = (ctx.clone(), waiters.clone());
        tokio::spawn(async move {
            let s = &event.series;
            let carried =
                values.and_then(|v| ctx.store.read_signalled(s, event.version, &v, from, to));
            let read = match carried {
                Some(read) => {
                    metrics::counter!("candlepipe_fill_writes_read_total", "from" => "signal")
                        .increment(1);
                    Ok(Some(read))
                }
                None if event.error.is_none() => {
                    metrics::counter!("candlepipe_fill_writes_read_total", "from" => "redis")
                        .increment(1);
                    ctx.store.read(s, from, to).await
                }
                None => Ok(None),
            };
            let snapshot = match read {
                Ok(Some(read)) => Some(ctx.l1.put(
                    s,
                    Snapshot::new(s.clone(), read.state, from, to, read.candles),
                )),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, series = %s, "redis read after fill failed");
                    None
                }
            };
            let series = event.series.clone();
            waiters.deliver(&series, Outcome { event, snapshot });
        });
    }
}

#[cfg(test)]
mod tests {
    use candlepipe_core::{Exchange, Interval, Symbol};

    use super::*;

    #[test]
    fn history_unavailable_says_its_times_as_people_read_them() {
        let series = SeriesKey::new(
            Exchange::Kraken,
            Symbol::parse("BTC/USD").unwrap(),
            Interval::M1,
        );
        let state = SeriesState {
            history_from: 1_796_083_200_000,
            ..SeriesState::default()
        };
        let w = Window {
            from: 1_796_000_000_000,
            to: 1_796_000_060_000,
            includes_open: false,
        };
        let e = history_check(&series, &state, &w).unwrap_err();
        assert_eq!(e.code, ErrorCode::HistoryUnavailable);
        assert_eq!(
            e.message,
            "kraken serves BTC/USD 1m candles only from open time 2026-12-01T00:00:00Z \
             (1796083200000 ms); the window ends at 2026-11-30T00:54:20Z (1796000060000 ms)"
        );
    }

    /// The size of the future `make` returns; `make` is never called.
    fn future_size<F: std::future::Future>(_: &impl Fn() -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every request's future is copied as its task is spawned and again as it finishes:
    /// it holds references into the shared state, not a copy of the context (936 bytes),
    /// and a trace around it does not hold it twice. At 11 KB these copies were 13% of the
    /// ingest's CPU on Redis hits (BENCHMARKS.md §12).
    #[test]
    #[allow(unreachable_code, clippy::diverging_sub_expression)]
    fn a_request_task_stays_small() {
        let untraced = future_size(&|| handle(todo!(), todo!(), todo!(), todo!()));
        let traced = future_size(&|| {
            traces::within(todo!(), todo!(), handle(todo!(), todo!(), todo!(), todo!()))
        });
        assert!(untraced <= 4096, "a request's future is {untraced} bytes");
        assert!(
            traced <= untraced + 256,
            "a traced request's future is {traced} bytes, the request's {untraced}"
        );
    }
}
