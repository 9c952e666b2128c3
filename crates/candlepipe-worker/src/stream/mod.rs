//! The `stream` role: keeps wanted series live from the exchanges' WebSockets.
//!
//! - `candlepipe.candles.watch` / `unwatch` (queue group `stream`) mark a series wanted for
//!   a while ([`crate::cluster::leases`]); ingest marks the series it is asked for often.
//! - Every [`leases::PERIOD`] each stream process renews its leases and takes free ones:
//!   exactly one process holds each series, and another takes over when it dies.
//! - Per exchange, the held series are spread over connections ([`link`]), each holding
//!   up to the exchange's limit of subscriptions.
//! - What arrives is published on the live subjects and merged into the store ([`sink`]);
//!   a break becomes a REST back-fill on the bulk lane, and closes that are not the
//!   exchange's record are confirmed by REST in batches ([`confirmations`]).
//!
//! Owns the exchanges' WebSockets and the trades-to-candles building ([`trades`]).
//! - NATS: answers `<prefix>.candles.watch` / `unwatch` on inboxes only; publishes
//!   `<prefix>.candles.live.<series>` (and `.msgpack`); hears `<prefix>.candles.ready.>`;
//!   publishes bulk fill jobs (`<prefix>.jobs.fill.<exchange>.bulk`) for breaks.
//! - Redis: `cp:stream:{live}:*` (wants and holds series, [`crate::cluster::leases`]);
//!   merges streamed candles into the series (`<prefix>s:{…}`) under the lease's fence.

mod confirmations;
mod link;
mod published;
mod sink;
mod trades;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_nats::Message;
use bytes::Bytes;
use candlepipe_core::request::ErrorReply;
use candlepipe_core::watch::{WatchReply, WatchRequest};
use candlepipe_core::{Encoding, ErrorCode, Exchange, SeriesKey, WireError};
use candlepipe_exchange::stream::{self, Topic};
use candlepipe_exchange::ExchangeClient;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use self::confirmations::Pace;
use self::link::{Attempts, Link, Seeder, Wanted};
use crate::cluster::leases::{self, Leases};
use crate::context::Context;
use crate::error::BoxError;
use crate::requests::answer::{answer_requests, encoding_of, reply_headers};

/// Where the exchanges' streams are and how the role behaves.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    pub binance_ws_url: String,
    pub kraken_ws_url: String,
    pub coinbase_ws_url: String,
    /// A connection or subscription without a real message this long is silent.
    pub silence: Duration,
    /// How long a watch lasts unless renewed.
    pub watch_ttl: Duration,
    /// Series one stream process holds at most.
    pub max_series: usize,
    /// How REST confirms each exchange's stream closes that are not its record (Kraken,
    /// Coinbase); an exchange without one is not confirmed (Binance's `x` is final).
    pub confirm_paces: HashMap<Exchange, Pace>,
}

impl LiveSettings {
    /// The configured base of `ex`'s WebSocket URL ([`candlepipe_exchange::stream::url`]
    /// makes the one connected to).
    pub fn url(&self, ex: Exchange) -> &str {
        match ex {
            Exchange::Binance => &self.binance_ws_url,
            Exchange::Kraken => &self.kraken_ws_url,
            Exchange::Coinbase => &self.coinbase_ws_url,
        }
    }
}

const QUEUE_GROUP: &str = "stream";
/// Exchanges whose streams candlepipe holds.
const STREAMED: [Exchange; 3] = [Exchange::Binance, Exchange::Kraken, Exchange::Coinbase];

pub async fn run(
    ctx: Context,
    live: LiveSettings,
    exchange: ExchangeClient,
    shutdown: CancellationToken,
) -> Result<(), BoxError> {
    let set = ctx.settings.clone();
    let live = Arc::new(live);
    let leases = Leases::new(ctx.redis.clone(), &set.redis_prefix);
    let holder = format!(
        "{}-{}-{:x}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "stream".into()),
        std::process::id(),
        rand::random::<u32>()
    )
    .replace('|', "-");

    let mut answering = Vec::new();
    for subject in [set.subjects.candles_watch(), set.subjects.candles_unwatch()] {
        let requests = ctx
            .nats
            .queue_subscribe(subject, QUEUE_GROUP.into())
            .await?;
        let (ctx, leases, stop) = (ctx.clone(), leases.clone(), shutdown.clone());
        let watch_ttl = live.watch_ttl;
        answering.push(tokio::spawn(async move {
            answer_requests(requests, stop, |msg| {
                let (ctx, leases) = (ctx.clone(), leases.clone());
                async move { answer(&ctx, &leases, watch_ttl, msg).await }
            })
            .await
        }));
    }

    let (received_tx, received_rx) = mpsc::channel(10_000);
    let taken_tx = received_tx.clone();
    let msgpack = sink::Msgpack::default();
    let held = leases::Held::default();
    let sink = tokio::spawn(sink::run(
        ctx.clone(),
        live.confirm_paces.clone(),
        received_rx,
        msgpack.clone(),
        held.clone(),
    ));
    let mut feeds: BTreeMap<Exchange, Feed> = STREAMED
        .into_iter()
        .map(|ex| {
            let feed = Feed {
                link: Link {
                    exchange: ex,
                    url: stream::url(ex, live.url(ex)),
                    silence: live.silence,
                    attempts: Attempts::new(300, Duration::from_secs(300)),
                    seeder: Seeder {
                        exchange: exchange.clone(),
                    },
                },
                links: Vec::new(),
                assigned: BTreeMap::new(),
                out: received_tx.clone(),
                shutdown: shutdown.clone(),
            };
            (ex, feed)
        })
        .collect();
    // Fills announce what they wrote: REST's record corrects what was published.
    let fills = ctx.nats.subscribe(set.subjects.ready_all()).await?;
    let following = tokio::spawn(follow_fills(
        fills,
        held.clone(),
        received_tx.clone(),
        shutdown.clone(),
    ));
    drop(received_tx);
    ctx.markets.read_all().await;
    // Ready means the server routes watches here: the subscriptions are flushed.
    ctx.nats.flush().await?;
    tracing::info!(holder, "stream ready");

    let natives = Natives::default();
    let mut held_before: BTreeSet<SeriesKey> = BTreeSet::new();
    loop {
        // Nothing in this loop waits on anything but Redis: a renewal late past the lease's
        // life would let another process take the series while this one still streams it.
        match leases.hold(&holder, live.max_series).await {
            Ok(now_held) => {
                held.set(now_held.iter().cloned());
                for (series, lease) in now_held.iter().filter(|(s, _)| !held_before.contains(s)) {
                    tracing::info!(series = %series, fence = lease.fence, "streaming");
                    let _ = taken_tx
                        .send(Received::Taken {
                            series: series.clone(),
                        })
                        .await;
                }
                held_before = now_held.iter().map(|(s, _)| s.clone()).collect();
                // Native names not known yet are looked up beside the loop, waited for a
                // moment at most (a market list may take long to load): a series whose
                // name is not in by then starts at a later period.
                let lookups: Vec<_> = now_held
                    .iter()
                    .filter_map(|(series, _)| natives.look_up(&ctx, &exchange, series))
                    .collect();
                if !lookups.is_empty() {
                    let _ =
                        tokio::time::timeout(LOOKUP_WAIT, futures::future::join_all(lookups)).await;
                }
                let mut wanted: BTreeMap<Exchange, Wanted> = BTreeMap::new();
                for (series, _) in now_held {
                    let Some(native) = natives.get(&series) else {
                        continue;
                    };
                    let topic = Topic {
                        native,
                        interval: series.interval,
                    };
                    wanted
                        .entry(series.exchange)
                        .or_default()
                        .insert(topic, series);
                }
                for (ex, feed) in feeds.iter_mut() {
                    feed.set(wanted.remove(ex).unwrap_or_default());
                }
                match leases.msgpack_wanted().await {
                    Ok(series) => msgpack.set(series),
                    Err(e) => {
                        tracing::warn!(error = %e, "MessagePack watches not read; keeping the current ones")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "stream leases not renewed; keeping the current series")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(leases::PERIOD) => {}
        }
    }
    if let Err(e) = leases.release(&holder).await {
        tracing::warn!(error = %e, "stream leases not released; they lapse by themselves");
    }
    drop(feeds);
    drop(taken_tx);
    let _ = following.await;
    for a in answering {
        let _ = a.await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), sink).await;
    tracing::info!("stream drained");
    Ok(())
}

/// Hands the sink each fill of a series held here (`candlepipe.candles.ready.…`), in the
/// series' order after what the stream wrote before it.
async fn follow_fills(
    mut fills: async_nats::Subscriber,
    held: leases::Held,
    out: mpsc::Sender<Received>,
    shutdown: CancellationToken,
) {
    use futures::StreamExt;
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return,
            msg = fills.next() => match msg {
                Some(msg) => msg,
                None => return,
            },
        };
        let Ok(ev) = serde_json::from_slice::<candlepipe_core::ReadyEvent>(&msg.payload) else {
            continue;
        };
        if ev.error.is_some() || held.get(&ev.series).is_none() {
            continue;
        }
        if out
            .send(Received::Ready { series: ev.series })
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The stream's names of the series held (from the market lists), looked up in the
/// background so that the lease loop never waits for a market list.
#[derive(Clone, Default)]
struct Natives {
    known: Arc<std::sync::Mutex<HashMap<SeriesKey, String>>>,
    looking: Arc<std::sync::Mutex<BTreeSet<SeriesKey>>>,
}

/// How long a renewal waits for native names it started looking up.
const LOOKUP_WAIT: Duration = Duration::from_millis(500);

impl Natives {
    fn get(&self, series: &SeriesKey) -> Option<String> {
        self.known.lock().ok()?.get(series).cloned()
    }

    /// Starts looking up `series`' name unless it is known or being looked up.
    fn look_up(
        &self,
        ctx: &Context,
        exchange: &ExchangeClient,
        series: &SeriesKey,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.known.lock().ok()?.contains_key(series)
            || !self.looking.lock().ok()?.insert(series.clone())
        {
            return None;
        }
        let (this, ctx, exchange, series) =
            (self.clone(), ctx.clone(), exchange.clone(), series.clone());
        Some(tokio::spawn(async move {
            match ctx.markets.native(&series, &exchange).await {
                Ok(rest) => {
                    let n = stream::topic_native(series.exchange, &series.symbol, &rest);
                    if let Ok(mut known) = this.known.lock() {
                        known.insert(series.clone(), n);
                    }
                }
                Err(e) => {
                    tracing::warn!(series = %series, error = %e, "not streamed yet: no native name")
                }
            }
            if let Ok(mut looking) = this.looking.lock() {
                looking.remove(&series);
            }
        }))
    }
}

/// One exchange's connections and which topics each holds.
struct Feed {
    link: Link,
    links: Vec<watch::Sender<Wanted>>,
    assigned: BTreeMap<Topic, usize>,
    out: mpsc::Sender<Received>,
    shutdown: CancellationToken,
}

use self::link::Received;

impl Feed {
    /// Gives each connection its share of `wanted`: topics stay where they are, new ones go
    /// to the first connection with room, or a new one.
    fn set(&mut self, wanted: Wanted) {
        let per = stream::topics_per_connection(self.link.exchange);
        self.assigned.retain(|t, _| wanted.contains_key(t));
        let mut counts = vec![0usize; self.links.len()];
        for &i in self.assigned.values() {
            counts[i] += 1;
        }
        for topic in wanted.keys() {
            if self.assigned.contains_key(topic) {
                continue;
            }
            let i = match counts.iter().position(|&c| c < per) {
                Some(i) => i,
                None => {
                    self.spawn_link();
                    counts.push(0);
                    counts.len() - 1
                }
            };
            counts[i] += 1;
            self.assigned.insert(topic.clone(), i);
        }
        for (i, link) in self.links.iter().enumerate() {
            let share: Wanted = wanted
                .iter()
                .filter(|(t, _)| self.assigned.get(*t) == Some(&i))
                .map(|(t, s)| (t.clone(), s.clone()))
                .collect();
            link.send_if_modified(|w| {
                let changed = *w != share;
                if changed {
                    *w = share;
                }
                changed
            });
        }
    }

    fn spawn_link(&mut self) {
        let (tx, rx) = watch::channel(Wanted::new());
        let link = Link {
            exchange: self.link.exchange,
            url: self.link.url.clone(),
            silence: self.link.silence,
            attempts: Arc::clone(&self.link.attempts),
            seeder: self.link.seeder.clone(),
        };
        tokio::spawn(link.run(rx, self.out.clone(), self.shutdown.clone()));
        self.links.push(tx);
    }
}

/// Answers a watch or unwatch request.
async fn answer(ctx: &Context, leases: &Leases, watch_ttl: Duration, msg: Message) {
    let Some(reply_to) = msg.reply.clone() else {
        return;
    };
    if !crate::requests::replies::permitted(&ctx.settings.replies, &reply_to, &msg.subject) {
        return;
    }
    let enc = encoding_of(msg.headers.as_ref());
    let unwatch = msg.subject.as_str() == ctx.settings.subjects.candles_unwatch();
    let result = async {
        let req: WatchRequest = enc.decode_request(&msg.payload)?;
        let series = req.validate()?;
        if unwatch {
            leases.unwant(&series).await.map_err(unavailable)?;
        } else {
            ctx.markets.check(&series).await?;
            leases
                .want(&series, watch_ttl, enc == Encoding::Msgpack)
                .await
                .map_err(unavailable)?;
        }
        let subjects = &ctx.settings.subjects;
        Ok::<_, WireError>(WatchReply {
            ok: true,
            subject: match enc {
                Encoding::Json => subjects.live(&series),
                Encoding::Msgpack => subjects.live_msgpack(&series),
            },
            expires_in_ms: if unwatch {
                0
            } else {
                watch_ttl.as_millis() as u64
            },
        })
    }
    .await;
    let body = match result {
        Ok(reply) => enc.encode(&reply),
        Err(e) => enc.encode(&ErrorReply::new(e)),
    };
    let sent = ctx
        .nats
        .publish_with_headers(reply_to, reply_headers(enc), Bytes::from(body))
        .await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, "watch reply not published");
    }
}

fn unavailable(e: redis::RedisError) -> WireError {
    WireError::new(
        ErrorCode::Unavailable,
        format!("the watch list in Redis is unavailable: {e}"),
    )
}
