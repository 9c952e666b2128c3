//! The fill role: one durable pull consumer per lane (each exchange's live and bulk jobs),
//! each with its own concurrency, so one exchange's backlog or pause holds no capacity
//! another could use. For each job it fetches only what the store lacks (a live job that
//! carries the turn its admission took sends its first request beside its lock and stored
//! state, [`adopt_admitted_turn`]), writes Redis,
//! announces `ready`, acks, and a few milliseconds later ([`RUNS_AFTER`]) writes the runs
//! of reply fragments of the chunks it wrote (what later Redis hits serve; the waiting
//! ingests had the chunks from the write's signal). Failures go through
//! [`crate::jobs::disposition::decide`].
//!
//! Owns: the exchanges' REST calls for jobs (within the cluster budget) and the loading of
//! the market lists.
//! - NATS: pulls `<prefix>.jobs.fill.<exchange>[.bulk]` (consumers `fill-<exchange>`,
//!   `fill-<exchange>-bulk`); publishes `<prefix>.candles.ready.<series>`, dead letters on
//!   `<prefix>.dlq.>` and bulk copies of jobs nobody waits for; hears JetStream's
//!   max-deliveries advisories.
//! - Redis: the series' lock, fence, candles and state (`<prefix>s:{…}`), the job's done
//!   mark and its write's signal on `<prefix>ready`, `<prefix>rl:{<exchange>}…` (spends
//!   the budget, leaves the waiting set), `<prefix>mk:<exchange>` (market lists),
//!   `<prefix>jobfail:…`.

use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use candlepipe_core::{
    now_ms, Fetched, FillJob, Lane, Millis, Priority, ReadyEvent, SeriesKey, SeriesState, WireError,
};
use candlepipe_exchange::budget::Demand;
use candlepipe_exchange::markets::Market;
use candlepipe_exchange::{page_candles, ExchangeClient, FetchError};
use candlepipe_store::{JobWrite, WriteBasis, Written};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::cluster::markets::Markets;
use crate::context::Context;
use crate::error::BoxError;
use crate::jobs::disposition::{decide, wire_code, Disposition, JobError};
use crate::jobs::last_delivery;
use crate::jobs::pull::pull_jobs;
use crate::jobs::queue::{finish, keeping_alive, with_progress, TURN_AT_HEADER};
use crate::jobs::streams::{
    ensure_consumer, ensure_streams, lane_consumer_config, remove_legacy_fill_consumer,
};
use crate::requests::traces;

/// How long a fill worker waits at start for the market lists it must load.
const MARKETS_AT_START: Duration = Duration::from_secs(10);

/// How long after a job's ack the runs of the chunks it wrote are written: meanwhile the
/// waiting ingests answer from the write's signal, and the runs' encoding and their
/// script (~0.45 ms inside Redis) do not compete with them for the CPUs and Redis
/// (BENCHMARKS.md item 23). A Redis hit in between reads the chunks.
const RUNS_AFTER: Duration = Duration::from_millis(3);

pub async fn run(
    ctx: Context,
    exchange: ExchangeClient,
    shutdown: CancellationToken,
) -> Result<(), BoxError> {
    let set = &ctx.settings;
    let stream = ensure_streams(&ctx.js, &set.subjects, &set.streams).await?;
    remove_legacy_fill_consumer(&stream).await?;
    let mut lanes = Vec::new();
    // Runs written after their jobs' acks; waited for before the worker exits.
    let later = TaskTracker::new();
    for lane in Lane::all() {
        let consumer = ensure_consumer(
            &stream,
            lane_consumer_config(&set.subjects, &set.streams, lane),
        )
        .await?;
        let concurrency = match lane.priority {
            Priority::Live => set.fill_concurrency,
            Priority::Bulk => set.bulk_concurrency,
        };
        let (ctx, exchange, shutdown) = (ctx.clone(), exchange.clone(), shutdown.clone());
        let later = later.clone();
        lanes.push(async move {
            pull_jobs(&consumer, concurrency, shutdown, |msg| {
                let (ctx, exchange, later) = (ctx.clone(), exchange.clone(), later.clone());
                async move {
                    let trace = traces::from_headers_or_start(msg.headers.as_ref());
                    let span = tracing::info_span!("fill", trace_id = tracing::field::Empty);
                    let job = process(&ctx, &exchange, lane, msg, &later);
                    traces::within(trace, span, job).await
                }
            })
            .await
        });
    }
    let dlq_gauge = tokio::spawn(watch_dlq_depth(ctx.clone()));
    let unanswered = tokio::spawn(last_delivery::watch(
        ctx.nats.clone(),
        ctx.jobs.clone(),
        stream.clone(),
        shutdown.clone(),
    ));
    ctx.markets.prepare(&exchange, MARKETS_AT_START).await;
    let lists = tokio::spawn(
        ctx.markets
            .clone()
            .keep_fresh(exchange.clone(), shutdown.clone()),
    );
    for ex in candlepipe_core::Exchange::ALL {
        metrics::gauge!("candlepipe_exchange_budget_rps", "exchange" => ex.as_str())
            .set(f64::from(exchange.settings().endpoint(ex).rps));
    }
    tracing::info!(
        live_concurrency = set.fill_concurrency,
        bulk_concurrency = set.bulk_concurrency,
        "fill ready"
    );
    let pulled = futures::future::try_join_all(lanes).await;
    dlq_gauge.abort();
    lists.abort();
    unanswered.abort();
    later.close();
    later.wait().await;
    pulled?;
    tracing::info!("fill drained");
    Ok(())
}

/// Keeps the `candlepipe_dlq_messages` gauge at the dead-letter stream's depth.
async fn watch_dlq_depth(ctx: Context) {
    loop {
        match ctx.js.get_stream(ctx.settings.subjects.dlq_stream()).await {
            Ok(stream) => match stream.get_info().await {
                Ok(info) => {
                    metrics::gauge!("candlepipe_dlq_messages").set(info.state.messages as f64)
                }
                Err(e) => tracing::debug!(error = %e, "DLQ info unavailable"),
            },
            Err(e) => tracing::debug!(error = %e, "DLQ stream unavailable"),
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// The job's `Nats-Msg-Id`: its name in the exchange's set of waiting live jobs.
fn job_id(msg: &Message) -> String {
    msg.headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

/// When the ingest's admission took the job's first turn ([`TURN_AT_HEADER`]): only on the
/// job's first delivery (a redelivered job's first delivery had it).
fn turn_at(msg: &Message, delivered: u64) -> Option<Millis> {
    if delivered != 1 {
        return None;
    }
    let at = msg.headers.as_ref()?.get(TURN_AT_HEADER)?;
    at.as_str().parse().ok()
}

async fn process(
    ctx: &Context,
    exchange: &ExchangeClient,
    lane: Lane,
    msg: Message,
    later: &TaskTracker,
) {
    let delivered = msg.info().map(|i| i.delivered as u64).unwrap_or(1);
    let id = job_id(&msg);
    let demand = match lane.priority {
        Priority::Live => Demand::Live { job: &id },
        Priority::Bulk => Demand::Bulk,
    };
    let turn = turn_at(&msg, delivered);
    let (job, err) = match serde_json::from_slice::<FillJob>(&msg.payload) {
        Ok(job) => match with_progress(
            &msg,
            ctx.settings.streams.ack_wait,
            fill(ctx, exchange, &job, (&id, turn), demand),
        )
        .await
        {
            // The job is marked finished already (by its write, or beside the write it did
            // not need): announce first, then leave the waiting set and ack; then, after
            // the waiting ingests have answered, store the reply fragments of what it
            // wrote, which only later Redis hits read.
            Ok(mut written) => {
                let runs = written.runs.take();
                announce(ctx, &job, Ok(written), false).await;
                tokio::join!(
                    leave_waiting_set(ctx, lane, &id),
                    finish(&msg, AckKind::Ack)
                );
                if let Some(runs) = runs {
                    let store = ctx.store.clone();
                    later.spawn(
                        async move {
                            tokio::time::sleep(RUNS_AFTER).await;
                            store.write_runs(runs).await;
                        }
                        .in_current_span(),
                    );
                }
                return;
            }
            Err(e) => (Some(job), e),
        },
        Err(e) => (None, JobError::BadJob(e.to_string())),
    };
    let disposition = decide(&err, delivered, &ctx.settings.retry);
    let wire = WireError::new(wire_code(&err), err.to_string());
    match disposition {
        Disposition::Demote => tracing::debug!(%lane, job = %id, "nobody waits for the job"),
        _ => tracing::warn!(
            series = job.as_ref().map(|j| j.series.to_string()).unwrap_or_default(),
            %lane, code = %wire.code, error = %err, delivered, ?disposition, "fill failed"
        ),
    }
    if let Some(job) = &job {
        match disposition {
            // Producers still wait: a retry follows, they learn why meanwhile.
            Disposition::Nak(_) => announce(ctx, job, Err(wire.clone()), false).await,
            // It goes on in the bulk lane; nobody waits for an answer.
            Disposition::Demote => {}
            Disposition::Ack | Disposition::Term | Disposition::DeadLetter => {
                finished(ctx, &job.series, lane, &id).await;
                announce(ctx, job, Err(wire.clone()), true).await;
            }
        }
    }
    ctx.jobs
        .settle_failure(&msg, disposition, &wire, delivered)
        .await;
}

/// How long a live job waits for a bulk job's lock on its series: the bulk job took its
/// turn before locking, so it normally holds the lock only for its exchange call.
const BULK_LOCK_PATIENCE: Duration = Duration::from_secs(2);

/// Fills the job's series ([`lock_and_fill`]); a turn it took ahead of its first request
/// (or took over from its admission, `turn_at`) and did not use (its series was fresh, an
/// error came first) goes back to the budget.
async fn fill(
    ctx: &Context,
    exchange: &ExchangeClient,
    job: &FillJob,
    (id, turn_at): (&str, Option<Millis>),
    demand: Demand<'_>,
) -> Result<Written, JobError> {
    let result = lock_and_fill(ctx, exchange, job, (id, turn_at), demand).await;
    exchange.give_back_turn(job.series.exchange, demand).await;
    result
}

/// The first request of a live job whose admission took its turn, sent beside the job's
/// lock and stored state: the job's whole window, as a series with nothing stored would
/// fetch it (what the ingest's read found), asked at `at`, in a task of its own (so that
/// the job renews its lock while it waits for the answer).
struct EarlyRequest {
    range: (Millis, Millis),
    at: Millis,
    answer: tokio::task::JoinHandle<Result<Fetched, JobError>>,
}

/// Takes over the turn the job's admission took at `turn_at` (cluster clock) if the job
/// may fetch now and no pause was heard since; whether it did.
fn adopt_admitted_turn(
    ctx: &Context,
    exchange: &ExchangeClient,
    job: &FillJob,
    turn_at: Option<Millis>,
    demand: Demand<'_>,
) -> bool {
    let (Some(at), Demand::Live { .. }) = (turn_at, demand) else {
        return false;
    };
    let now = now_ms();
    let adopted = !ctx.budget.paused(job.series.exchange)
        && !job.must_wait(now)
        && exchange.adopt_turn(demand, Duration::from_millis((now - at).max(0) as u64));
    let outcome = if adopted { "adopted" } else { "lapsed" };
    metrics::counter!("candlepipe_fill_admitted_turns_total", "outcome" => outcome).increment(1);
    adopted
}

/// Sends live job `id`'s first request now: its window as one range, as [`fill_locked`]
/// fetches a range.
fn send_early(ctx: &Context, exchange: &ExchangeClient, job: &FillJob, id: &str) -> EarlyRequest {
    let at = now_ms();
    let range = (job.from, job_end(job, at));
    let markets = ctx.markets.clone();
    let (exchange, job, id) = (exchange.clone(), job.clone(), id.to_string());
    let answer = tokio::spawn(
        async move {
            let demand = Demand::Live { job: &id };
            let market = markets.market(&job.series, &exchange).await?;
            fetch_range(&markets, &exchange, &job, &market, range, at, demand).await
        }
        .in_current_span(),
    );
    EarlyRequest { range, at, answer }
}

/// Runs [`fill_locked`] holding the series' cluster-wide lock, so that jobs for one series
/// run one after another and each sees what the previous one wrote. The holder renews the
/// lock while it works; a job finding it held waits for the holder's `ready` event (or the
/// lock lapsing: its holder is gone), except behind a bulk job past [`BULK_LOCK_PATIENCE`],
/// when it goes on without the lock (writes stay correct without it). A bulk job waits for
/// its exchange's turn before it locks, so that it never holds the lock while live work
/// passes it.
///
/// A live job whose admission took its turn ([`adopt_admitted_turn`]) sends its first
/// request at once, beside the lock and the stored state ([`send_early`]); what the stored
/// state then says the job needs is taken from that answer where it covers it. A series
/// found fresh, or locked by another job (whose write this one then waits for and reads),
/// makes it one request spent for nothing.
async fn lock_and_fill(
    ctx: &Context,
    exchange: &ExchangeClient,
    job: &FillJob,
    (id, turn_at): (&str, Option<Millis>),
    demand: Demand<'_>,
) -> Result<Written, JobError> {
    let priority = demand.priority();
    if priority == Priority::Bulk {
        exchange.await_turn(job.series.exchange, demand).await?;
    }
    let token = format!(
        "{}:{}-{}",
        priority.as_str(),
        std::process::id(),
        rand::random::<u64>()
    );
    let ttl = ctx.settings.streams.ack_wait;
    // The first try reads the stored state alongside, to save a round trip on the usual,
    // uncontended path. The lock is asked first on the same connection, so the read sees
    // what the previous holder wrote; were it ever older, the versioned write would still
    // merge correctly. A live job that need not wait for its fetch time asks for its
    // exchange's turn in the same round trip (if it is free at once); one that must wait
    // for the lock gives it back first.
    let ex = job.series.exchange;
    let adopted = adopt_admitted_turn(ctx, exchange, job, turn_at, demand);
    let mut early = adopted.then(|| send_early(ctx, exchange, job, id));
    let ahead = priority == Priority::Live && !adopted && !job.must_wait(now_ms());
    let (lock, first_read, _) = tokio::join!(
        ctx.store.try_lock(&job.series, &token, ttl),
        stored_state(ctx, job),
        async { ahead && exchange.take_turn_ahead(ex, demand).await }
    );
    let mut locked = lock?.is_ok();
    let mut state = locked.then_some(first_read).transpose()?;
    if !locked {
        exchange.give_back_turn(ex, demand).await;
        if early.take().is_some() {
            count_early("unneeded");
        }
        locked = wait_for_lock(ctx, job, &token, demand).await?;
    }
    tracing::debug!(series = %job.series, from = job.from, to = job.to, open = job.includes_open, "filling");
    // A job for the forming candle must fetch at or after its `fresh_after` (at most one
    // dedup bucket from now) so that one fetch satisfies every request that shares it.
    let wait = job.fresh_after - now_ms();
    if job.includes_open && wait > 0 {
        tokio::time::sleep(Duration::from_millis(
            wait.min(candlepipe_core::job::DEDUP_BUCKET_MS) as u64,
        ))
        .await;
    }
    let state = match state.take() {
        Some(s) => s,
        None => stored_state(ctx, job).await?,
    };
    let work = fill_locked(ctx, exchange, job, id, (state, early), demand);
    let result = if locked {
        holding_lock(ctx, job, &token, work).await
    } else {
        work.await
    };
    // Released in the background: the waiting producers need the ready event, not this.
    if locked {
        let (store, series) = (ctx.store.clone(), job.series.clone());
        tokio::spawn(async move {
            if let Err(e) = store.unlock(&series, &token).await {
                tracing::warn!(error = %e, series = %series, "fill lock not released; it expires by itself");
            }
        });
    }
    result
}

/// Waits for the series' lock; whether it was taken (false: going on without it). A live
/// job behind a bulk holder steps out of its exchange's waiting set meanwhile: the bulk job
/// yields its requests to waiting live jobs, and this one waits for it.
async fn wait_for_lock(
    ctx: &Context,
    job: &FillJob,
    token: &str,
    demand: Demand<'_>,
) -> Result<bool, JobError> {
    let mut aside: Option<(&str, f64)> = None;
    let locked = wait_for_lock_asides(ctx, job, token, demand, &mut aside).await;
    if let Some((id, score)) = aside {
        ctx.budget.step_back(job.series.exchange, id, score).await;
    }
    locked
}

async fn wait_for_lock_asides<'a>(
    ctx: &Context,
    job: &FillJob,
    token: &str,
    demand: Demand<'a>,
    aside: &mut Option<(&'a str, f64)>,
) -> Result<bool, JobError> {
    let ttl = ctx.settings.streams.ack_wait;
    let started = tokio::time::Instant::now();
    // The holder's `ready` says it is done; hear it before asking for the lock again.
    let mut done = match ctx
        .nats
        .subscribe(ctx.settings.subjects.ready(&job.series))
        .await
    {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(error = %e, "cannot hear the lock holder's ready; checking the lock instead");
            None
        }
    };
    loop {
        match ctx.store.try_lock(&job.series, token, ttl).await? {
            Ok(()) => return Ok(true),
            Err(holder)
                if holder.starts_with(Priority::Bulk.as_str())
                    && started.elapsed() >= BULK_LOCK_PATIENCE =>
            {
                tracing::warn!(series = %job.series, holder, "a bulk job holds the series; filling without its lock");
                return Ok(false);
            }
            Err(holder) if holder.starts_with(Priority::Bulk.as_str()) && aside.is_none() => {
                if let Demand::Live { job: id } = demand {
                    if let Some(score) = ctx.budget.step_aside(job.series.exchange, id).await {
                        *aside = Some((id, score));
                    }
                }
            }
            Err(_) => {}
        }
        // A holder that died stops renewing: its lock lapses within `ttl`.
        let recheck = tokio::time::sleep(ttl / 4);
        match done.as_mut() {
            Some(events) => {
                tokio::select! {
                    _ = events.next() => {}
                    _ = recheck => {}
                }
            }
            None => recheck.await,
        }
    }
}

/// Runs `work` while renewing the series' lock every third of its time to live.
async fn holding_lock<T>(
    ctx: &Context,
    job: &FillJob,
    token: &str,
    work: impl std::future::Future<Output = T>,
) -> T {
    let ttl = ctx.settings.streams.ack_wait;
    let renew = || async {
        match ctx.store.renew_lock(&job.series, token, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(series = %job.series, "fill lock lost; finishing without it")
            }
            Err(e) => tracing::debug!(error = %e, "fill lock not renewed"),
        }
    };
    keeping_alive(ttl, renew, work).await
}

/// The newest open time a job covers at `now`.
fn job_end(job: &FillJob, now: Millis) -> Millis {
    if job.includes_open {
        job.series.interval.open_of(now)
    } else {
        job.to
    }
}

/// What the store holds of the job's series (`None`: nothing), and what the job's write
/// merges into unless another write comes first.
async fn stored_state(
    ctx: &Context,
    job: &FillJob,
) -> Result<(Option<SeriesState>, WriteBasis), JobError> {
    let to = job_end(job, now_ms());
    Ok(match ctx.store.read(&job.series, job.from, to).await? {
        Some(read) => (Some(read.state), read.basis),
        None => (None, WriteBasis::default()),
    })
}

/// Fetches what the store lacks of the job's window (taking what the first request sent
/// beside the lock brought, where it covers a range), and writes it; marks job `id`
/// finished either way.
async fn fill_locked(
    ctx: &Context,
    exchange: &ExchangeClient,
    job: &FillJob,
    id: &str,
    ((stored, basis), mut early): ((Option<SeriesState>, WriteBasis), Option<EarlyRequest>),
    demand: Demand<'_>,
) -> Result<Written, JobError> {
    let s = &job.series;
    let iv = s.interval;
    let step = iv.millis();
    // With a first request sent already, the job is judged as of when it went out.
    let now = early.as_ref().map_or_else(now_ms, |e| e.at);
    let to = job_end(job, now);
    let state = stored.unwrap_or_default().for_job(job);
    tracing::debug!(series = %s, version = state.version, coverage = ?state.coverage.ranges(), "stored state");

    if state.fulfils(job, now) {
        if early.is_some() {
            count_early("unneeded");
        }
        tracing::debug!(series = %s, "already fresh; no exchange request");
        mark_done(ctx, s, id).await;
        return Ok(Written {
            version: state.version,
            last_t: state.coverage.last(),
            coverage: state.coverage,
            runs: None,
        });
    }

    let market = ctx.markets.market(s, exchange).await?;
    let mut fetched = Fetched::default();
    // The range the first request brought, once taken.
    let mut brought: Option<(Millis, Millis)> = None;
    // What is older than the exchange's history cannot be fetched any more.
    let from = job.from.max(state.history_from);
    for (a, b) in state
        .coverage
        .fetches(from, to, step, page_candles(s.exchange, iv))
    {
        let within = |(x, y): (Millis, Millis)| x <= a && b <= y;
        if brought.is_some_and(within) {
            continue;
        }
        let got = match early.take() {
            Some(e) if within(e.range) => match e.answer.await {
                Ok(answer) => {
                    count_early("used");
                    brought = Some(e.range);
                    answer?
                }
                Err(e) => {
                    tracing::warn!(error = %e, series = %s, "the job's first request ended without an answer; asking again");
                    fetch_range(&ctx.markets, exchange, job, &market, (a, b), now, demand).await?
                }
            },
            other => {
                early = other;
                fetch_range(&ctx.markets, exchange, job, &market, (a, b), now, demand).await?
            }
        };
        fetched.extend(got);
    }
    if early.is_some() {
        count_early("unneeded");
    }
    fetched.tail_fetched_at = job.includes_open.then_some(now);
    let marking = JobWrite {
        id,
        done_for: ctx.settings.streams.dedup_window,
        basis: Some(&basis),
        signal: true,
    };
    Ok(ctx.store.write_for_job(s, &fetched, now, marking).await?)
}

/// Fetches open times `[a, b]` of the job's series (all its pages) at `now`; a symbol the
/// exchange says it does not have is remembered as unknown.
async fn fetch_range(
    markets: &Markets,
    exchange: &ExchangeClient,
    job: &FillJob,
    market: &Market,
    (a, b): (Millis, Millis),
    now: Millis,
    demand: Demand<'_>,
) -> Result<Fetched, JobError> {
    let s = &job.series;
    match exchange.fetch(s, market, a, b, now, demand).await {
        Ok(got) => {
            tracing::debug!(series = %s, from = a, to = b, n = got.candles.len(), unconfirmed = got.unconfirmed.len(), "fetched");
            Ok(got)
        }
        Err(e @ FetchError::UnknownSymbol(_)) => {
            markets.remember_unknown(s).await;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Counts what became of a first request sent beside the lock: `used`, or `unneeded` (the
/// stored state asked for nothing it covers).
fn count_early(outcome: &'static str) {
    metrics::counter!("candlepipe_fill_early_requests_total", "outcome" => outcome).increment(1);
}

/// Records that the job finished, before announcing it: an ingest whose publish of the
/// same job was deduplicated learns from this that no `ready` event is still to come. A
/// job that wrote was marked by its write.
async fn mark_done(ctx: &Context, s: &SeriesKey, id: &str) {
    if id.is_empty() {
        return;
    }
    let ttl = ctx.settings.streams.dedup_window;
    if let Err(e) = ctx.store.mark_job_done(s, id, ttl).await {
        tracing::warn!(error = %e, "could not mark job done");
    }
}

/// A live job that finished leaves its exchange's waiting set.
async fn leave_waiting_set(ctx: &Context, lane: Lane, id: &str) {
    if lane.priority == Priority::Live && !id.is_empty() {
        ctx.budget.release(lane.exchange, id).await;
    }
}

/// A job that failed for good: marked finished and out of the waiting set, before its
/// failure is announced.
async fn finished(ctx: &Context, s: &SeriesKey, lane: Lane, id: &str) {
    tokio::join!(mark_done(ctx, s, id), leave_waiting_set(ctx, lane, id));
}

async fn announce(
    ctx: &Context,
    job: &FillJob,
    result: Result<Written, WireError>,
    is_final: bool,
) {
    let event = match result {
        Ok(w) => ReadyEvent {
            series: job.series.clone(),
            last_t: w.last_t,
            version: w.version,
            error: None,
            is_final: false,
        },
        Err(e) => ReadyEvent {
            series: job.series.clone(),
            last_t: None,
            version: 0,
            error: Some(e),
            is_final,
        },
    };
    let subject = ctx.settings.subjects.ready(&job.series);
    let payload = Bytes::from(event.to_json());
    let mut headers = async_nats::HeaderMap::new();
    traces::inject(&mut headers);
    if let Err(e) = ctx
        .nats
        .publish_with_headers(subject, headers, payload)
        .await
    {
        tracing::warn!(error = %e, "ready event not published");
    }
}
