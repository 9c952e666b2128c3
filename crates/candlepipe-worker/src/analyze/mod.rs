//! The analyze role: `candlepipe.analysis.run` (request-reply, queue group `analyze`) and
//! `candlepipe.jobs.analyze` (durable pull consumer `analyze`; the result is stored in Redis
//! and published on the job's `Candlepipe-Reply` subject). Candles come through
//! candlepipe's own `candles.get` — the cache path — never straight from an exchange.
//! Symbols are analysed concurrently; one symbol's error never fails the others.
//!
//! Owns the LLM path: [`commentary`] (the prompt, the cached commentary, the call),
//! [`llm_route`] (primary or canary, the ramp) and [`llm_spend`] (the daily budget,
//! reservations and RPM/TPM limits).
//! - NATS: answers `<prefix>.analysis.run` and `<prefix>.analysis.result` on inboxes only;
//!   pulls `<prefix>.jobs.analyze`; requests `<prefix>.candles.get`; hears and publishes
//!   `<prefix>.control.llm.route`; dead letters on `<prefix>.dlq.>`.
//! - Redis: `<prefix>analysis:<job id>` (results), `<prefix>llm:c:{<series>}:<candle>` (cached commentary),
//!   `<prefix>llm:spend:{<date>}…`, `<prefix>llm:usage`, `<prefix>llm:route`,
//!   `<prefix>llm:win:<n>`. Never calls an exchange.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{AckKind, Message as JobMessage};
use async_nats::{HeaderMap, Message};
use bytes::Bytes;
use candlepipe_core::analysis::{
    AnalysisQuery, ResultRequest, SymbolAnalysis, JOB_ID_HEADER, REPLY_HEADER,
};
use candlepipe_core::encoding::CONTENT_TYPE_HEADER;
use candlepipe_core::request::{AnyReply, ErrorReply};
use candlepipe_core::subjects::ANALYZE_GROUP;
use candlepipe_core::{
    AnalysisReply, AnalysisRequest, Candle, CandlesRequest, Encoding, ErrorCode, SeriesKey, Symbol,
    WireError,
};
use candlepipe_indicators::{summarize, Bar};
use futures::StreamExt;
use rust_decimal::prelude::ToPrimitive;
use tokio_util::sync::CancellationToken;

pub mod commentary;
pub mod llm_route;
pub mod llm_spend;

pub use self::commentary::LlmSettings;
use self::commentary::{About, Commenter};
use crate::context::Context;
use crate::error::BoxError;
use crate::jobs::disposition::{decide, wire_code, JobError};
use crate::jobs::last_delivery;
use crate::jobs::pull::pull_jobs;
use crate::jobs::queue::{finish, with_progress};
use crate::jobs::streams::{analyze_consumer_config, ensure_consumer, ensure_streams};
use crate::requests::answer::{answer_requests, encoding_of, reply_headers};
use crate::requests::traces;

/// How long an async result stays in Redis.
pub const RESULT_TTL: Duration = Duration::from_secs(24 * 3600);

pub use candlepipe_core::analysis::Answer;

/// The Redis record name of an async job's result.
pub fn result_name(job_id: &str) -> String {
    format!("analysis:{job_id}")
}

pub async fn run(
    ctx: Context,
    llm: LlmSettings,
    shutdown: CancellationToken,
) -> Result<(), BoxError> {
    let commenter =
        Arc::new(Commenter::start(&ctx, llm, ctx.records.clone(), shutdown.clone()).await?);
    let set = &ctx.settings;
    let stream = ensure_streams(&ctx.js, &set.subjects, &set.streams).await?;
    let consumer = ensure_consumer(
        &stream,
        analyze_consumer_config(&set.subjects, &set.streams),
    )
    .await?;
    let requests = ctx
        .nats
        .queue_subscribe(set.subjects.analysis_run(), ANALYZE_GROUP.to_string())
        .await?;
    let result_requests = ctx
        .nats
        .queue_subscribe(set.subjects.analysis_result(), ANALYZE_GROUP.to_string())
        .await?;
    let unanswered = tokio::spawn(last_delivery::watch(
        ctx.nats.clone(),
        ctx.jobs.clone(),
        stream.clone(),
        shutdown.clone(),
    ));
    // Ready means the server routes requests here: the subscription is flushed.
    ctx.nats.flush().await?;
    tracing::info!(subject = %set.subjects.analysis_run(), jobs = %set.subjects.analyze_job(), "analyze ready");
    let answering = answer_requests(requests, shutdown.clone(), |msg| {
        let (ctx, commenter) = (ctx.clone(), commenter.clone());
        async move {
            let trace = traces::from_headers_or_start(msg.headers.as_ref());
            let span = tracing::info_span!("analysis", trace_id = tracing::field::Empty);
            traces::within(trace, span, handle_request(&ctx, &commenter, msg)).await
        }
    });
    let answering_results = answer_requests(result_requests, shutdown.clone(), |msg| {
        let ctx = ctx.clone();
        async move { handle_result_request(&ctx, msg).await }
    });
    let answering = async { tokio::join!(answering, answering_results) };
    let pulling = pull_jobs(
        &consumer,
        set.analysis_concurrency,
        shutdown.clone(),
        |msg| {
            let (ctx, commenter) = (ctx.clone(), commenter.clone());
            async move {
                let trace = traces::from_headers_or_start(msg.headers.as_ref());
                let span = tracing::info_span!("analysis", trace_id = tracing::field::Empty);
                traces::within(trace, span, handle_job(&ctx, &commenter, msg)).await
            }
        },
    );
    let (((), ()), pulled) = tokio::join!(answering, pulling);
    unanswered.abort();
    pulled?;
    tracing::info!("analyze drained");
    Ok(())
}

async fn handle_request(ctx: &Context, commenter: &Commenter, msg: Message) {
    let Some(reply_to) = msg.reply.clone() else {
        return;
    };
    if !crate::requests::replies::permitted(&ctx.settings.replies, &reply_to, &msg.subject) {
        return;
    }
    let enc = encoding_of(msg.headers.as_ref());
    let answer = answer(ctx, commenter, &msg.payload, enc, "run").await;
    let body = Bytes::from(encode(&answer, enc));
    if let Err(e) = ctx
        .nats
        .publish_with_headers(reply_to, reply_headers(enc), body)
        .await
    {
        tracing::warn!(error = %e, "could not publish analysis reply");
    }
}

/// How often a result request looks for an answer that is not stored yet.
const RESULT_POLL: Duration = Duration::from_millis(100);

/// Answers `candlepipe.analysis.result`: the stored answer of an async job, once there.
async fn handle_result_request(ctx: &Context, msg: Message) {
    let Some(reply_to) = msg.reply.clone() else {
        return;
    };
    if !crate::requests::replies::permitted(&ctx.settings.replies, &reply_to, &msg.subject) {
        return;
    }
    let enc = encoding_of(msg.headers.as_ref());
    let answer = match stored_result(ctx, &msg.payload, enc).await {
        Ok(answer) => answer,
        Err(e) => Answer::Failed(ErrorReply::new(e)),
    };
    let body = Bytes::from(encode(&answer, enc));
    if let Err(e) = ctx
        .nats
        .publish_with_headers(reply_to, reply_headers(enc), body)
        .await
    {
        tracing::warn!(error = %e, "could not publish an analysis result");
    }
}

async fn stored_result(ctx: &Context, payload: &[u8], enc: Encoding) -> Result<Answer, WireError> {
    let req: ResultRequest = enc.decode_request(payload)?;
    if req.job_id.is_empty() || req.job_id.len() > 256 {
        return Err(WireError::new(
            ErrorCode::BadRequest,
            "job_id must have 1 to 256 bytes",
        ));
    }
    let set = &ctx.settings;
    let wait = req
        .timeout_ms
        .map_or(set.analysis_timeout, |ms| {
            Duration::from_millis(ms.max(0) as u64)
        })
        .min(set.max_timeout);
    let deadline = Instant::now() + wait;
    loop {
        match ctx.records.get::<Answer>(&result_name(&req.job_id)).await {
            Ok(Some(answer)) => return Ok(answer),
            Ok(None) => {}
            Err(e) => {
                return Err(WireError::new(
                    ErrorCode::Unavailable,
                    format!("cannot read job {:?}'s result: {e}", req.job_id),
                ))
            }
        }
        if Instant::now() + RESULT_POLL > deadline {
            return Err(WireError::new(
                ErrorCode::Timeout,
                format!(
                    "no result for job {:?} within {} ms (unknown, or still running)",
                    req.job_id,
                    wait.as_millis()
                ),
            ));
        }
        tokio::time::sleep(RESULT_POLL).await;
    }
}

fn encode(answer: &Answer, enc: Encoding) -> Vec<u8> {
    match answer {
        Answer::Done(r) => enc.encode(r),
        Answer::Failed(e) => enc.encode(e),
    }
}

async fn answer(
    ctx: &Context,
    commenter: &Commenter,
    payload: &[u8],
    enc: Encoding,
    form: &'static str,
) -> Answer {
    let started = Instant::now();
    let result = decode(payload, enc);
    let answer = match result {
        Ok(q) => {
            let set = &ctx.settings;
            let timeout = q
                .timeout_ms
                .map_or(set.analysis_timeout, |ms| Duration::from_millis(ms as u64))
                .min(set.max_timeout);
            Answer::Done(analyse(ctx, commenter, q, started + timeout).await)
        }
        Err(e) => Answer::Failed(ErrorReply::new(e)),
    };
    let outcome = match &answer {
        Answer::Done(_) => "ok",
        Answer::Failed(e) => e.error.code.as_str(),
    };
    metrics::counter!("candlepipe_analysis_requests_total", "form" => form, "code" => outcome)
        .increment(1);
    metrics::histogram!("candlepipe_analysis_duration_seconds", "form" => form)
        .record(started.elapsed().as_secs_f64());
    answer
}

fn decode(payload: &[u8], enc: Encoding) -> Result<AnalysisQuery, WireError> {
    enc.decode_request::<AnalysisRequest>(payload)?.validate()
}

async fn handle_job(ctx: &Context, commenter: &Commenter, msg: JobMessage) {
    let info = msg
        .info()
        .ok()
        .map(|i| (i.delivered as u64, i.stream_sequence));
    let delivered = info.map_or(1, |i| i.0);
    let headers = msg.headers.as_ref();
    // A replayed job keeps its first id (`Candlepipe-Job-Id`); else the publisher's
    // `Nats-Msg-Id`; else the stream sequence.
    let job_id = headers
        .and_then(|h| h.get(JOB_ID_HEADER).or_else(|| h.get("Nats-Msg-Id")))
        .map(|v| v.as_str().to_string())
        .unwrap_or_else(|| format!("seq-{}", info.map_or(0, |i| i.1)));
    let reply_to = headers
        .and_then(|h| h.get(REPLY_HEADER))
        .map(|v| v.as_str().to_string());
    let enc = encoding_of(headers);
    // A reply subject that is not allowed is a bad request: the answer says so (kept in
    // Redis under the job id) and goes nowhere else.
    let replies = &ctx.settings.replies;
    let refused = reply_to.as_deref().and_then(|s| {
        let why = replies.check(s).err()?;
        crate::requests::replies::refuse(replies, why, s, &msg.subject);
        Some(replies.refusal(s, why))
    });
    let (answer, reply_to) = match refused {
        Some(e) => (Answer::Failed(ErrorReply::new(e)), None),
        None => {
            let answered = with_progress(
                &msg,
                ctx.settings.streams.ack_wait,
                answer(ctx, commenter, &msg.payload, enc, "job"),
            )
            .await;
            (answered, reply_to)
        }
    };
    let poison = match &answer {
        Answer::Failed(e) if e.error.code == ErrorCode::BadRequest => Some(e.error.message.clone()),
        _ => None,
    };
    let delivered_result = deliver(ctx, &job_id, reply_to.as_deref(), &answer, enc).await;
    let err = match (delivered_result, poison) {
        (Ok(()), None) => {
            finish(&msg, AckKind::Ack).await;
            return;
        }
        (Err(e), _) => e,
        (Ok(()), Some(why)) => JobError::BadJob(why),
    };
    let disposition = decide(&err, delivered, &ctx.settings.retry);
    let wire = WireError::new(wire_code(&err), err.to_string());
    tracing::warn!(job_id, code = %wire.code, error = %err, delivered, ?disposition, "analyze job failed");
    ctx.jobs
        .settle_failure(&msg, disposition, &wire, delivered)
        .await;
}

/// Stores the answer, then publishes it on the reply subject (if the job named one).
async fn deliver(
    ctx: &Context,
    job_id: &str,
    reply_to: Option<&str>,
    answer: &Answer,
    enc: Encoding,
) -> Result<(), JobError> {
    ctx.records
        .put(&result_name(job_id), answer, RESULT_TTL)
        .await?;
    if let Some(subject) = reply_to {
        let mut headers = reply_headers(enc);
        headers.insert(JOB_ID_HEADER, job_id);
        ctx.nats
            .publish_with_headers(
                subject.to_string(),
                headers,
                Bytes::from(encode(answer, enc)),
            )
            .await
            .map_err(|e| JobError::Publish(e.to_string()))?;
    }
    Ok(())
}

/// Analyses every symbol of `q`; the candles are asked for to arrive before `deadline`.
async fn analyse(
    ctx: &Context,
    commenter: &Commenter,
    q: AnalysisQuery,
    deadline: Instant,
) -> AnalysisReply {
    let outcomes: Vec<(String, Result<SymbolAnalysis, WireError>)> =
        futures::stream::iter(q.symbols.iter().cloned())
            .map(|sym| {
                let q = &q;
                async move {
                    let name = sym.as_str().to_string();
                    (name, analyse_symbol(ctx, commenter, q, sym, deadline).await)
                }
            })
            .buffer_unordered(ctx.settings.analysis_concurrency.max(1))
            .collect()
            .await;
    let mut results = BTreeMap::new();
    let mut errors = q.invalid.clone();
    for (name, outcome) in outcomes {
        match outcome {
            Ok(a) => {
                results.insert(name, a);
            }
            Err(e) => {
                errors.insert(name, e);
            }
        }
    }
    for e in errors.values() {
        metrics::counter!("candlepipe_analysis_symbols_total", "code" => e.code.as_str())
            .increment(1);
    }
    metrics::counter!("candlepipe_analysis_symbols_total", "code" => "ok")
        .increment(results.len() as u64);
    AnalysisReply {
        ok: true,
        exchange: q.exchange,
        interval: q.interval,
        usage: AnalysisReply::total_usage(&results),
        results,
        errors,
    }
}

async fn analyse_symbol(
    ctx: &Context,
    commenter: &Commenter,
    q: &AnalysisQuery,
    symbol: Symbol,
    deadline: Instant,
) -> Result<SymbolAnalysis, WireError> {
    let series = SeriesKey::new(q.exchange, symbol, q.interval);
    let candles = fetch_candles(ctx, &series, q.lookback, deadline).await?;
    let mut a = indicators(&series, &candles)?;
    if q.llm {
        let mut facts = serde_json::to_value(&a).unwrap_or_default();
        if let Some(obj) = facts.as_object_mut() {
            for k in ["commentary", "llm", "last_t"] {
                obj.remove(k);
            }
            obj.insert("symbol".into(), series.symbol.as_str().into());
            obj.insert("exchange".into(), series.exchange.as_str().into());
            obj.insert("interval".into(), series.interval.as_str().into());
        }
        let about = About {
            series: &series,
            last_t: a.last_t,
            facts,
        };
        let (text, note) = commenter.comment(&about).await;
        a.commentary = text;
        a.llm = Some(note);
    }
    Ok(a)
}

/// The newest `limit` candles through `candles.get`, as any producer would ask, willing to
/// wait until the analysis's own `deadline` (not the default wait: an analysis of many
/// symbols on a slow exchange queues its requests behind each other).
async fn fetch_candles(
    ctx: &Context,
    series: &SeriesKey,
    limit: u32,
    deadline: Instant,
) -> Result<Vec<Candle>, WireError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(WireError::new(
            ErrorCode::Timeout,
            "the analysis's deadline passed before this symbol's turn",
        ));
    }
    let req = CandlesRequest {
        exchange: series.exchange.as_str().into(),
        symbol: series.symbol.as_str().into(),
        interval: series.interval.as_str().into(),
        limit: Some(i64::from(limit)),
        timeout_ms: Some(remaining.as_millis().max(1) as i64),
        ..Default::default()
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE_HEADER, Encoding::Msgpack.content_type());
    crate::requests::traces::inject(&mut headers);
    let request = async_nats::Request::new()
        .headers(headers)
        .payload(Bytes::from(Encoding::Msgpack.encode(&req)))
        .timeout(Some(remaining + Duration::from_secs(1)));
    let msg = ctx
        .nats
        .send_request(ctx.settings.subjects.candles_get(), request)
        .await
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => WireError::new(
                ErrorCode::Unavailable,
                "no ingest worker is answering candles.get",
            ),
            async_nats::RequestErrorKind::TimedOut => {
                WireError::new(ErrorCode::Timeout, "candles.get did not answer in time")
            }
            _ => WireError::new(ErrorCode::Unavailable, format!("candles.get failed: {e}")),
        })?;
    let reply: AnyReply = Encoding::Msgpack.decode(&msg.payload).map_err(|e| {
        WireError::new(
            ErrorCode::Unavailable,
            format!("undecodable candles reply: {e}"),
        )
    })?;
    Ok(reply.into_result()?.candles)
}

/// Prices print at the last close's scale (2..=8 decimals).
fn indicators(series: &SeriesKey, candles: &[Candle]) -> Result<SymbolAnalysis, WireError> {
    let last = candles.last().ok_or_else(|| {
        WireError::new(
            ErrorCode::UpstreamError,
            format!("{} has no candles for {}", series.exchange, series.symbol),
        )
    })?;
    let f = |d: &rust_decimal::Decimal| d.to_f64().unwrap_or(f64::NAN);
    let bars: Vec<Bar> = candles
        .iter()
        .map(|c| Bar {
            high: f(&c.h),
            low: f(&c.l),
            close: f(&c.c),
        })
        .collect();
    let s = summarize(&bars, series.interval.minutes() as u64)
        .ok_or_else(|| WireError::new(ErrorCode::UpstreamError, "no candles to analyse"))?;
    let scale = last.c.scale().clamp(2, 8) as usize;
    let price = |v: f64| format!("{v:.scale$}");
    let round2 = |v: f64| (v * 100.0).round() / 100.0;
    Ok(SymbolAnalysis {
        last_t: last.t,
        candles: candles.len() as u32,
        last_close: last.c.to_string(),
        trend: s.trend,
        volatility: s.volatility,
        rsi14: s.rsi14.map(round2),
        ema20: s.ema20.map(price),
        ema50: s.ema50.map(price),
        atr14: s.atr14.map(price),
        atr_pct: s.atr_pct.map(round2),
        support: s.support.into_iter().map(price).collect(),
        resistance: s.resistance.into_iter().map(price).collect(),
        signal: s.signal,
        commentary: None,
        llm: None,
    })
}
