//! What the stream does with what it receives: each candle is published on the series'
//! live subject at once, then merged into the series store like a fill (same envelope,
//! versions, coverage): confirmed candles are covered for good, the others count as asked
//! now. A gap after a break, or since the store's last candle when this process takes a
//! series over, becomes a fill job on the exchange's bulk lane, so REST fills what the
//! stream missed, within the budget. Closes that are not the exchange's own record
//! (Kraken's, those built from Coinbase's trades) are confirmed by REST in batches
//! ([`Confirmations`]). Candles of one series are applied in order.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use candlepipe_core::closing::{closed_bound, CLOSE_MARGIN_MS};
use candlepipe_core::encoding::CONTENT_TYPE_HEADER;
use candlepipe_core::watch::LiveCandle;
use candlepipe_core::{
    now_ms, Candle, Coverage, Encoding, Exchange, Fetched, FillJob, Lane, Priority, SeriesKey,
};
use candlepipe_store::StoreError;
use tokio::sync::mpsc;

use super::confirmations::Confirmations;
use super::link::Received;
use super::published::Published;
use super::Pace;
use crate::cluster::leases::Held;
use crate::context::Context;

/// Series are spread over this many writers; each applies its series' candles in order.
const WRITERS: usize = 8;

/// Header of a live candle: when the exchange made it (ms), when it says.
pub const EVENT_MS_HEADER: &str = "Candlepipe-Event-Ms";

/// The series whose changes a watch wants in MessagePack too (read from the leases every
/// period).
#[derive(Clone, Default)]
pub struct Msgpack(Arc<RwLock<HashSet<SeriesKey>>>);

impl Msgpack {
    pub fn set(&self, series: Vec<SeriesKey>) {
        if let Ok(mut set) = self.0.write() {
            *set = series.into_iter().collect();
        }
    }

    fn wants(&self, series: &SeriesKey) -> bool {
        self.0.read().is_ok_and(|set| set.contains(series))
    }
}

pub async fn run(
    ctx: Context,
    paces: HashMap<Exchange, Pace>,
    mut received: mpsc::Receiver<Received>,
    msgpack: Msgpack,
    held: Held,
) {
    // The records writers read after a fill, back to this loop, which alone publishes.
    // Unbounded: this loop also waits on the writers' channels, and a writer must never
    // wait on this one (one record per fill of a series held here).
    let (records_tx, mut records) = mpsc::unbounded_channel::<Record>();
    let mut writers = Vec::with_capacity(WRITERS);
    for _ in 0..WRITERS {
        let (tx, mut rx) = mpsc::channel::<Received>(4096);
        let (ctx, held, records_tx) = (ctx.clone(), held.clone(), records_tx.clone());
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while rx.recv_many(&mut batch, 256).await > 0 {
                for r in superseded_dropped(std::mem::take(&mut batch)) {
                    apply(&ctx, &held, &records_tx, r).await;
                }
            }
        });
        writers.push(tx);
    }
    drop(records_tx);
    let mut published = Published::default();
    let mut confirmations = Confirmations::new(paces);
    let mut confirm_tick = tokio::time::interval(CONFIRM_TICK);
    confirm_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let r = tokio::select! {
            r = received.recv() => match r {
                Some(r) => r,
                None => break,
            },
            Some(record) = records.recv() => {
                if held.get(&record.series).is_none() {
                    published.forget(&record.series);
                    confirmations.forget(&record.series);
                    continue;
                }
                for c in published.corrections(&record.series, &record.candles) {
                    tracing::info!(series = %record.series, t = c.candle.t, revised = c.revised, "published candle confirmed by REST");
                    announce(&ctx, &msgpack, &record.series, &c, None).await;
                }
                continue;
            }
            _ = confirm_tick.tick() => {
                for (series, from, to) in confirmations.due(now_ms()) {
                    if held.get(&series).is_none() {
                        confirmations.forget(&series);
                        continue;
                    }
                    queue_confirmation(&ctx, &series, from, to).await;
                }
                continue;
            }
        };
        if let Received::Confirm { series, t } = &r {
            confirmations.note(series, *t, now_ms());
            continue;
        }
        // Subscribers hear a candle first, before the store write: only while this process
        // surely holds the series' lease (by its own clock, before Redis lets it lapse).
        if let Received::Candle {
            series,
            candle,
            event_ms,
            record,
            ..
        } = &r
        {
            if held.get(series).is_none() {
                published.forget(series);
                confirmations.forget(series);
                continue;
            }
            let live = LiveCandle::new(candle, *record, false);
            announce(&ctx, &msgpack, series, &live, *event_ms).await;
            published.note(series, candle, *record && candle.closed);
            if candle.closed && !*record {
                confirmations.note(series, candle.t, now_ms());
            }
        }
        let series = match &r {
            Received::Candle { series, .. }
            | Received::Alive { series, .. }
            | Received::Gap { series, .. }
            | Received::Quiet { series, .. }
            | Received::Confirm { series, .. }
            | Received::Ready { series }
            | Received::Taken { series } => series,
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        series.hash(&mut h);
        if writers[h.finish() as usize % WRITERS]
            .send(r)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// A forming candle followed in the same batch by a newer value of itself needs no write
/// of its own: the later one carries everything (confirmed candles are always written);
/// nor does a live mark followed by a later one of its series.
fn superseded_dropped(batch: Vec<Received>) -> Vec<Received> {
    let keep: Vec<bool> = batch
        .iter()
        .enumerate()
        .map(|(i, r)| match r {
            Received::Candle {
                series,
                candle,
                confirmed: false,
                ..
            } => !batch[i + 1..].iter().any(|later| {
                matches!(later, Received::Candle { series: s, candle: c, .. } if s == series && c.t == candle.t)
            }),
            Received::Alive { series, .. } => !batch[i + 1..]
                .iter()
                .any(|later| matches!(later, Received::Alive { series: s, .. } if s == series)),
            Received::Ready { series } => !batch[i + 1..]
                .iter()
                .any(|later| matches!(later, Received::Ready { series: s } if s == series)),
            _ => true,
        })
        .collect();
    batch
        .into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect()
}

/// The record of a series' recent closed candles, read after a fill wrote it.
pub struct Record {
    series: SeriesKey,
    /// Closed candles REST confirmed, ascending.
    candles: Vec<Candle>,
}

/// How often due confirmations are looked for.
const CONFIRM_TICK: Duration = Duration::from_secs(5);

/// How far back a fill's record is compared with what was published.
const RECORD_CANDLES: i64 = 64;

/// Publishes `candle` on the series' live subject (and in MessagePack while a watch wants).
async fn announce(
    ctx: &Context,
    msgpack: &Msgpack,
    series: &SeriesKey,
    candle: &LiveCandle,
    event_ms: Option<i64>,
) {
    publish(ctx, series, candle, event_ms, Encoding::Json).await;
    if msgpack.wants(series) {
        publish(ctx, series, candle, event_ms, Encoding::Msgpack).await;
    }
}

async fn publish(
    ctx: &Context,
    series: &SeriesKey,
    candle: &LiveCandle,
    event_ms: Option<i64>,
    enc: Encoding,
) {
    let ex = series.exchange.as_str();
    let payload = enc.encode(candle);
    let subjects = &ctx.settings.subjects;
    let mut headers = async_nats::HeaderMap::new();
    if let Some(at) = event_ms {
        headers.insert(EVENT_MS_HEADER, at.to_string().as_str());
    }
    let subject = match enc {
        Encoding::Json => subjects.live(series),
        Encoding::Msgpack => {
            headers.insert(CONTENT_TYPE_HEADER, enc.content_type());
            subjects.live_msgpack(series)
        }
    };
    let sent = if headers.is_empty() {
        ctx.nats.publish(subject, payload.into()).await
    } else {
        ctx.nats
            .publish_with_headers(subject, headers, payload.into())
            .await
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "live candle not published");
    }
    if let (Some(at), Encoding::Json) = (event_ms, enc) {
        metrics::histogram!("candlepipe_stream_lag_seconds", "exchange" => ex)
            .record((now_ms() - at).max(0) as f64 / 1000.0);
    }
}

/// A stream write refused in Redis: another process holds the series now.
fn lost(held: &Held, series: &SeriesKey, e: &StoreError) -> bool {
    if !matches!(e, StoreError::Fenced) {
        return false;
    }
    held.lose(series);
    metrics::counter!("candlepipe_stream_fenced_writes_total", "exchange" => series.exchange.as_str())
        .increment(1);
    tracing::warn!(series = %series, "stream lease lost: write refused, no more writes or publishes under it");
    true
}

/// After a fill of `series`: its recent closed candles that are REST's record.
async fn read_record(ctx: &Context, series: &SeriesKey) -> Option<Record> {
    let to = closed_bound(series.interval, now_ms());
    let from = to - (RECORD_CANDLES - 1) * series.interval.millis();
    match ctx.store.read(series, from, to).await {
        Ok(Some(read)) => Some(Record {
            series: series.clone(),
            candles: read
                .candles
                .into_iter()
                .filter(|c| c.closed && read.state.is_record(c.t))
                .collect(),
        }),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, series = %series, "record not read after a fill");
            None
        }
    }
}

async fn apply(ctx: &Context, held: &Held, records: &mpsc::UnboundedSender<Record>, r: Received) {
    // What the exchange says goes to the store only under the series' lease, with its fence.
    let lease = match &r {
        Received::Alive { series, .. }
        | Received::Candle { series, .. }
        | Received::Quiet { series, .. } => match held.get(series) {
            Some(lease) => Some(lease),
            None => return,
        },
        _ => None,
    };
    let fence = lease.map_or(0, |l| l.fence);
    match r {
        Received::Alive { series, at } => {
            if let Err(e) = ctx.store.mark_live(&series, at, fence).await {
                if !lost(held, &series, &e) {
                    tracing::warn!(error = %e, series = %series, "live mark not stored");
                }
            }
        }
        Received::Candle {
            series,
            candle,
            confirmed,
            ..
        } => store(ctx, held, &series, candle, confirmed, fence).await,
        Received::Quiet { series, from, to } => {
            let fetched = Fetched {
                covered: vec![(from, to)],
                streamed: true,
                ..Fetched::default()
            };
            if let Err(e) = ctx
                .store
                .write_streamed(&series, &fetched, now_ms(), fence)
                .await
            {
                if !lost(held, &series, &e) {
                    tracing::warn!(error = %e, series = %series, "quiet intervals not stored");
                }
            }
        }
        Received::Gap { series, since } => backfill(ctx, &series, since).await,
        // Noted by the publishing loop, never handed to a writer.
        Received::Confirm { .. } => {}
        Received::Ready { series } => {
            if let Some(record) = read_record(ctx, &series).await {
                let _ = records.send(record);
            }
        }
        Received::Taken { series } => {
            // The new holder's fence becomes the series' at once: the holder before it is
            // refused from now on, even before this one's first write.
            if let Some(lease) = held.get(&series) {
                match ctx.store.claim(&series, lease.fence).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost(held, &series, &StoreError::Fenced);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, series = %series, "stream lease not claimed")
                    }
                }
            }
            // From the store's newest confirmed candle on, at most one job's worth.
            let now = now_ms();
            let step = series.interval.millis();
            let to = closed_bound(series.interval, now);
            let since = match ctx.store.read(&series, to, to).await {
                Ok(Some(read)) => read.state.coverage.last().map(|last| last + step),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, series = %series, "store not read for a taken series");
                    None
                }
            };
            if let Some(since) = since {
                let since = since.max(to - (TAKEN_BACKFILL - 1) * step);
                backfill(ctx, &series, since).await;
            }
        }
    }
}

/// Merges one streamed candle into the store under the lease's `fence`: covered for good
/// when `confirmed`, else asked now; a forming one marks the series fresh.
async fn store(
    ctx: &Context,
    held: &Held,
    series: &SeriesKey,
    candle: Candle,
    confirmed: bool,
    fence: u64,
) {
    let now = now_ms();
    let t = candle.t;
    let forming = t >= series.interval.open_of(now);
    let fetched = Fetched {
        candles: vec![candle],
        covered: if confirmed { vec![(t, t)] } else { Vec::new() },
        unconfirmed: if confirmed { Vec::new() } else { vec![t] },
        history_from: None,
        tail_fetched_at: forming.then_some(now),
        streamed: true,
    };
    match ctx.store.write_streamed(series, &fetched, now, fence).await {
        Ok(written) if confirmed => fill_hole_before(ctx, series, t, &written.coverage).await,
        Ok(_) => {}
        Err(e) if lost(held, series, &e) => {}
        Err(e) => tracing::warn!(error = %e, series = %series, "streamed candle not stored"),
    }
}

/// A close the stream confirmed, after a stored candle that nobody confirmed: the candle
/// that closed before the subscription started (a first load asked it seconds after its
/// close, before it counted as closed) is asked of REST now, not when a producer next asks.
async fn fill_hole_before(ctx: &Context, series: &SeriesKey, t: i64, coverage: &Coverage) {
    let step = series.interval.millis();
    if coverage.covers(t - step) {
        return;
    }
    let last_before = coverage
        .ranges()
        .iter()
        .filter(|(_, b)| *b < t)
        .map(|(_, b)| *b)
        .max();
    if let Some(last) = last_before.filter(|last| t - last <= TAKEN_BACKFILL * step) {
        backfill(ctx, series, last + step).await;
    }
}

/// Candles a process taking over a series asks REST for at most.
const TAKEN_BACKFILL: i64 = 1000;

/// Asks REST for `series` from open time `since` to the last closed candle, on the bulk
/// lane: nobody waits for it, and live work goes first. A `since` still forming (a break or
/// takeover just before a close) is asked once it has closed; the job then finds nothing
/// to do if the stream brought the close after all.
async fn backfill(ctx: &Context, series: &SeriesKey, since: i64) {
    let now = now_ms();
    let closes_at = since + series.interval.millis() + CLOSE_MARGIN_MS + 1_000;
    if closed_bound(series.interval, now) >= since {
        queue_backfill(ctx, series, since).await;
    } else if closes_at - now <= MAX_WAIT_MS {
        let (ctx, series) = (ctx.clone(), series.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((closes_at - now).max(0) as u64)).await;
            queue_backfill(&ctx, &series, since).await;
        });
    }
    // Longer intervals: the next request for the window confirms it from REST.
}

/// How long a back-fill may wait for its first candle to close.
const MAX_WAIT_MS: i64 = 120_000;

async fn queue_backfill(ctx: &Context, series: &SeriesKey, since: i64) {
    let now = now_ms();
    let to = closed_bound(series.interval, now);
    if since > to {
        return;
    }
    let job = FillJob {
        series: series.clone(),
        from: since,
        to,
        includes_open: false,
        fresh_after: now,
        confirm: false,
    };
    let id = format!("{}.gap", job.msg_id(now));
    let lane = Lane::new(series.exchange, Priority::Bulk);
    match ctx.jobs.publish(&job, lane, &id, None).await {
        Ok(_) => {
            metrics::counter!("candlepipe_stream_backfills_total", "exchange" => series.exchange.as_str())
                .increment(1);
            tracing::info!(series = %series, from = since, to, "stream gap sent to REST");
        }
        Err(e) => tracing::warn!(error = %e, series = %series, "stream gap not queued"),
    }
}

/// Asks REST for its record of `series` from `from` to `to` (closes only the stream
/// confirmed, and the quiet intervals between), on the bulk lane.
async fn queue_confirmation(ctx: &Context, series: &SeriesKey, from: i64, to: i64) {
    let now = now_ms();
    let job = FillJob {
        series: series.clone(),
        from,
        to,
        includes_open: false,
        fresh_after: now,
        confirm: true,
    };
    let id = format!("{}.confirm", job.msg_id(now));
    let lane = Lane::new(series.exchange, Priority::Bulk);
    match ctx.jobs.publish(&job, lane, &id, None).await {
        Ok(_) => {
            metrics::counter!("candlepipe_stream_confirmations_total", "exchange" => series.exchange.as_str())
                .increment(1);
            tracing::debug!(series = %series, from, to, "stream closes sent to REST to confirm");
        }
        Err(e) => tracing::warn!(error = %e, series = %series, "confirmation not queued"),
    }
}
