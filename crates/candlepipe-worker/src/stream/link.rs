//! One WebSocket connection to an exchange, kept alive for the topics it is given: it
//! (re)connects with capped, fully jittered backoff, subscribes (at most one control message
//! every [`CONTROL_SPACING`], so Binance's 5 a second is never reached), checks that each
//! request is acknowledged, and that the connection and each subscription keep delivering
//! real messages (pings do not count). A silent subscription is subscribed again, a silent
//! connection replaced; on `serverShutdown` or at [`MAX_AGE`] a new connection is opened
//! before the old one is let go. After any break, what each series may have missed is
//! reported as a [`Received::Gap`], to be filled from REST.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use candlepipe_core::{Candle, Exchange, Millis, SeriesKey};
use candlepipe_exchange::stream::socket::{self, Message, Socket};
use candlepipe_exchange::stream::{self, Event, Topic};
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a link hands on.
#[derive(Debug)]
pub enum Received {
    /// A candle's values. `confirmed`: the exchange said it is final (Binance's `x`), or a
    /// later candle of the series came on the same connection (Kraken).
    Candle {
        series: SeriesKey,
        candle: Candle,
        confirmed: bool,
        event_ms: Option<Millis>,
    },
    /// The connection broke or was replaced: candles after `since` may have been missed.
    Gap { series: SeriesKey, since: Millis },
    /// This process just took the series (a new watch, or another holder's lease that
    /// lapsed): what the store lacks since its last candle may have been missed.
    Taken { series: SeriesKey },
}

/// The topics a link should hold, with the series each one feeds.
pub type Wanted = BTreeMap<Topic, SeriesKey>;

pub const CONTROL_SPACING: Duration = Duration::from_millis(250);
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
}

enum End {
    Shutdown,
    /// Open a new connection, then let this one go.
    Replace(Box<Socket>),
    Broken(&'static str),
}

struct TopicState {
    acked: bool,
    last_data: Instant,
    /// The last candle seen (Kraken: it closes when a later one comes).
    last: Option<Candle>,
    /// Binance: open times seen forming whose closing update has not come yet.
    unclosed: BTreeSet<Millis>,
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
        let opened = Instant::now();
        let mut subs: BTreeMap<Topic, TopicState> = BTreeMap::new();
        let mut refused: BTreeSet<Topic> = BTreeSet::new();
        // Requests waiting to be sent, and sent ones waiting for their ack.
        let mut outbox: VecDeque<(Vec<Topic>, bool)> = VecDeque::new();
        let mut pending: BTreeMap<u64, (Vec<Topic>, bool, Instant)> = BTreeMap::new();
        let mut next_id: u64 = 1;
        let mut last_message = Instant::now();
        let mut tick = tokio::time::interval(CONTROL_SPACING);
        let plan = |subs: &BTreeMap<Topic, TopicState>,
                    refused: &BTreeSet<Topic>,
                    wanted: &Wanted,
                    outbox: &mut VecDeque<(Vec<Topic>, bool)>| {
            let add: Vec<Topic> = wanted
                .keys()
                .filter(|t| !subs.contains_key(*t) && !refused.contains(*t))
                .cloned()
                .collect();
            let drop: Vec<Topic> = subs
                .keys()
                .filter(|t| !wanted.contains_key(*t))
                .cloned()
                .collect();
            outbox.retain(|(topics, _)| topics.iter().all(|t| wanted.contains_key(t)));
            if !drop.is_empty() {
                outbox.push_back((drop, false));
            }
            if !add.is_empty() {
                outbox.push_back((add, true));
            }
        };
        plan(&subs, &refused, &want.borrow_and_update(), &mut outbox);
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
                    plan(&subs, &refused, &wanted, &mut outbox);
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
                                state.acked = true;
                                state.last_data = Instant::now();
                                backoff.failures = 0;
                                let seen = last_seen.entry(topic.clone()).or_insert(candle.t);
                                *seen = (*seen).max(candle.t);
                                let mut received = Vec::with_capacity(2);
                                if stream::says_closed(ex) {
                                    if candle.closed {
                                        state.unclosed.remove(&candle.t);
                                    } else if state.unclosed.len() < 16 {
                                        state.unclosed.insert(candle.t);
                                    }
                                    received.push(Received::Candle {
                                        series,
                                        confirmed: candle.closed,
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
                                            event_ms,
                                        });
                                    }
                                    state.last = Some(candle.clone());
                                    if !superseded {
                                        received.push(Received::Candle {
                                            series,
                                            candle,
                                            confirmed: false,
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
                            Event::Ack { id } => {
                                if let Some((topics, _, _)) = pending.remove(&id) {
                                    for t in topics {
                                        if let Some(s) = subs.get_mut(&t) {
                                            s.acked = true;
                                        }
                                    }
                                }
                            }
                            Event::Refused { id, message } => {
                                let topics = id.and_then(|id| pending.remove(&id)).map(|p| p.0).unwrap_or_default();
                                tracing::warn!(exchange = %ex, ?topics, message, "stream subscription refused");
                                for t in topics {
                                    subs.remove(&t);
                                    refused.insert(t);
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
                                    subs.insert(t.clone(), TopicState { acked: false, last_data: now, last: None, unclosed: BTreeSet::new() });
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
                    // A subscription silent while its connection talks: subscribe it again.
                    let silent: Vec<Topic> = subs
                        .iter()
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
                    // A closing update that never came: REST has the final candle.
                    let now_ms = candlepipe_core::now_ms();
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
