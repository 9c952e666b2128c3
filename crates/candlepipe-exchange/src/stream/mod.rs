//! The exchanges' public market-data WebSockets: the messages to subscribe with and what
//! the exchanges send back, parsed exactly ([`binance`], [`kraken`], [`coinbase`]), and one connection
//! ([`socket`]). Which series to stream, and what to do with the candles, is the `stream`
//! role's business (`candlepipe-worker`).

pub mod binance;
pub mod coinbase;
pub mod kraken;
pub mod socket;

use candlepipe_core::{Candle, Exchange, Interval, Millis};
use rust_decimal::Decimal;

use crate::FetchError;

/// One subscription: a series as the exchange's stream names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic {
    /// The stream's name for the symbol (Binance `BTCUSDT`, Kraken v2 `BTC/USD`).
    pub native: String,
    pub interval: Interval,
}

/// What one message from an exchange says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A candle's values now. `closed`: the exchange says they are final.
    Candle {
        topic: Topic,
        candle: Candle,
        /// When the exchange made the message, when it says.
        event_ms: Option<Millis>,
    },
    /// One trade (Coinbase `match`): candles are built from these.
    Trade {
        native: String,
        id: u64,
        t: Millis,
        price: Decimal,
        size: Decimal,
    },
    /// The product's last trade before the subscription (Coinbase `last_match`): already in
    /// REST's candles; where the trade ids continue from.
    LastTrade { native: String, id: u64 },
    /// A product's own sign of life (Coinbase `heartbeat`), with its last trade id when the
    /// exchange says it.
    Alive {
        native: String,
        last_trade_id: Option<u64>,
    },
    /// These are all the products subscribed now (Coinbase's cumulative ack, without id).
    Subscribed { natives: Vec<String> },
    /// A request of ours (by id) was acknowledged: for the one symbol `native` where the
    /// exchange answers each symbol on its own (Kraken), else the whole request.
    Ack { id: u64, native: Option<String> },
    /// A request of ours was refused: for the one symbol `native` where the exchange
    /// answers each symbol on its own (Kraken); else the whole request, whose `message` may
    /// name the product at fault (Coinbase's `error` carries no id).
    Refused {
        id: Option<u64>,
        native: Option<String>,
        message: String,
    },
    /// The exchange's own sign of life (not a WebSocket ping).
    Heartbeat,
    /// The exchange will close this connection soon: replace it.
    Shutdown,
    /// Nothing the stream role uses (status, other channels).
    Other,
}

/// The stream's name for a symbol whose REST id (from the market list) is `rest_native`.
pub fn topic_native(ex: Exchange, symbol: &candlepipe_core::Symbol, rest_native: &str) -> String {
    match ex {
        Exchange::Binance => rest_native.to_string(),
        // WebSocket v2 names pairs as BTC/USD (not the REST XBTUSD).
        Exchange::Kraken => symbol.as_str().to_string(),
        Exchange::Coinbase => rest_native.to_string(),
    }
}

/// The URL to connect to, from the configured base.
pub fn url(ex: Exchange, base: &str) -> String {
    match ex {
        Exchange::Binance => format!("{}/stream", base.trim_end_matches('/')),
        Exchange::Kraken | Exchange::Coinbase => base.to_string(),
    }
}

/// Most topics one connection holds.
pub fn topics_per_connection(ex: Exchange) -> usize {
    match ex {
        Exchange::Binance => binance::TOPICS_PER_CONNECTION,
        Exchange::Kraken => kraken::TOPICS_PER_CONNECTION,
        Exchange::Coinbase => coinbase::TOPICS_PER_CONNECTION,
    }
}

/// One subscribe or unsubscribe message and the topics it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub text: String,
    pub topics: Vec<Topic>,
}

/// The messages that subscribe `topics` (or unsubscribe, with `subscribe` false), the
/// first with id `first_id` and one more per message.
pub fn requests(ex: Exchange, topics: &[Topic], subscribe: bool, first_id: u64) -> Vec<Request> {
    match ex {
        Exchange::Binance => topics
            .chunks(binance::TOPICS_PER_MESSAGE)
            .enumerate()
            .map(|(i, chunk)| {
                let id = first_id + i as u64;
                Request {
                    id,
                    text: binance::request(chunk, subscribe, id),
                    topics: chunk.to_vec(),
                }
            })
            .collect(),
        Exchange::Kraken => kraken::requests(topics, subscribe, first_id),
        Exchange::Coinbase => coinbase::requests(topics, subscribe, first_id),
    }
}

/// Parses one text message.
pub fn parse(ex: Exchange, text: &str) -> Result<Vec<Event>, FetchError> {
    match ex {
        Exchange::Binance => binance::parse(text),
        Exchange::Kraken => kraken::parse(text),
        Exchange::Coinbase => coinbase::parse(text),
    }
}

/// How an exchange's stream gives candles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Candles that say when they are final (Binance's `x`).
    ClosedFlag,
    /// Candles without a close signal (Kraken): one closes when a later one of its series
    /// arrives on the connection.
    NextCloses,
    /// Trades only (Coinbase): candlepipe builds the candles; REST confirms closed ones.
    Trades,
}

pub fn kind(ex: Exchange) -> Kind {
    match ex {
        Exchange::Binance => Kind::ClosedFlag,
        Exchange::Kraken => Kind::NextCloses,
        Exchange::Coinbase => Kind::Trades,
    }
}
