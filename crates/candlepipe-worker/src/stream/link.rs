//! One WebSocket connection to an exchange, kept alive for the topics it is given: it
//! (re)connects with capped, fully jittered backoff, subscribes (at most one control message
//! every [`CONTROL_SPACING`], so Binance's 5 a second is never reached), checks that each
//! request is acknowledged, and that the connection and each subscription keep delivering
//! real messages (pings do not count). A silent subscription is subscribed again, a silent
//! connection replaced; on `serverShutdown` or at [`MAX_AGE`] a new connection is opened
//! before the old one is let go. After any break, what each series may have missed is
//! reported as a [`Received::Gap`], to be filled from REST. Where the exchange sends trades
//! instead of candles (Coinbase), each series' candles are built ([`super::trades`]) from
//! REST's forming candle (the seed, asked through `candlepipe.candles.get`) and the trades
//! after it; a jump in `trade_id` is a gap, and the forming candle is seeded again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use candlepipe_core::closing::CLOSE_MARGIN_MS;
use candlepipe_core::{Candle, Exchange, Interval, Millis, SeriesKey};
use candlepipe_exchange::budget::Demand;
use candlepipe_exchange::stream::socket::{self, Message, Socket};
use candlepipe_exchange::stream::{self, Event, Kind, Topic};
use candlepipe_exchange::ExchangeClient;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::trades::{self, Builder, Out, Trade};

/// What a link hands on.
#[derive(Debug)]
pub enum Received {
    /// A candle's values. `confirmed`: the exchange said it is final (Binance's `x`), a
    /// later candle of the series came on the same connection (Kraken), or its interval's
    /// trades are over (Coinbase): covered by the stream. `record`: the exchange's own final word (Binance's `x`), published as
    /// `confirmed:true`; any other close is published `confirmed:false` until REST's record.
    Candle {
        series: SeriesKey,
        candle: Candle,
        confirmed: bool,
        record: bool,
        event_ms: Option<Millis>,
    },
    /// A fill wrote the series: what REST confirmed corrects what was published.
    Ready { series: SeriesKey },
    /// The connection broke or was replaced: candles after `since` may have been missed.
    Gap { series: SeriesKey, since: Millis },
    /// The exchange's protocol proved, at `at` (cluster clock), that the series had no trade
    /// the stream has not delivered (Kraken: any message on the connection; Coinbase: the
    /// product's heartbeat naming the last trade seen). Stored as the series' live mark
    /// after the candles received before it; not published: nothing changed.
    Alive { series: SeriesKey, at: Millis },
    /// The intervals opening from `from` to `to` passed without a trade (Coinbase: the
    /// feed's contiguous trade ids prove it): covered by the stream, empty.
    Quiet {
        series: SeriesKey,
        from: Millis,
        to: Millis,
    },
    /// The interval opening at `t` is over and the stream has no candle for it (a seed
    /// that never came): REST confirms it.
    Confirm { series: SeriesKey, t: Millis },
    /// This process just took the series (a new watch, or another holder's lease that
    /// lapsed): what the store lacks since its last candle may have been missed.
    Taken { series: SeriesKey },
}

/// The topics a link should hold, with the series each one feeds.
pub type Wanted = BTreeMap<Topic, SeriesKey>;

/// At most 3⅓ subscribe/unsubscribe messages a second: with a pong to each of the
/// exchange's pings (Binance: one every 20 s), under Binance's 5 messages a second.
pub const CONTROL_SPACING: Duration = Duration::from_millis(300);
/// A connection is replaced before the exchanges' 24-hour cut.
pub const MAX_AGE: Duration = Duration::from_secs(23 * 3600);
/// How long a subscribe may go unacknowledged.
const ACK_WAIT: Duration = Duration::from_secs(10);
/// How long after an interval ends its closing update may come (Binance: 1.4–2.4 s); past
/// it the candle goes to REST.
const CLOSE_GRACE_MS: Millis = 5_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// How long a seed waits before it is asked again after a failure.
const SEED_RETRY: Duration = Duration::from_secs(2);
/// Pages of 1,000 trades a seed reads at most (a product trading faster than 20,000 times
/// in part of an interval leaves that interval to REST).
const SEED_PAGES: usize = 20;

/// Reads the trades of a subscription's first interval from Coinbase's REST trades, up to
/// the last one before the subscription's (its `last_match`), through the cluster's
/// budget: with the feed's trades after it, that interval is built exactly, no trade
/// counted twice or missed.
#[derive(Clone)]
pub struct Seeder {
    pub exchange: ExchangeClient,
}

impl Seeder {
    /// The candles of the interval of `interval` opening at `open` and of the one before
    /// it, made of product `native`'s trades with ids up to `until`.
    async fn forming(
        &self,
        native: &str,
        interval: Interval,
        open: Millis,
        until: u64,
    ) -> Result<Seed, String> {
        let Some(trades) = self
            .exchange
            .coinbase_trades(
                native,
                until,
                open - interval.millis(),
                SEED_PAGES,
                Demand::Upkeep,
            )
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(Seed::TooBusy);
        };
        let of = |at: Millis| {
            let mut candle = None;
            for t in trades.iter().filter(|t| interval.open_of(t.t) == at) {
                let trade = Trade {
                    t: t.t,
                    price: t.price,
                    size: t.size,
                };
                trades::add(&mut candle, at, &trade);
            }
            candle
        };
        Ok(Seed::Candles {
            previous: of(open - interval.millis()),
            current: of(open),
        })
    }
}

/// What a seed found. One per subscription's seed, moved once: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Seed {
    /// The interval's trades up to the seed's last, and the whole interval before it
    /// (`None`: it had none).
    Candles {
        previous: Option<Candle>,
        current: Option<Candle>,
    },
    /// More than [`SEED_PAGES`] pages of trades: the interval is left to REST.
    TooBusy,
}

/// A seed's answer, back in the session.
struct Seeded {
    topic: Topic,
    asked_at: Millis,
    /// The last trade id the seed holds.
    until: u64,
    candle: Result<Seed, String>,
}

/// A product's trades on this connection (Coinbase).
#[derive(Default)]
struct Product {
    /// The last trade id seen (from `last_match`, then each `match`).
    last_id: Option<u64>,
    /// When the last trade seen happened.
    last_t: Option<Millis>,
    /// The last trade id the previous heartbeat claimed.
    claimed: Option<u64>,
}

/// Connection attempts an exchange allows per window (Binance: 300 per 5 minutes).
pub struct Attempts {
    window: Duration,
    max: usize,
    recent: Mutex<VecDeque<Instant>>,
}

impl Attempts {
    pub fn new(max: usize, window: Duration) -> Arc<Self> {
        Arc::new(Attempts {
            window,
            max,
            recent: Mutex::new(VecDeque::new()),
        })
    }

    /// Waits until another attempt is allowed, and counts it.
    async fn take(&self) {
        loop {
            let wait = {
                let mut recent = self.recent.lock().await;
                let now = Instant::now();
                while recent.front().is_some_and(|t| now - *t >= self.window) {
                    recent.pop_front();
                }
                if recent.len() < self.max {
                    recent.push_back(now);
                    return;
                }
                recent
                    .front()
                    .map_or(Duration::ZERO, |t| self.window - (now - *t))
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Full-jitter exponential backoff.
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let ceiling = BACKOFF_BASE
            .saturating_mul(1 << self.failures.min(10))
            .min(BACKOFF_CAP);
        self.failures += 1;
        ceiling.mul_f64(rand::random::<f64>())
    }
}

pub struct Link {
    pub exchange: Exchange,
    pub url: String,
    /// A connection or subscription without a real message this long is silent.
    pub silence: Duration,
    pub attempts: Arc<Attempts>,
    pub seeder: Seeder,
}

enum End {
    Shutdown,
    /// Open a new connection, then let this one go.
    Replace(Box<Socket>),
    Broken(&'static str),
}

struct TopicState {
    acked: bool,
    /// When (cluster clock) the connection brought its ack or first data: a later message
    /// comes after the snapshot that follows the ack (Kraken), so it may vouch for it.
    acked_ms: Millis,
    last_data: Instant,
    /// The last candle seen (Kraken: it closes when a later one comes).
    last: Option<Candle>,
    /// Binance: open times seen forming whose closing update has not come yet.
    unclosed: BTreeSet<Millis>,
    /// Coinbase: the candles being built from trades (from the ack on).
    built: Option<Builder>,
    /// When the subscription was sent.
    since_ms: Millis,
}

impl Link {
    pub async fn run(
        self,
        mut want: watch::Receiver<Wanted>,
        out: mpsc::Sender<Received>,
        shutdown: CancellationToken,
    ) {
        let ex = self.exchange.as_str();
        let mut backoff = Backoff { failures: 0 };
        // The newest candle seen per topic, across connections: where a gap starts.
        let mut last_seen: BTreeMap<Topic, Millis> = BTreeMap::new();
        let mut spare: Option<Socket> = None;
        let mut after_break = false;
        loop {
            if want.borrow().is_empty() && spare.is_none() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = want.changed() => if changed.is_err() { return } else { continue },
                }
            }
            let socket = match spare.take() {
                Some(s) => s,
                None => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = self.attempts.take() => {}
                    }
                    match socket::connect(&self.url, CONNECT_TIMEOUT).await {
                        Ok(s) => s,
                        Err(e) => {
                            let wait = backoff.next();
                            tracing::warn!(exchange = ex, error = %e, retry_in_ms = wait.as_millis() as u64, "stream connection failed");
                            metrics::counter!("candlepipe_stream_reconnects_total", "exchange" => ex, "reason" => "connect_failed").increment(1);
                            tokio::select! {
                                _ = shutdown.cancelled() => return,
                                _ = tokio::time::sleep(wait) => continue,
                            }
                        }
                    }
                }
            };
            if after_break {
                let wanted = want.borrow().clone();
                for (topic, since) in &last_seen {
                    if let Some(series) = wanted.get(topic) {
                        let gap = Received::Gap {
                            series: series.clone(),
                            since: *since,
                        };
                        if out.send(gap).await.is_err() {
                            return;
                        }
                    }
                }
            }
            tracing::info!(exchange = ex, url = %self.url, "stream connected");
            metrics::gauge!("candlepipe_stream_connections", "exchange" => ex).increment(1.0);
            let end = self
                .session(
                    socket,
                    &mut want,
                    &out,
                    &mut last_seen,
                    &mut backoff,
                    &shutdown,
                )
                .await;
            metrics::gauge!("candlepipe_stream_connections", "exchange" => ex).decrement(1.0);
            metrics::gauge!("candlepipe_stream_subscriptions", "exchange" => ex).set(0.0);
            after_break = true;
            match end {
                End::Shutdown => return,
                End::Replace(old) => {
                    tracing::info!(exchange = ex, "replacing the stream connection");
                    metrics::counter!("candlepipe_stream_reconnects_total", "exchange" => ex, "reason" => "replaced").increment(1);
                    self.attempts.take().await;
                    spare = socket::connect(&self.url, CONNECT_TIMEOUT).await.ok();
                    drop(old);
                }
                End::Broken(reason) => {
                    let wait = backoff.next();
                    tracing::warn!(
                        exchange = ex,
                        reason,
                        retry_in_ms = wait.as_millis() as u64,
                        "stream connection lost"
                    );
                    metrics::counter!("candlepipe_stream_reconnects_total", "exchange" => ex, "reason" => reason).increment(1);
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    async fn session(
        &self,
        mut socket: Socket,
        want: &mut watch::Receiver<Wanted>,
        out: &mpsc::Sender<Received>,
        last_seen: &mut BTreeMap<Topic, Millis>,
        backoff: &mut Backoff,
        shutdown: &CancellationToken,
    ) -> End {
        let ex = self.exchange;
        let kind = stream::kind(ex);
        let opened = Instant::now();
        let mut products: BTreeMap<String, Product> = BTreeMap::new();
        let (seed_tx, mut seed_rx) = mpsc::channel::<Seeded>(1024);
        // A builder for `topic` whose first interval is seeded with the trades up to
        // `until` (the feed brings those after it).
        let seeding = |topic: &Topic, until: u64, delay: Duration| -> Builder {
            let asked_at = candlepipe_core::now_ms() + delay.as_millis() as Millis;
            let interval = topic.interval;
            let (seeder, tx, topic) = (self.seeder.clone(), seed_tx.clone(), topic.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let open = topic.interval.open_of(asked_at);
                let candle = seeder
                    .forming(&topic.native, topic.interval, open, until)
                    .await;
                let _ = tx
                    .send(Seeded {
                        topic,
                        asked_at,
                        until,
                        candle,
                    })
                    .await;
            });
            Builder::seeding(interval, asked_at)
        };
        let mut subs: BTreeMap<Topic, TopicState> = BTreeMap::new();
        let mut refused: BTreeSet<Topic> = BTreeSet::new();
        // Requests waiting to be sent, and sent ones waiting for their ack.
        let mut outbox: VecDeque<(Vec<Topic>, bool)> = VecDeque::new();
        let mut pending: Pending = BTreeMap::new();
        let mut next_id: u64 = 1;
        let mut last_message = Instant::now();
        // Kraken: when the last message came (cluster clock), and up to when its series were
        // last vouched for.
        let mut last_message_ms: Millis = 0;
        let mut vouched_ms: Millis = 0;
        let mut tick = tokio::time::interval(CONTROL_SPACING);
        let plan = |subs: &mut BTreeMap<Topic, TopicState>,
                    refused: &BTreeSet<Topic>,
                    wanted: &Wanted,
                    outbox: &mut VecDeque<(Vec<Topic>, bool)>| {
            let add: Vec<Topic> = wanted
                .keys()
                .filter(|t| !subs.contains_key(*t) && !refused.contains(*t))
                .cloned()
                .collect();
            let mut drop: Vec<Topic> = subs
                .keys()
                .filter(|t| !wanted.contains_key(*t))
                .cloned()
                .collect();
            if kind == Kind::Trades {
                // A product is subscribed, not a series: it stays while any series of it
                // is wanted.
                drop.retain(|t| {
                    let in_use = wanted.keys().any(|w| w.native == t.native);
                    if in_use {
                        subs.remove(t);
                    }
                    !in_use
                });
            }
            outbox.retain(|(topics, _)| topics.iter().all(|t| wanted.contains_key(t)));
            if !drop.is_empty() {
                outbox.push_back((drop, false));
            }
            if !add.is_empty() {
                outbox.push_back((add, true));
            }
        };
        plan(&mut subs, &refused, &want.borrow_and_update(), &mut outbox);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = socket.close(None).await;
                    return End::Shutdown;
                }
                changed = want.changed() => {
                    if changed.is_err() {
                        return End::Shutdown;
                    }
                    let wanted = want.borrow_and_update().clone();
                    refused.retain(|t| wanted.contains_key(t));
                    plan(&mut subs, &refused, &wanted, &mut outbox);
                }
                Some(seeded) = seed_rx.recv() => {
                    let Some(state) = subs.get_mut(&seeded.topic) else { continue };
                    let Some(builder) = state.built.as_mut().filter(|b| b.waits_for() == Some(seeded.asked_at)) else { continue };
                    let Some(series) = want.borrow().get(&seeded.topic).cloned() else { continue };
                    let outs = match seeded.candle {
                        Ok(Seed::Candles { previous, current }) => builder.seed(seeded.asked_at, previous, current),
                        Ok(Seed::TooBusy) => {
                            // The builder waits on: the interval ends unbuilt, for REST.
                            tracing::info!(exchange = %ex, series = %series, pages = SEED_PAGES, "first interval not seeded (too many trades); REST has it");
                            Vec::new()
                        }
                        Err(e) => {
                            tracing::warn!(exchange = %ex, series = %series, error = %e, "forming candle not seeded; asking again");
                            state.built = Some(seeding(&seeded.topic, seeded.until, SEED_RETRY));
                            Vec::new()
                        }
                    };
                    for r in built(&series, outs, None) {
                        if out.send(r).await.is_err() {
                            return End::Shutdown;
                        }
                    }
                }
                msg = socket.next() => {
                    let text = match msg {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) => return End::Broken("closed_by_exchange"),
                        None | Some(Err(_)) => return End::Broken("connection_error"),
                        // Pings are answered by tungstenite and are no sign of data.
                        Some(Ok(_)) => continue,
                    };
                    last_message = Instant::now();
                    last_message_ms = candlepipe_core::now_ms();
                    let events = match stream::parse(ex, &text) {
                        Ok(e) => e,
                        Err(e) => {
                            tracing::debug!(exchange = %ex, error = %e, "stream message not understood");
                            continue;
                        }
                    };
                    // A candle followed by a later one of its series in the same message
                    // (Kraken's snapshot) is only handed on closed, not first as forming.
                    let superseded: Vec<bool> = events
                        .iter()
                        .enumerate()
                        .map(|(i, e)| match e {
                            Event::Candle { topic, candle, .. } => events[i + 1..].iter().any(|later| {
                                matches!(later, Event::Candle { topic: lt, candle: lc, .. } if lt == topic && lc.t > candle.t)
                            }),
                            _ => false,
                        })
                        .collect();
                    for (event, superseded) in events.into_iter().zip(superseded) {
                        match event {
                            Event::Candle { topic, candle, event_ms } => {
                                metrics::counter!("candlepipe_stream_messages_total", "exchange" => ex.as_str()).increment(1);
                                let Some(series) = want.borrow().get(&topic).cloned() else { continue };
                                let Some(state) = subs.get_mut(&topic) else { continue };
                                if !state.acked {
                                    state.acked = true;
                                    state.acked_ms = last_message_ms;
                                }
                                state.last_data = Instant::now();
                                backoff.failures = 0;
                                let seen = last_seen.entry(topic.clone()).or_insert(candle.t);
                                *seen = (*seen).max(candle.t);
                                let mut received = Vec::with_capacity(2);
                                if kind == Kind::ClosedFlag {
                                    if candle.closed {
                                        state.unclosed.remove(&candle.t);
                                    } else if state.unclosed.len() < 16 {
                                        state.unclosed.insert(candle.t);
                                    }
                                    received.push(Received::Candle {
                                        series,
                                        confirmed: candle.closed,
                                        record: candle.closed,
                                        candle,
                                        event_ms,
                                    });
                                } else {
                                    if let Some(mut previous) = state.last.take_if(|p| p.t < candle.t) {
                                        previous.closed = true;
                                        received.push(Received::Candle {
                                            series: series.clone(),
                                            candle: previous,
                                            confirmed: true,
                                            record: false,
                                            event_ms,
                                        });
                                    }
                                    state.last = Some(candle.clone());
                                    if !superseded {
                                        received.push(Received::Candle {
                                            series,
                                            candle,
                                            confirmed: false,
                                            record: false,
                                            event_ms,
                                        });
                                    }
                                }
                                for r in received {
                                    if out.send(r).await.is_err() {
                                        return End::Shutdown;
                                    }
                                }
                            }
                            Event::Trade { native, id, t, price, size } => {
                                metrics::counter!("candlepipe_stream_messages_total", "exchange" => ex.as_str()).increment(1);
                                backoff.failures = 0;
                                let product = products.entry(native.clone()).or_default();
                                if product.last_id.is_some_and(|last| id <= last) {
                                    continue; // seen already
                                }
                                let lost = product.last_id.is_some_and(|last| id > last + 1);
                                let lost_since = product.last_t;
                                product.last_id = Some(id);
                                product.last_t = Some(t);
                                let mut received = Vec::new();
                                for (topic, state) in subs.iter_mut().filter(|(tp, _)| tp.native == native) {
                                    state.last_data = Instant::now();
                                    let Some(series) = want.borrow().get(topic).cloned() else { continue };
                                    if !state.acked {
                                        continue;
                                    }
                                    // No `last_match` came: this trade is the first after the seed.
                                    let builder = state.built.get_or_insert_with(|| seeding(topic, id - 1, Duration::ZERO));
                                    let open = topic.interval.open_of(t);
                                    let seen = last_seen.entry(topic.clone()).or_insert(open);
                                    *seen = (*seen).max(open);
                                    if lost {
                                        let since = topic.interval.open_of(lost_since.unwrap_or(state.since_ms));
                                        tracing::info!(exchange = %ex, series = %series, since, "trades lost (trade_id jumped); back-filling and seeding again");
                                        received.push(Received::Gap { series: series.clone(), since });
                                        *builder = seeding(topic, id - 1, Duration::ZERO);
                                    }
                                    let outs = builder.trade(Trade { t, price, size });
                                    received.extend(built(&series, outs, Some(t)));
                                }
                                for r in received {
                                    if out.send(r).await.is_err() {
                                        return End::Shutdown;
                                    }
                                }
                            }
                            Event::LastTrade { native, id } => {
                                let product = products.entry(native.clone()).or_default();
                                let until = *product.last_id.get_or_insert(id);
                                // The subscriptions waiting for it are seeded up to it.
                                for (topic, state) in subs.iter_mut().filter(|(tp, s)| tp.native == native && s.acked && s.built.is_none()) {
                                    state.built = Some(seeding(topic, until, Duration::ZERO));
                                }
                            }
                            Event::Alive { native, last_trade_id } => {
                                let product = products.entry(native.clone()).or_default();
                                // What the previous heartbeat said happened and never came is lost.
                                let lost = match (product.claimed, product.last_id) {
                                    (Some(claimed), Some(last)) if last < claimed => Some(claimed),
                                    _ => None,
                                };
                                product.claimed = last_trade_id;
                                let lost_since = product.last_t;
                                if let Some(claimed) = lost {
                                    product.last_id = Some(claimed);
                                }
                                let mut received = Vec::new();
                                let now_ms = candlepipe_core::now_ms();
                                for (topic, state) in subs.iter_mut().filter(|(tp, _)| tp.native == native) {
                                    state.last_data = Instant::now();
                                    let Some(series) = want.borrow().get(topic).cloned() else { continue };
                                    let Some(builder) = state.built.as_mut() else { continue };
                                    if lost.is_none() {
                                        // Built from a seed on: the store holds what it built.
                                        if builder.waits_for().is_none() {
                                            received.push(Received::Alive { series, at: now_ms });
                                        }
                                        continue;
                                    }
                                    let since = topic.interval.open_of(lost_since.unwrap_or(state.since_ms));
                                    tracing::info!(exchange = %ex, series = %series, since, "trades lost (heartbeat's last_trade_id never came); back-filling and seeding again");
                                    received.push(Received::Gap { series: series.clone(), since });
                                    if let Some(claimed) = lost {
                                        *builder = seeding(topic, claimed, Duration::ZERO);
                                    }
                                }
                                for r in received {
                                    if out.send(r).await.is_err() {
                                        return End::Shutdown;
                                    }
                                }
                            }
                            Event::Subscribed { natives } => {
                                let now_subscribed: BTreeSet<String> = natives.into_iter().collect();
                                let done: Vec<u64> = pending
                                    .iter()
                                    .filter(|(_, (topics, subscribe, _))| {
                                        topics.iter().all(|t| now_subscribed.contains(&t.native) == *subscribe)
                                    })
                                    .map(|(id, _)| *id)
                                    .collect();
                                for id in done {
                                    let Some((topics, true, _)) = pending.remove(&id) else { continue };
                                    for t in topics {
                                        let Some(state) = subs.get_mut(&t) else { continue };
                                        state.acked = true;
                                        // Seeded up to the product's last trade when this
                                        // connection knows it; else when its `last_match`
                                        // (or its first trade) comes.
                                        if state.built.is_none() {
                                            if let Some(until) = products.get(&t.native).and_then(|p| p.last_id) {
                                                state.built = Some(seeding(&t, until, Duration::ZERO));
                                            }
                                        }
                                    }
                                }
                            }
                            Event::Ack { id, native } => {
                                for t in answered(&mut pending, id, native.as_deref()) {
                                    if let Some(s) = subs.get_mut(&t).filter(|s| !s.acked) {
                                        s.acked = true;
                                        s.acked_ms = last_message_ms;
                                    }
                                }
                            }
                            Event::Refused { id, native, message } => {
                                let Some(refusal) = refusal(&mut pending, id, native.as_deref(), &message) else {
                                    tracing::warn!(exchange = %ex, message, "stream request refused; none of ours waits for an answer");
                                    continue;
                                };
                                tracing::warn!(exchange = %ex, topics = ?refusal.refused, message, "stream subscription refused");
                                for t in refusal.refused {
                                    subs.remove(&t);
                                    refused.insert(t);
                                }
                                for (topics, subscribe) in refusal.again {
                                    for t in &topics {
                                        subs.remove(t);
                                    }
                                    outbox.push_back((topics, subscribe));
                                }
                            }
                            Event::Shutdown => return End::Replace(Box::new(socket)),
                            Event::Heartbeat | Event::Other => {}
                        }
                    }
                }
                _ = tick.tick() => {
                    if let Some((topics, subscribe)) = outbox.pop_front() {
                        let now = Instant::now();
                        let requests = stream::requests(ex, &topics, subscribe, next_id);
                        next_id += requests.len() as u64;
                        // One message per tick: the rest go back to the front of the queue.
                        let mut rest = requests.into_iter();
                        if let Some(request) = rest.next() {
                            if socket.send(Message::Text(request.text.into())).await.is_err() {
                                return End::Broken("connection_error");
                            }
                            for t in &request.topics {
                                if subscribe {
                                    subs.insert(t.clone(), TopicState { acked: false, acked_ms: 0, last_data: now, last: None, unclosed: BTreeSet::new(), built: None, since_ms: candlepipe_core::now_ms() });
                                } else {
                                    subs.remove(t);
                                }
                            }
                            let left: Vec<Topic> = rest.flat_map(|r| r.topics).collect();
                            pending.insert(request.id, (request.topics, subscribe, now));
                            if !left.is_empty() {
                                outbox.push_front((left, subscribe));
                            }
                        }
                        metrics::gauge!("candlepipe_stream_subscriptions", "exchange" => ex.as_str()).set(subs.len() as f64);
                    }
                    if last_message.elapsed() > self.silence {
                        return End::Broken("silent");
                    }
                    if pending.values().any(|(_, _, at)| at.elapsed() > ACK_WAIT) {
                        return End::Broken("not_acknowledged");
                    }
                    // Kraken sends a pair's update only when it trades, and a heartbeat only
                    // when the whole connection is silent: any message proves that every
                    // pair on the connection had no trade before it that is not delivered.
                    if kind == Kind::NextCloses && last_message_ms > vouched_ms {
                        vouched_ms = last_message_ms;
                        let proved = quiet_pairs(&mut subs, &want.borrow(), vouched_ms);
                        for r in proved {
                            if out.send(r).await.is_err() {
                                return End::Shutdown;
                            }
                        }
                    }
                    // A subscription silent while its connection talks: subscribe it again
                    // (not on Kraken, where a pair without trades is rightly silent).
                    let silent: Vec<Topic> = subs
                        .iter()
                        .filter(|_| kind != Kind::NextCloses)
                        .filter(|(_, s)| s.acked && s.last_data.elapsed() > self.silence)
                        .map(|(t, _)| t.clone())
                        .collect();
                    if !silent.is_empty() {
                        tracing::info!(exchange = %ex, topics = silent.len(), "silent subscriptions; subscribing again");
                        for t in &silent {
                            if let Some(s) = subs.get_mut(t) {
                                s.last_data = Instant::now();
                            }
                        }
                        outbox.push_back((silent.clone(), false));
                        outbox.push_back((silent, true));
                    }
                    let now_ms = candlepipe_core::now_ms();
                    // A candle built from trades whose interval is over: REST confirms it.
                    let mut ended = Vec::new();
                    for (topic, state) in subs.iter_mut() {
                        let Some(o) = state.built.as_mut().and_then(|b| b.tick(now_ms, CLOSE_GRACE_MS)) else { continue };
                        let Some(series) = want.borrow().get(topic).cloned() else { continue };
                        ended.extend(built(&series, vec![o], None));
                    }
                    for r in ended {
                        if out.send(r).await.is_err() {
                            return End::Shutdown;
                        }
                    }
                    // A closing update that never came: REST has the final candle.
                    for (topic, state) in subs.iter_mut() {
                        let step = topic.interval.millis();
                        let overdue: Vec<Millis> = state
                            .unclosed
                            .iter()
                            .copied()
                            .filter(|t| t + step + CLOSE_GRACE_MS < now_ms)
                            .collect();
                        let Some(&since) = overdue.first() else { continue };
                        for t in &overdue {
                            state.unclosed.remove(t);
                        }
                        let Some(series) = want.borrow().get(topic).cloned() else { continue };
                        tracing::info!(exchange = %ex, series = %series, since, "closing update missed");
                        if out.send(Received::Gap { series, since }).await.is_err() {
                            return End::Shutdown;
                        }
                    }
                    if opened.elapsed() > MAX_AGE {
                        return End::Replace(Box::new(socket));
                    }
                }
            }
        }
    }
}

/// Requests sent and not answered yet: id → (topics, subscribe, when sent).
type Pending = BTreeMap<u64, (Vec<Topic>, bool, Instant)>;

/// The topics an acknowledgement answers: those of symbol `native` in request `id` where
/// the exchange answers each symbol on its own (Kraken), else the whole request. Answered
/// topics leave the pending request, and the request once all are answered.
fn answered(pending: &mut Pending, id: u64, native: Option<&str>) -> Vec<Topic> {
    let Some((topics, _, _)) = pending.get_mut(&id) else {
        return Vec::new();
    };
    let done: Vec<Topic> = match native {
        Some(n) => {
            let (done, rest): (Vec<Topic>, Vec<Topic>) = std::mem::take(topics)
                .into_iter()
                .partition(|t| t.native == n);
            *topics = rest;
            done
        }
        None => std::mem::take(topics),
    };
    if topics.is_empty() {
        pending.remove(&id);
    }
    done
}

/// What a refusal means for our requests.
#[derive(Debug, Default, PartialEq)]
struct Refusal {
    /// Refused for good on this connection (until no longer wanted).
    refused: Vec<Topic>,
    /// Requests to send again: the rest of a request the exchange refused whole because of
    /// one product, or the halves of one refused without saying which product was at fault.
    again: Vec<(Vec<Topic>, bool)>,
}

/// Judges a refusal, so that a refused product or symbol affects only itself:
/// - naming the symbol (Kraken answers each on its own): that symbol's topics are refused,
///   the others of the request still wait for their own answers;
/// - naming no id (Coinbase's `error`): it answers our oldest request waiting;
/// - refusing a whole request: the products its message names are refused and the others
///   asked again; if it names none, a request for one product refuses it, and a larger
///   one is asked again in halves until the refused product stands alone.
fn refusal(
    pending: &mut Pending,
    id: Option<u64>,
    native: Option<&str>,
    message: &str,
) -> Option<Refusal> {
    let id = id.or_else(|| pending.keys().next().copied())?;
    if let Some(n) = native {
        let refused = answered(pending, id, Some(n));
        return Some(Refusal {
            refused,
            again: Vec::new(),
        });
    }
    let (topics, subscribe, _) = pending.remove(&id)?;
    let (named, rest): (Vec<Topic>, Vec<Topic>) = topics
        .into_iter()
        .partition(|t| message_names(message, &t.native));
    if !named.is_empty() {
        let again = match rest.is_empty() {
            true => Vec::new(),
            false => vec![(rest, subscribe)],
        };
        return Some(Refusal {
            refused: named,
            again,
        });
    }
    let natives: BTreeSet<&str> = rest.iter().map(|t| t.native.as_str()).collect();
    if natives.len() <= 1 || !subscribe {
        return Some(Refusal {
            refused: if subscribe { rest } else { Vec::new() },
            again: Vec::new(),
        });
    }
    let half: BTreeSet<String> = natives
        .iter()
        .take(natives.len() / 2)
        .map(|n| n.to_string())
        .collect();
    let (first, second): (Vec<Topic>, Vec<Topic>) =
        rest.into_iter().partition(|t| half.contains(&t.native));
    Some(Refusal {
        refused: Vec::new(),
        again: vec![(first, subscribe), (second, subscribe)],
    })
}

/// Whether `message` names the product `native` as a word of its own (`XRP-USD` in
/// "XRP-USD is not a valid product", not in "XRP-USDC …").
fn message_names(message: &str, native: &str) -> bool {
    message
        .split(|c: char| {
            c.is_whitespace() || matches!(c, ',' | ':' | '"' | '\'' | '(' | ')' | '[' | ']')
        })
        .any(|word| word == native)
}

/// What a message at `at` on a Kraken connection proves for its pairs (each subscription
/// acknowledged before it, so its snapshot, if any, came first): a candle whose interval ended [`CLOSE_MARGIN_MS`] before it
/// without a later one is closed (the pair did not trade since), and the series is live.
fn quiet_pairs(
    subs: &mut BTreeMap<Topic, TopicState>,
    wanted: &Wanted,
    at: Millis,
) -> Vec<Received> {
    let mut received = Vec::new();
    for (topic, state) in subs.iter_mut() {
        let Some(series) = wanted.get(topic) else {
            continue;
        };
        if !state.acked || state.acked_ms >= at {
            continue;
        }
        let step = topic.interval.millis();
        if let Some(mut ended) = state
            .last
            .take_if(|c| !c.closed && c.t + step + CLOSE_MARGIN_MS <= at)
        {
            ended.closed = true;
            state.last = Some(ended.clone());
            received.push(Received::Candle {
                series: series.clone(),
                candle: ended,
                confirmed: true,
                record: false,
                event_ms: None,
            });
        }
        received.push(Received::Alive {
            series: series.clone(),
            at,
        });
    }
    received
}

/// What a builder's output means for the rest of the role.
fn built(series: &SeriesKey, outs: Vec<Out>, event_ms: Option<Millis>) -> Vec<Received> {
    let mut received = Vec::with_capacity(outs.len() + 1);
    for o in outs {
        match o {
            Out::Update(candle) => received.push(Received::Candle {
                series: series.clone(),
                candle,
                confirmed: false,
                record: false,
                event_ms,
            }),
            // Covered by the stream (every trade of the interval was seen, by contiguous
            // ids; the first interval of a subscription is REST's forming candle and the
            // trades after it), published `confirmed:false` until REST's record confirms it.
            Out::Ended(candle) => received.push(Received::Candle {
                series: series.clone(),
                candle,
                confirmed: true,
                record: false,
                event_ms,
            }),
            Out::Quiet { from, to } => received.push(Received::Quiet {
                series: series.clone(),
                from,
                to,
            }),
            Out::Unbuilt(t) => received.push(Received::Confirm {
                series: series.clone(),
                t,
            }),
        }
    }
    received
}

#[cfg(test)]
mod tests {
    use super::*;
    use candlepipe_core::Interval;

    fn topics(natives: &[&str]) -> Vec<Topic> {
        natives
            .iter()
            .map(|n| Topic {
                native: n.to_string(),
                interval: Interval::M1,
            })
            .collect()
    }

    fn pending_with(id: u64, natives: &[&str]) -> Pending {
        BTreeMap::from([(id, (topics(natives), true, Instant::now()))])
    }

    #[test]
    fn a_kraken_refusal_of_one_symbol_leaves_the_others_waiting_for_their_own_answers() {
        let mut pending = pending_with(3, &["BTC/USD", "XRP/USD", "ETH/USD"]);
        let r = refusal(
            &mut pending,
            Some(3),
            Some("XRP/USD"),
            "Currency pair not supported",
        )
        .unwrap();
        assert_eq!(r.refused, topics(&["XRP/USD"]));
        assert!(r.again.is_empty());
        assert_eq!(pending[&3].0, topics(&["BTC/USD", "ETH/USD"]));
        // Each of the others is acknowledged on its own.
        assert_eq!(
            answered(&mut pending, 3, Some("ETH/USD")),
            topics(&["ETH/USD"])
        );
        assert_eq!(
            answered(&mut pending, 3, Some("BTC/USD")),
            topics(&["BTC/USD"])
        );
        assert!(pending.is_empty());
    }

    #[test]
    fn a_coinbase_error_refuses_the_product_it_names_and_asks_again_for_the_others() {
        let mut pending = pending_with(7, &["BTC-USD", "XRP-USD", "XRP-USDC"]);
        let r = refusal(
            &mut pending,
            None,
            None,
            "Failed to subscribe: XRP-USD is not a valid product",
        )
        .unwrap();
        assert_eq!(r.refused, topics(&["XRP-USD"]));
        assert_eq!(r.again, vec![(topics(&["BTC-USD", "XRP-USDC"]), true)]);
        assert!(
            pending.is_empty(),
            "no request waits for an ack that cannot come"
        );
    }

    #[test]
    fn a_refusal_naming_no_product_is_narrowed_down_by_halves() {
        let mut pending = pending_with(9, &["A-USD", "B-USD", "C-USD", "D-USD"]);
        let r = refusal(&mut pending, None, None, "Failed to subscribe").unwrap();
        assert!(r.refused.is_empty());
        assert_eq!(
            r.again,
            vec![
                (topics(&["A-USD", "B-USD"]), true),
                (topics(&["C-USD", "D-USD"]), true)
            ]
        );
        let mut pending = pending_with(10, &["C-USD"]);
        let r = refusal(&mut pending, None, None, "Failed to subscribe").unwrap();
        assert_eq!(r.refused, topics(&["C-USD"]));
        assert!(refusal(&mut pending, None, None, "late").is_none());
    }
}
