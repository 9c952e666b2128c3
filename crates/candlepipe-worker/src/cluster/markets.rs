//! Which symbols each exchange lists, shared by the cluster, so that no exchange call is spent
//! on a symbol it does not have.
//!
//! Fill workers load each exchange's market list (within its budget, taking its turn in
//! order: live work depends on it) when it is missing or older than the refresh period,
//! one worker at a time (a Redis lock), and keep it signed in Redis; every process holds the lists in memory and follows Redis.
//! Ingest answers a symbol the list lacks with `unknown_symbol` at once. Without a list
//! (not loaded yet, or the exchange will not give it), an exchange's "no such symbol" is
//! remembered cluster-wide for a while, so each unknown symbol costs at most one call per
//! that while. Kraken's pair names come only from its list: a Kraken job without one loads
//! it first.
//!
//! Beside each list, as the exchange wrote them, the gateway's copies: the list's body and
//! the exchange's currency list (Kraken's `Assets`, Coinbase's `currencies`; ccxt loads it
//! with the markets), loaded by the same workers after the list, one call more.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use candlepipe_core::{now_ms, ErrorCode, Exchange, Millis, SeriesKey, Symbol, WireError};
use candlepipe_exchange::budget::Demand;
use candlepipe_exchange::coinbase_list::CoinbaseList;
use candlepipe_exchange::exchange_info::ExchangeInfo;
use candlepipe_exchange::kraken_list::KrakenList;
use candlepipe_exchange::markets::{currencies_path, Listing, Market};
use candlepipe_exchange::{binance, coinbase, ExchangeClient, FetchError};
use candlepipe_store::{Records, Redis, StoreError};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Why a series' exchange name could not be had.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The exchange's market list, which names its pairs, could not be had yet.
    #[error("{0}'s market list is not at hand yet")]
    NoList(Exchange),
}

/// How long a kept list may be older than the refresh period and still be used.
const LIST_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long one worker may take to load a list before another may try.
const LOAD_LOCK: Duration = Duration::from_secs(30);
/// How often processes look in Redis for a newer list.
const FOLLOW_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketSettings {
    /// A list older than this is loaded again.
    pub refresh: Duration,
    /// How long an exchange's "no such symbol" is remembered when no list is at hand.
    pub unknown_ttl: Duration,
}

/// A market list as kept in Redis (`<prefix>mk:<exchange>`) and in memory.
#[derive(Clone, Serialize, Deserialize)]
struct Known {
    loaded_at: Millis,
    markets: Listing,
    /// The list as the exchange wrote it.
    #[serde(default)]
    body: String,
    /// The exchange's currency list as it wrote it (`None`: Binance, or not loaded yet).
    #[serde(default)]
    currencies: Option<String>,
    /// `body` and `currencies` parsed, ready to be served again.
    #[serde(skip)]
    served: Served,
    /// Native id → unified symbol, made when the list is kept (for the gateway, which is
    /// asked by native id).
    #[serde(skip)]
    by_native: HashMap<String, Symbol>,
}

/// An exchange's lists as it wrote them, ready to be served again (the gateway); `None`
/// where the exchange has no such list, it is not loaded yet, or it could not be read.
#[derive(Clone, Default)]
pub struct Served {
    pub binance_info: Option<Arc<ExchangeInfo>>,
    pub kraken_pairs: Option<Arc<KrakenList>>,
    pub kraken_assets: Option<Arc<KrakenList>>,
    pub coinbase_products: Option<Arc<CoinbaseList>>,
    pub coinbase_currencies: Option<Arc<CoinbaseList>>,
}

impl Served {
    fn parse(ex: Exchange, body: &str, currencies: Option<&str>) -> Served {
        fn kept<T>(what: &str, parsed: Result<T, FetchError>) -> Option<Arc<T>> {
            parsed
                .inspect_err(|e| tracing::warn!(error = %e, "{what} not kept for the gateway"))
                .ok()
                .map(Arc::new)
        }
        let mut served = Served::default();
        match ex {
            Exchange::Binance => {
                served.binance_info = kept("exchangeInfo", ExchangeInfo::parse(body));
            }
            Exchange::Kraken => {
                let (pairs, assets) = ("AssetPairs", "Assets");
                served.kraken_pairs = kept(pairs, KrakenList::parse(body, pairs));
                served.kraken_assets =
                    currencies.and_then(|c| kept(assets, KrakenList::parse(c, assets)));
            }
            Exchange::Coinbase => {
                let (products, currency_list) = ("products", "currencies");
                served.coinbase_products = kept(products, CoinbaseList::parse(body, products));
                served.coinbase_currencies = currencies
                    .and_then(|c| kept(currency_list, CoinbaseList::parse(c, currency_list)));
            }
        }
        served
    }
}

/// This process has no market list of the exchange yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}'s market list is not at hand yet")]
pub struct NoList(pub Exchange);

/// What this process knows of a symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Listed, under this native id.
    Listed(String),
    NotListed {
        loaded_at: Millis,
    },
    /// No list at hand.
    NoList,
}

/// Cheap to clone; clones share the lists.
#[derive(Clone)]
pub struct Markets {
    shared: Arc<Shared>,
}

struct Shared {
    records: Records,
    redis: Redis,
    settings: MarketSettings,
    /// Per exchange. std's lock: held only to read or swap an `Arc`, never across `.await`.
    lists: RwLock<[Option<Arc<Known>>; 3]>,
}

/// The lock of one list's load, released when dropped (however the load ended, a timeout
/// included); it expires by itself after [`LOAD_LOCK`] if the release is lost.
struct LoadLock {
    redis: Redis,
    key: String,
    token: String,
}

impl LoadLock {
    async fn take(redis: &Redis, key: String) -> Result<Option<LoadLock>, redis::RedisError> {
        let token = format!("{}-{}", std::process::id(), rand::random::<u64>());
        let mut conn = redis.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(LOAD_LOCK.as_millis() as u64)
            .query_async(&mut conn)
            .await?;
        Ok(set.map(|_| LoadLock {
            redis: redis.clone(),
            key,
            token,
        }))
    }
}

impl Drop for LoadLock {
    fn drop(&mut self) {
        let (mut conn, key, token) = (self.redis.clone(), self.key.clone(), self.token.clone());
        tokio::spawn(async move {
            let script = redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            );
            if let Err(e) = script
                .key(key)
                .arg(token)
                .invoke_async::<i64>(&mut conn)
                .await
            {
                tracing::debug!(error = %e, "market list lock not released; it expires by itself");
            }
        });
    }
}

fn slot(ex: Exchange) -> usize {
    match ex {
        Exchange::Binance => 0,
        Exchange::Coinbase => 1,
        Exchange::Kraken => 2,
    }
}

fn list_name(ex: Exchange) -> String {
    format!("mk:{ex}")
}

fn loaded_at_name(ex: Exchange) -> String {
    format!("mk:{ex}:at")
}

fn unknown_name(s: &SeriesKey) -> String {
    format!("unknown:{}:{}", s.exchange, s.symbol.token())
}

fn unknown_symbol(s: &SeriesKey, why: &str) -> WireError {
    WireError::new(
        ErrorCode::UnknownSymbol,
        format!("{} has no {}: {why}", s.exchange, s.symbol),
    )
}

impl Markets {
    pub fn new(records: Records, redis: Redis, settings: MarketSettings) -> Markets {
        Markets {
            shared: Arc::new(Shared {
                records,
                redis,
                settings,
                lists: RwLock::new([None, None, None]),
            }),
        }
    }

    fn list(&self, ex: Exchange) -> Option<Arc<Known>> {
        let lists = self.shared.lists.read().unwrap_or_else(|p| p.into_inner());
        lists[slot(ex)].clone()
    }

    fn keep(&self, ex: Exchange, mut known: Known) {
        metrics::gauge!("candlepipe_market_symbols", "exchange" => ex.as_str())
            .set(known.markets.len() as f64);
        known.by_native = known
            .markets
            .iter()
            .map(|(symbol, native)| (native.clone(), symbol.clone()))
            .collect();
        known.served = Served::parse(ex, &known.body, known.currencies.as_deref());
        let mut lists = self.shared.lists.write().unwrap_or_else(|p| p.into_inner());
        lists[slot(ex)] = Some(Arc::new(known));
    }

    /// `ex`'s lists as it wrote them.
    pub fn served(&self, ex: Exchange) -> Result<Served, NoList> {
        self.list(ex).map(|k| k.served.clone()).ok_or(NoList(ex))
    }

    /// The unified symbol `ex` lists under `native` (`None`: not listed).
    pub fn unified(&self, ex: Exchange, native: &str) -> Result<Option<Symbol>, NoList> {
        match self.list(ex) {
            Some(k) => Ok(k.by_native.get(native).cloned()),
            None => Err(NoList(ex)),
        }
    }

    /// What this process's copy of the list says of `s`.
    pub fn lookup(&self, s: &SeriesKey) -> Lookup {
        match self.list(s.exchange) {
            None => Lookup::NoList,
            Some(k) => match k.markets.get(&s.symbol) {
                Some(native) => Lookup::Listed(native.clone()),
                None => Lookup::NotListed {
                    loaded_at: k.loaded_at,
                },
            },
        }
    }

    /// For ingest, before a miss becomes a job: `unknown_symbol` when the exchange does not
    /// list the symbol, or (without a list) said recently that it has no such symbol.
    pub async fn check(&self, s: &SeriesKey) -> Result<(), WireError> {
        match self.lookup(s) {
            Lookup::Listed(_) => Ok(()),
            Lookup::NotListed { .. } => Err(unknown_symbol(s, "not in its market list")),
            Lookup::NoList => match self.said_unknown(s).await {
                true => Err(unknown_symbol(s, "the exchange said so recently")),
                false => Ok(()),
            },
        }
    }

    async fn said_unknown(&self, s: &SeriesKey) -> bool {
        matches!(
            self.shared.records.get::<Millis>(&unknown_name(s)).await,
            Ok(Some(_))
        )
    }

    /// Remembers, cluster-wide, that the exchange has no such symbol.
    pub async fn remember_unknown(&self, s: &SeriesKey) {
        let ttl = self.shared.settings.unknown_ttl;
        if let Err(e) = self
            .shared
            .records
            .put(&unknown_name(s), &now_ms(), ttl)
            .await
        {
            tracing::warn!(error = %e, series = %s, "unknown symbol not remembered");
        }
    }

    /// For fill, before asking the exchange for candles: the series' native id.
    pub async fn native(
        &self,
        s: &SeriesKey,
        client: &ExchangeClient,
    ) -> Result<String, MarketError> {
        let ex = s.exchange;
        if matches!(self.lookup(s), Lookup::NoList) {
            self.follow_once(ex).await;
        }
        if matches!(self.lookup(s), Lookup::NoList) {
            if ex == Exchange::Kraken {
                self.load(ex, client).await?;
            } else if self.said_unknown(s).await {
                return Err(FetchError::UnknownSymbol(format!(
                    "{ex} said recently it has no {}",
                    s.symbol
                ))
                .into());
            }
        }
        match self.lookup(s) {
            Lookup::Listed(native) => Ok(native),
            Lookup::NotListed { .. } => {
                Err(FetchError::UnknownSymbol(format!("{ex} does not list {}", s.symbol)).into())
            }
            Lookup::NoList => match ex {
                Exchange::Binance => Ok(binance::native_symbol(&s.symbol)),
                Exchange::Coinbase => Ok(coinbase::native_symbol(&s.symbol)),
                Exchange::Kraken => Err(MarketError::NoList(ex)),
            },
        }
    }

    /// For fill, before asking the exchange for candles: the series' native id and, for a
    /// Kraken pair, its decimals from `AssetPairs` (what building candles from its trades
    /// needs).
    pub async fn market(
        &self,
        s: &SeriesKey,
        client: &ExchangeClient,
    ) -> Result<Market, MarketError> {
        let mut market = Market::named(self.native(s, client).await?);
        if s.exchange == Exchange::Kraken {
            market.decimals = self.list(s.exchange).and_then(|k| {
                let pairs = k.served.kraken_pairs.as_ref()?;
                pairs.get(&market.native)?.decimals()
            });
        }
        Ok(market)
    }

    /// Takes the list from Redis if it is newer than this process's copy.
    async fn follow_once(&self, ex: Exchange) {
        let records = &self.shared.records;
        let at = match records.get::<Millis>(&loaded_at_name(ex)).await {
            Ok(Some(at)) => at,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, exchange = %ex, "market list not read");
                return;
            }
        };
        if self.list(ex).is_some_and(|k| k.loaded_at >= at) {
            return;
        }
        match records.get::<Known>(&list_name(ex)).await {
            Ok(Some(known)) => self.keep(ex, known),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, exchange = %ex, "market list not read"),
        }
    }

    /// Loads the list from the exchange and keeps it, unless another worker is loading it;
    /// then waits a little for that one.
    async fn load(&self, ex: Exchange, client: &ExchangeClient) -> Result<(), MarketError> {
        let key = format!("{}:lock", self.shared.records.key(&list_name(ex)));
        let Some(_lock) = LoadLock::take(&self.shared.redis, key)
            .await
            .map_err(|e| MarketError::Store(e.into()))?
        else {
            let until = tokio::time::Instant::now() + LOAD_LOCK;
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(100)).await;
                self.follow_once(ex).await;
                if self.list(ex).is_some() {
                    return Ok(());
                }
            }
            return Err(MarketError::NoList(ex));
        };
        let result = self.load_locked(ex, client).await;
        if let Err(e) = &result {
            tracing::warn!(exchange = %ex, error = %e, "market list not loaded");
        }
        result
    }

    async fn load_locked(&self, ex: Exchange, client: &ExchangeClient) -> Result<(), MarketError> {
        let (markets, body) = client.market_list(ex, Demand::Upkeep).await?;
        let known = Known {
            markets,
            body,
            // Until loaded again below, the one this process had.
            currencies: self.list(ex).and_then(|k| k.currencies.clone()),
            loaded_at: now_ms(),
            by_native: HashMap::new(),
            served: Served::default(),
        };
        tracing::info!(exchange = %ex, symbols = known.markets.len(), "market list loaded");
        self.store(ex, known).await?;
        // The market list serves at once; the currency list (the gateway's only) follows.
        if let Err(e) = self.currencies_locked(ex, client).await {
            tracing::warn!(exchange = %ex, error = %e, "currency list not loaded; the next round tries again");
        }
        Ok(())
    }

    /// Keeps `known` in Redis for the cluster and in this process.
    async fn store(&self, ex: Exchange, known: Known) -> Result<(), MarketError> {
        let records = &self.shared.records;
        records.put(&list_name(ex), &known, LIST_TTL).await?;
        records
            .put(&loaded_at_name(ex), &known.loaded_at, LIST_TTL)
            .await?;
        self.keep(ex, known);
        Ok(())
    }

    /// Whether `ex` has a currency list that this process's copy lacks.
    fn lacks_currencies(&self, ex: Exchange) -> bool {
        currencies_path(ex).is_some() && self.list(ex).is_some_and(|k| k.currencies.is_none())
    }

    /// Loads `ex`'s currency list beside its market list (which must be at hand), unless
    /// another worker is loading either.
    async fn load_currencies(
        &self,
        ex: Exchange,
        client: &ExchangeClient,
    ) -> Result<(), MarketError> {
        let key = format!("{}:lock", self.shared.records.key(&list_name(ex)));
        let Some(_lock) = LoadLock::take(&self.shared.redis, key)
            .await
            .map_err(|e| MarketError::Store(e.into()))?
        else {
            return Ok(());
        };
        self.currencies_locked(ex, client).await
    }

    /// [`Markets::load_currencies`] with the lock held.
    async fn currencies_locked(
        &self,
        ex: Exchange,
        client: &ExchangeClient,
    ) -> Result<(), MarketError> {
        let Some(known) = self.list(ex) else {
            return Err(MarketError::NoList(ex));
        };
        let Some(currencies) = client.currency_list(ex, Demand::Upkeep).await? else {
            return Ok(());
        };
        let mut known = Known::clone(&known);
        known.currencies = Some(currencies);
        // Newer than the list it joins, so that followers take it.
        known.loaded_at = known.loaded_at.max(now_ms());
        tracing::info!(exchange = %ex, "currency list loaded");
        self.store(ex, known).await
    }

    /// Takes every list kept in Redis that is newer than this process's copy.
    pub async fn read_all(&self) {
        futures::future::join_all(Exchange::ALL.map(|ex| self.follow_once(ex))).await;
    }

    /// Fill workers, at start: takes the lists kept in Redis and loads those missing, for
    /// at most `within` (whatever is still missing then is loaded later).
    pub async fn prepare(&self, client: &ExchangeClient, within: Duration) {
        let each = Exchange::ALL.map(|ex| async move {
            self.follow_once(ex).await;
            if self.list(ex).is_none() {
                // A failure is logged by `load`; `keep_fresh` tries again.
                let _ = tokio::time::timeout(within, self.load(ex, client)).await;
            }
        });
        futures::future::join_all(each).await;
    }

    /// Every process: follows the lists kept in Redis until `shutdown`.
    pub async fn follow(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                _ = shutdown.cancelled() => return,
            }
            self.read_all().await;
        }
    }

    /// Fill workers: loads each exchange's list when it is missing or older than the refresh
    /// period, until `shutdown`.
    pub async fn keep_fresh(self, client: ExchangeClient, shutdown: CancellationToken) {
        let tasks = Exchange::ALL.map(|ex| {
            let (markets, client, shutdown) = (self.clone(), client.clone(), shutdown.clone());
            async move {
                let refresh = markets.shared.settings.refresh;
                loop {
                    markets.follow_once(ex).await;
                    let due = markets
                        .list(ex)
                        .is_none_or(|k| now_ms() - k.loaded_at >= refresh.as_millis() as Millis);
                    if due {
                        // A failure is logged by `load`; the next round tries again.
                        let _ = markets.load(ex, &client).await;
                    } else if markets.lacks_currencies(ex) {
                        if let Err(e) = markets.load_currencies(ex, &client).await {
                            tracing::warn!(exchange = %ex, error = %e, "currency list not loaded; the next round tries again");
                        }
                    }
                    let pause = FOLLOW_EVERY.max(refresh / 20);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        });
        futures::future::join_all(tasks).await;
    }
}
