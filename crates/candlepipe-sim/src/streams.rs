//! Simulated market-data WebSockets, consistent with the REST candles (the same
//! [`Series`]): Binance's combined kline stream (`/stream`: SUBSCRIBE/UNSUBSCRIBE by id,
//! `x:true` closing updates, `serverShutdown`) and Kraken's WebSocket v2 `ohlc` channel
//! (`/v2`: status on connect, a heartbeat a second while the connection is otherwise
//! silent, acks per symbol, a snapshot, then
//! updates keyed by `interval_begin`, numbers as JSON numbers) and Coinbase's Exchange feed
//! (`/`: `matches` and `heartbeat`, a cumulative `subscriptions` ack, a `last_match` per
//! product, then every trade of [`Series::trades`] with contiguous `trade_id`s). Each
//! subscription gets an update every `stream_tick_ms`; `stream_fault` breaks the
//! connections open when it is set.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use candlepipe_core::{now_ms, Exchange, Interval, Millis};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::market::{is_listed, split_concat, Habits, Series, SimCandle, SimTrade};
use crate::{Sim, StreamFault};

pub(crate) async fn binance(ws: WebSocketUpgrade, State(sim): State<Sim>) -> Response {
    ws.on_upgrade(move |socket| serve(socket, sim, Klines::new(Exchange::Binance)))
}

pub(crate) async fn kraken(ws: WebSocketUpgrade, State(sim): State<Sim>) -> Response {
    ws.on_upgrade(move |socket| serve(socket, sim, Klines::new(Exchange::Kraken)))
}

pub(crate) async fn coinbase(ws: WebSocketUpgrade, State(sim): State<Sim>) -> Response {
    ws.on_upgrade(move |socket| serve(socket, sim, Matches::default()))
}

/// What one exchange's feed says, and when.
trait Feed: Send {
    fn exchange(&self) -> Exchange;
    /// Messages on connect.
    fn greeting(&self) -> Vec<String> {
        Vec::new()
    }
    /// The answers to a client's message.
    fn request(&mut self, text: &str, sim: &Sim) -> Vec<String>;
    /// What is due at `now` for the subscriptions in `slice` (each gets its turn once every
    /// `stream_tick_ms`).
    fn updates(
        &mut self,
        now: Millis,
        habits: Habits,
        fault: Option<StreamFault>,
        slice: Slice,
    ) -> Vec<String>;
    /// Heartbeats only when nothing else was sent for a second (Kraken's v2: "when there
    /// are no other messages being sent"), not every second whatever else is sent.
    fn heartbeat_when_silent(&self) -> bool {
        false
    }

    /// What is due every second (heartbeats).
    fn heartbeat(&self, _now: Millis) -> Vec<String> {
        Vec::new()
    }
    /// The notice that the server will close the connection, if the exchange sends one.
    fn shutdown_notice(&self, _now: Millis) -> Option<String> {
        None
    }
}

/// One subscription: the series and the newest open time it was sent.
struct Sub {
    series: Series,
    /// The symbol as the exchange's messages name it.
    name: String,
    interval: Interval,
    last_t: Option<Millis>,
    /// Binance: whether the closing update of `last_t`'s predecessor is still to send.
    close_due: Option<Millis>,
}

fn rfc3339_nanos(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map(|s| match s.strip_suffix('Z') {
            // Kraken writes 9 fractional digits.
            Some(body) if !body.contains('.') => format!("{body}.000000000Z"),
            Some(body) => {
                let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
                format!("{whole}.{frac:0<9}Z")
            }
            None => s,
        })
        .unwrap_or_default()
}

async fn send(socket: &mut WebSocket, text: String) -> bool {
    socket.send(Message::Text(text.into())).await.is_ok()
}

/// Which subscriptions' turn it is: the `k`th of `of` equal shares. An exchange's messages
/// come spread over time, not all subscriptions' at one instant: each tick is cut in
/// [`SLICES`] turns.
#[derive(Debug, Clone, Copy)]
struct Slice {
    k: usize,
    of: usize,
}

impl Slice {
    fn has(self, i: usize) -> bool {
        i % self.of == self.k
    }
}

const SLICES: usize = 10;

fn slice_interval(tick_ms: u64) -> tokio::time::Interval {
    tokio::time::interval(Duration::from_millis((tick_ms / SLICES as u64).max(1)))
}

async fn serve(mut socket: WebSocket, sim: Sim, mut feed: impl Feed) {
    let target = feed.exchange().as_str();
    let opened = now_ms();
    sim.count_stream(target, 1, 0, 0);
    for m in feed.greeting() {
        if !send(&mut socket, m).await {
            return;
        }
    }
    let (mut tick_ms, _) = sim.stream_settings(target, opened);
    let mut tick = slice_interval(tick_ms);
    let mut slice = Slice { k: 0, of: SLICES };
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    let mut last_sent = tokio::time::Instant::now();
    let mut shutdown_at: Option<tokio::time::Instant> = None;
    loop {
        let out = tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => feed.request(&text, &sim),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
            _ = tick.tick() => {
                let (now_tick_ms, fault) = sim.stream_settings(target, opened);
                if now_tick_ms != tick_ms {
                    // A new `stream_tick_ms` holds for open connections too.
                    tick_ms = now_tick_ms;
                    tick = slice_interval(tick_ms);
                }
                slice.k = (slice.k + 1) % slice.of;
                let now = now_ms();
                let mut out = Vec::new();
                match fault {
                    Some(StreamFault::Drop) => {
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    }
                    Some(StreamFault::Silent) => continue,
                    Some(StreamFault::ServerShutdown) if shutdown_at.is_none() => {
                        if let Some(notice) = feed.shutdown_notice(now) {
                            out.push(notice);
                            shutdown_at = Some(tokio::time::Instant::now() + Duration::from_secs(3));
                        }
                    }
                    _ => {}
                }
                if shutdown_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                let updates = feed.updates(now, sim.habits(target), fault, slice);
                sim.count_stream(target, 0, 0, updates.len() as u64);
                out.extend(updates);
                out
            }
            _ = heartbeat.tick() => {
                if sim.stream_settings(target, opened).1 == Some(StreamFault::Silent) {
                    continue;
                }
                if feed.heartbeat_when_silent() && last_sent.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                feed.heartbeat(now_ms())
            }
        };
        for m in out {
            if !send(&mut socket, m).await {
                return;
            }
            last_sent = tokio::time::Instant::now();
        }
    }
}

/// Binance's kline streams and Kraken's `ohlc` channel: one candle series a subscription.
struct Klines {
    ex: Exchange,
    subs: BTreeMap<String, Sub>,
}

impl Klines {
    fn new(ex: Exchange) -> Self {
        Klines {
            ex,
            subs: BTreeMap::new(),
        }
    }
}

impl Feed for Klines {
    fn exchange(&self) -> Exchange {
        self.ex
    }

    fn greeting(&self) -> Vec<String> {
        match self.ex {
            Exchange::Kraken => vec![json!({"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":12393906104898154338u64,"system":"online","version":"2.0.4"}]}).to_string()],
            _ => Vec::new(),
        }
    }

    fn request(&mut self, text: &str, sim: &Sim) -> Vec<String> {
        match self.ex {
            Exchange::Binance => binance_request(text, &mut self.subs, sim),
            _ => kraken_request(text, &mut self.subs, sim),
        }
    }

    fn updates(
        &mut self,
        now: Millis,
        habits: Habits,
        fault: Option<StreamFault>,
        slice: Slice,
    ) -> Vec<String> {
        let skip_close = fault == Some(StreamFault::SkipClose);
        let ex = self.ex;
        self.subs
            .values_mut()
            .enumerate()
            .filter(|(i, _)| slice.has(*i))
            .flat_map(|(_, sub)| match ex {
                Exchange::Binance => binance_updates(sub, now, habits, skip_close),
                _ => kraken_updates(sub, now, habits),
            })
            .collect()
    }

    fn heartbeat_when_silent(&self) -> bool {
        self.ex == Exchange::Kraken
    }

    fn heartbeat(&self, _now: Millis) -> Vec<String> {
        match self.ex {
            Exchange::Kraken => vec![json!({"channel":"heartbeat"}).to_string()],
            _ => Vec::new(),
        }
    }

    fn shutdown_notice(&self, now: Millis) -> Option<String> {
        Some(json!({"stream":"!serverShutdown","data":{"e":"serverShutdown","E":now}}).to_string())
    }
}

fn binance_request(text: &str, subs: &mut BTreeMap<String, Sub>, sim: &Sim) -> Vec<String> {
    let Ok(req) = serde_json::from_str::<Value>(text) else {
        return vec![json!({"code":3,"msg":"Invalid JSON","id":null}).to_string()];
    };
    let id = req["id"].clone();
    let subscribe = match req["method"].as_str() {
        Some("SUBSCRIBE") => true,
        Some("UNSUBSCRIBE") => false,
        _ => return vec![json!({"code":2,"msg":"Invalid request","id":id}).to_string()],
    };
    let names: Vec<&str> = req["params"]
        .as_array()
        .map(|p| p.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for name in names {
        if !subscribe {
            subs.remove(name);
            continue;
        }
        let Some((symbol, iv)) = name.split_once("@kline_") else {
            continue;
        };
        let upper = symbol.to_ascii_uppercase();
        let (Some((base, quote)), Ok(interval)) = (split_concat(&upper), Interval::parse(iv))
        else {
            continue; // Binance acknowledges unknown streams and sends nothing on them.
        };
        sim.count_stream(Exchange::Binance.as_str(), 0, 1, 0);
        subs.entry(name.to_string()).or_insert(Sub {
            series: Series::new("binance", &base, &quote, interval.millis()),
            name: upper,
            interval,
            last_t: None,
            close_due: None,
        });
    }
    vec![json!({"result":null,"id":id}).to_string()]
}

fn kline(sub: &Sub, c: &SimCandle, closed: bool, now: Millis) -> String {
    let step = sub.interval.millis();
    let stream = format!("{}@kline_{}", sub.name.to_ascii_lowercase(), sub.interval);
    json!({"stream": stream, "data": {"e":"kline","E":now,"s":sub.name,"k":{
        "t":c.t,"T":c.t + step - 1,"s":sub.name,"i":sub.interval.as_str(),"f":1,"L":2,
        "o":c.o.to_string(),"c":c.c.to_string(),"h":c.h.to_string(),"l":c.l.to_string(),
        "v":c.v.to_string(),"n":c.trades,"x":closed,"q":SimCandle::binance_quote(c.quote).to_string(),
        "V":c.taker_base.to_string(),"Q":SimCandle::binance_quote(c.taker_quote).to_string(),"B":"0"}}})
    .to_string()
}

/// Binance sends the forming candle while it trades, and its closing update (`x:true`,
/// the final values) once after it ends (`late_ms` later with that habit).
fn binance_updates(sub: &mut Sub, now: Millis, habits: Habits, skip_close: bool) -> Vec<String> {
    let step = sub.interval.millis();
    let current = sub.interval.open_of(now);
    let mut out = Vec::new();
    if let Some(last) = sub.last_t.filter(|&t| t < current) {
        sub.close_due = Some(last);
    }
    if let Some(due) = sub.close_due {
        if now >= due + step + habits.late_ms {
            sub.close_due = None;
            if !skip_close && !sub.series.quiet(due, habits) {
                if let Some(c) = sub.series.candle(due, now) {
                    out.push(kline(sub, &c, true, now));
                }
            }
        }
    }
    if !sub.series.quiet(current, habits) {
        if let Some(c) = sub.series.candle(current, now) {
            out.push(kline(sub, &c, false, now));
        }
    }
    sub.last_t = Some(current);
    out
}

/// One `ohlc` row, written by hand: numbers keep the decimal's own text (trailing zeros
/// too, as Kraken's do), which a `serde_json::Value` would turn into floats.
fn kraken_row(sub: &Sub, c: &SimCandle) -> String {
    format!(
        "{{\"symbol\":\"{}\",\"open\":{},\"high\":{},\"low\":{},\"close\":{},\"trades\":{},\"volume\":{},\"vwap\":{},\"interval_begin\":\"{}\",\"interval\":{},\"timestamp\":\"{}\"}}",
        sub.name,
        c.o,
        c.h,
        c.l,
        c.c,
        c.trades,
        c.v,
        c.kraken_vwap(),
        rfc3339_nanos(c.t),
        sub.interval.minutes(),
        rfc3339_nanos(c.t + sub.interval.millis()),
    )
}

fn ohlc_message(kind: &str, now: Millis, rows: &[String]) -> String {
    format!(
        "{{\"channel\":\"ohlc\",\"type\":\"{kind}\",\"timestamp\":\"{}\",\"data\":[{}]}}",
        rfc3339_nanos(now),
        rows.join(",")
    )
}

fn kraken_request(text: &str, subs: &mut BTreeMap<String, Sub>, sim: &Sim) -> Vec<String> {
    let Ok(req) = serde_json::from_str::<Value>(text) else {
        return vec![
            json!({"error":"Malformed request","method":"unknown","success":false}).to_string(),
        ];
    };
    let method = req["method"].as_str().unwrap_or_default().to_string();
    let req_id = req["req_id"].clone();
    if method == "ping" {
        return vec![json!({"method":"pong","req_id":req_id}).to_string()];
    }
    let params = &req["params"];
    let minutes = params["interval"].as_i64().unwrap_or(1);
    let interval = Interval::ALL
        .into_iter()
        .find(|i| i.minutes() == minutes && Exchange::Kraken.serves(*i));
    let symbols: Vec<String> = params["symbol"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let now = now_ms();
    let stamp = rfc3339_nanos(now);
    let mut out = Vec::new();
    for symbol in symbols {
        let listed = symbol
            .split_once('/')
            .filter(|(b, q)| is_listed(b, q))
            .filter(|_| !sim.stream_refuses(Exchange::Kraken.as_str(), &symbol))
            .map(|(b, q)| (b.to_string(), q.to_string()));
        let (Some((base, quote)), Some(iv)) = (listed, interval) else {
            out.push(json!({"method":method,"req_id":req_id,"success":false,"error":"Currency pair not supported","symbol":symbol,"time_in":stamp,"time_out":stamp}).to_string());
            continue;
        };
        let key = format!("{symbol}|{}", iv.minutes());
        let ack = json!({"method":method,"req_id":req_id,"result":{"channel":"ohlc","interval":iv.minutes(),"snapshot":true,"symbol":symbol,"warnings":["timestamp is deprecated, use interval_begin"]},"success":true,"time_in":stamp,"time_out":stamp});
        out.push(ack.to_string());
        if method == "unsubscribe" {
            subs.remove(&key);
            continue;
        }
        if method != "subscribe" {
            continue;
        }
        sim.count_stream(Exchange::Kraken.as_str(), 0, 1, 0);
        let mut sub = Sub {
            series: Series::new("kraken", &base, &quote, iv.millis()),
            name: symbol.clone(),
            interval: iv,
            last_t: None,
            close_due: None,
        };
        let habits = sim.habits(Exchange::Kraken.as_str());
        let newest = iv.open_of(now - habits.late_ms);
        let rows: Vec<String> = (0..5)
            .rev()
            .map(|i| newest - i * iv.millis())
            .filter(|t| !sub.series.quiet(*t, habits))
            .filter_map(|t| sub.series.candle(t, now))
            .map(|c| kraken_row(&sub, &c))
            .collect();
        out.push(ohlc_message("snapshot", now, &rows));
        sub.last_t = Some(newest);
        subs.insert(key, sub);
    }
    out
}

/// Kraken sends its newest interval's candle while it trades (an update per trade: the
/// last one of an interval holds its final values, sent here as the interval ends); it
/// rolls over to the next `late_ms` after the boundary. Nothing says a candle closed.
fn kraken_updates(sub: &mut Sub, now: Millis, habits: Habits) -> Vec<String> {
    let newest = sub.interval.open_of(now - habits.late_ms);
    let mut out = Vec::new();
    if let Some(previous) = sub.last_t.filter(|&t| t < newest) {
        if !sub.series.quiet(previous, habits) {
            if let Some(c) = sub.series.candle(previous, now) {
                out.push(ohlc_message("update", now, &[kraken_row(sub, &c)]));
            }
        }
    }
    sub.last_t = Some(newest);
    if !sub.series.quiet(newest, habits) {
        if let Some(c) = sub.series.candle(newest, now) {
            out.push(ohlc_message("update", now, &[kraken_row(sub, &c)]));
        }
    }
    out
}

/// A product on the Coinbase feed: its 1-minute series (whose trades these are) and the
/// time up to which its trades were sent.
struct Product {
    series: Series,
    sent_to: Millis,
    matches: bool,
    heartbeat: bool,
}

/// How long `lose_trades` loses them (12 s: at least one trade of every product).
const LOSE_MS: Millis = 12_000;

/// Coinbase writes times with 6 fractional digits.
pub(crate) fn rfc3339_micros(ms: Millis) -> String {
    let nanos = rfc3339_nanos(ms);
    match nanos.split_once('.') {
        Some((whole, frac)) => format!("{whole}.{}Z", &frac[..6.min(frac.len())]),
        None => nanos,
    }
}

fn coinbase_trade(kind: &str, product: &str, tr: &SimTrade) -> String {
    // Real key order; `sequence` counts the product's whole feed, so it skips here.
    format!(
        "{{\"type\":\"{kind}\",\"trade_id\":{},\"maker_order_id\":\"{:016x}\",\"taker_order_id\":\"{:016x}\",\"side\":\"{}\",\"size\":\"{}\",\"price\":\"{}\",\"product_id\":\"{product}\",\"sequence\":{},\"time\":\"{}\"}}",
        tr.id,
        tr.id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        tr.id.wrapping_mul(0xBF58_476D_1CE4_E5B9),
        if tr.maker_sells { "sell" } else { "buy" },
        tr.size.normalize(),
        tr.price,
        tr.id * 7 + 3,
        rfc3339_micros(tr.t),
    )
}

fn coinbase_subscriptions(products: &BTreeMap<String, Product>) -> String {
    let names = |pick: fn(&Product) -> bool| -> Vec<&str> {
        products
            .iter()
            .filter(|(_, p)| pick(p))
            .map(|(id, _)| id.as_str())
            .collect()
    };
    json!({"type":"subscriptions","channels":[
        {"name":"heartbeat","product_ids":names(|p| p.heartbeat)},
        {"name":"matches","product_ids":names(|p| p.matches)},
    ]})
    .to_string()
}

/// A subscribe or unsubscribe: the ack lists every channel subscribed after it; each
/// product newly on `matches` gets its `last_match`.
fn coinbase_request(
    text: &str,
    products: &mut BTreeMap<String, Product>,
    sim: &Sim,
) -> Vec<String> {
    let Ok(req) = serde_json::from_str::<Value>(text) else {
        return vec![json!({"type":"error","message":"Malformed JSON"}).to_string()];
    };
    let subscribe = match req["type"].as_str() {
        Some("subscribe") => true,
        Some("unsubscribe") => false,
        _ => return vec![json!({"type":"error","message":"Failed to subscribe","reason":"type is not one of subscribe, unsubscribe"}).to_string()],
    };
    let ids: Vec<String> = req["product_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let channels: BTreeSet<String> = req["channels"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().or_else(|| c["name"].as_str()).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let listed = |id: &str| {
        id.split_once('-')
            .filter(|(b, q)| is_listed(b, q))
            .map(|(b, q)| (b.to_string(), q.to_string()))
    };
    let refused = |id: &str| sim.stream_refuses(Exchange::Coinbase.as_str(), id);
    if let Some(bad) = ids.iter().find(|id| listed(id).is_none() || refused(id)) {
        return vec![json!({"type":"error","message":"Failed to subscribe","reason":format!("{bad} is not a valid product")}).to_string()];
    }
    let now = now_ms();
    let mut last_matches = Vec::new();
    for id in ids {
        let Some((base, quote)) = listed(&id) else {
            continue;
        };
        let p = products.entry(id.clone()).or_insert_with(|| Product {
            series: Series::new("coinbase", &base, &quote, 60_000),
            sent_to: now,
            matches: false,
            heartbeat: false,
        });
        let had_matches = p.matches;
        if channels.contains("matches") {
            p.matches = subscribe;
        }
        if channels.contains("heartbeat") {
            p.heartbeat = subscribe;
        }
        if p.matches && !had_matches {
            sim.count_stream(Exchange::Coinbase.as_str(), 0, 1, 0);
            p.sent_to = now;
        }
        // Every subscribe to `matches` gets each product's `last_match`, also for a product
        // already subscribed (as Coinbase does): its trade is one seen before.
        if subscribe && channels.contains("matches") {
            if let Some(last) = p.series.last_trade(p.sent_to) {
                last_matches.push(coinbase_trade("last_match", &id, &last));
            }
        }
    }
    products.retain(|_, p| p.matches || p.heartbeat);
    let mut out = vec![coinbase_subscriptions(products)];
    out.extend(last_matches);
    out
}

/// Coinbase's Exchange feed: trades (`matches`) and heartbeats per product.
#[derive(Default)]
struct Matches {
    products: BTreeMap<String, Product>,
    /// `lose_trades`: the trades until then are not sent.
    lose_until: Option<Millis>,
}

impl Feed for Matches {
    fn exchange(&self) -> Exchange {
        Exchange::Coinbase
    }

    fn request(&mut self, text: &str, sim: &Sim) -> Vec<String> {
        coinbase_request(text, &mut self.products, sim)
    }

    fn updates(
        &mut self,
        now: Millis,
        habits: Habits,
        fault: Option<StreamFault>,
        slice: Slice,
    ) -> Vec<String> {
        if fault == Some(StreamFault::LoseTrades) && self.lose_until.is_none() {
            self.lose_until = Some(now + LOSE_MS);
        }
        let lose = self.lose_until.is_some_and(|until| now < until);
        let mut out = Vec::new();
        let due = self
            .products
            .iter_mut()
            .filter(|(_, p)| p.matches)
            .enumerate()
            .filter(|(i, _)| slice.has(*i))
            .map(|(_, product)| product);
        for (id, p) in due {
            let trades = p.series.trades(p.sent_to, now);
            p.sent_to = now;
            if lose {
                continue;
            }
            // Minutes without trades (the `quiet_one_in` habit) have none here either.
            out.extend(
                trades
                    .iter()
                    .filter(|tr| !p.series.quiet(tr.t - tr.t.rem_euclid(60_000), habits))
                    .map(|tr| match habits.stream_differs {
                        true => coinbase_trade(
                            "match",
                            id,
                            &SimTrade {
                                size: tr.size * rust_decimal::Decimal::TWO,
                                ..tr.clone()
                            },
                        ),
                        false => coinbase_trade("match", id, tr),
                    }),
            );
        }
        out
    }

    fn heartbeat(&self, now: Millis) -> Vec<String> {
        self.products
            .iter()
            .filter(|(_, p)| p.heartbeat)
            .map(|(id, p)| {
                let last = p.series.last_trade(p.sent_to.min(now)).map_or(0, |t| t.id);
                json!({"type":"heartbeat","last_trade_id":last,"product_id":id,"sequence":last * 7 + 5,"time":rfc3339_micros(now)}).to_string()
            })
            .collect()
    }
}
