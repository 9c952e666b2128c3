//! One HTTP client for all exchanges: pages through windows longer than an exchange serves
//! per call and waits for that exchange's budget before every request.
//!
//! With a cluster-wide [`Budget`], each exchange has two queues in the process, live and
//! bulk: requests of one priority ask the budget one at a time, in the order they came
//! (tokio's mutex is fair), so the jobs a lane took first are served first. Without one
//! (`candlepipe check`, `bench --workload direct`), governor spaces this process's requests.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candlepipe_core::aggregate::aggregate;
use candlepipe_core::closing::closed_bound;
use candlepipe_core::confirm::confirm_revisable;
use candlepipe_core::{BuiltFrom, Candle, Exchange, Fetched, Interval, Millis, SeriesKey};
use governor::{DefaultDirectRateLimiter, Quota};

use crate::binance_archive::{self, Period};
use crate::breaker::{Breaker, BreakerSettings, Outcome, State};
use crate::budget::Demand;
use crate::kraken_trades::{self, Decimals, Trade};
use crate::markets::{self, Listing, Market};
use crate::{binance, coinbase, kraken, Budget, FetchError};

/// How far before a window of Kraken trades the close before it is looked for, in
/// intervals, when the window opens without trades: nearer first; each look in at most
/// [`KRAKEN_LOOKBACK_PAGES`] pages.
const KRAKEN_LOOKBACK: [i64; 3] = [10, 100, 1440];
const KRAKEN_LOOKBACK_PAGES: usize = 5;

/// Where one exchange is and how fast this process may call it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    /// Requests per second.
    pub rps: u32,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
    /// How long after an interval closes its candle is surely published: an interval the
    /// exchange still has no candle for then has none (no trades).
    pub publish_delay: Duration,
}

/// Binance's public archive of klines ([`binance_archive`]): where, and how many file
/// requests a second this process makes (its own budget: files cost no API weight).
#[derive(Debug, Clone)]
pub struct Archive {
    pub url: String,
    pub rps: u32,
}

#[derive(Debug, Clone)]
pub struct ExchangeSettings {
    pub binance: Endpoint,
    pub coinbase: Endpoint,
    pub kraken: Endpoint,
    pub binance_archive: Archive,
    /// Whole-request timeout for one HTTP call.
    pub timeout: Duration,
    pub breaker: BreakerSettings,
}

impl ExchangeSettings {
    pub fn endpoint(&self, ex: Exchange) -> &Endpoint {
        match ex {
            Exchange::Binance => &self.binance,
            Exchange::Coinbase => &self.coinbase,
            Exchange::Kraken => &self.kraken,
        }
    }
}

/// Cheap to clone; clones share connections, limiters and the budget.
#[derive(Clone)]
pub struct ExchangeClient {
    http: reqwest::Client,
    settings: Arc<ExchangeSettings>,
    /// This process's own limit, used when it takes part in no cluster-wide budget.
    limiters: Arc<[DefaultDirectRateLimiter; 3]>,
    /// The cluster-wide budget, when the process takes part in one.
    budget: Option<Arc<dyn Budget>>,
    /// Per exchange, the live and the bulk queue in front of the budget: held while one
    /// request waits for its permit, so requests of a priority are served in arrival order.
    queues: Arc<[[tokio::sync::Mutex<()>; 2]; 3]>,
    breakers: Arc<[Breaker; 3]>,
    /// Turns live jobs took ahead of their first request ([`ExchangeClient::take_turn_ahead`]),
    /// by job id, with when they were taken.
    ahead: Arc<std::sync::Mutex<HashMap<String, Instant>>>,
    /// Spaces this process's requests for Binance's archived files.
    archive_limiter: Arc<DefaultDirectRateLimiter>,
}

/// Whole-request timeout for one archived file (a month of 1m candles is a few MB).
const ARCHIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long to hold off an exchange that said "too many" without a `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(2);
/// A page that was rate limited is tried again (after the pause) this many times.
const RATE_LIMITED_TRIES: usize = 3;
/// Binance's request weight per minute, and the share of it we stop at.
const BINANCE_WEIGHT_LIMIT: u64 = 6_000;
const BINANCE_WEIGHT_STOP: u64 = BINANCE_WEIGHT_LIMIT * 9 / 10;
/// A turn taken ahead of its request is used only this soon after: one taken longer ago is
/// given back, and the request waits for a turn of its own, so that requests never go out
/// closer together than the budget granted them.
const AHEAD_FOR: Duration = Duration::from_millis(100);

fn limiter(e: &Endpoint) -> DefaultDirectRateLimiter {
    let rps = NonZeroU32::new(e.rps).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(e.burst).unwrap_or(rps);
    DefaultDirectRateLimiter::direct(Quota::per_second(rps).allow_burst(burst))
}

/// The `outcome` label of an exchange request: a few fixed values, never error text.
fn outcome(r: &Result<bytes::Bytes, FetchError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(FetchError::UnknownSymbol(_) | FetchError::UnsupportedInterval(_)) => "rejected",
        Err(FetchError::RateLimited { banned: true, .. }) => "banned",
        Err(FetchError::RateLimited { .. }) => "rate_limited",
        Err(FetchError::Status { status: 500.., .. }) => "server_error",
        Err(FetchError::Status { .. }) => "client_error",
        Err(FetchError::Timeout) => "timeout",
        Err(FetchError::Connect(_)) => "connect_error",
        Err(FetchError::Malformed(_)) => "malformed",
        Err(FetchError::CircuitOpen) => "circuit_open",
        Err(FetchError::Budget(_)) => "budget_unavailable",
        Err(FetchError::NoWaiter) => "no_waiter",
    }
}

/// What a request's result says about the exchange's health.
fn health(r: &Result<bytes::Bytes, FetchError>) -> Outcome {
    match r {
        Ok(_) => Outcome::Healthy,
        Err(FetchError::RateLimited { .. } | FetchError::Budget(_) | FetchError::NoWaiter) => {
            Outcome::Inconclusive
        }
        Err(e) if e.is_exchange_failure() => Outcome::Failed,
        Err(_) => Outcome::Healthy,
    }
}

/// How an exchange's list request reads an error answer.
fn list_error(ex: Exchange) -> fn(u16, &[u8]) -> FetchError {
    match ex {
        Exchange::Binance => binance::error,
        Exchange::Coinbase => coinbase::error,
        Exchange::Kraken => kraken::error,
    }
}

fn slot(ex: Exchange) -> usize {
    match ex {
        Exchange::Binance => 0,
        Exchange::Coinbase => 1,
        Exchange::Kraken => 2,
    }
}

impl ExchangeClient {
    pub fn new(settings: ExchangeSettings) -> Result<Self, FetchError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("candlepipe/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| FetchError::Connect(e.to_string()))?;
        let settings = Arc::new(settings);
        let limiters = Arc::new([
            limiter(&settings.binance),
            limiter(&settings.coinbase),
            limiter(&settings.kraken),
        ]);
        let archive_rps = NonZeroU32::new(settings.binance_archive.rps).unwrap_or(NonZeroU32::MIN);
        Ok(ExchangeClient {
            http,
            settings: settings.clone(),
            limiters,
            archive_limiter: Arc::new(DefaultDirectRateLimiter::direct(Quota::per_second(
                archive_rps,
            ))),
            budget: None,
            queues: Arc::new(Default::default()),
            ahead: Arc::default(),
            breakers: Arc::new([
                Breaker::new(settings.breaker),
                Breaker::new(settings.breaker),
                Breaker::new(settings.breaker),
            ]),
        })
    }

    /// Gates every request through a shared budget as well.
    pub fn with_budget(mut self, budget: Arc<dyn Budget>) -> Self {
        self.budget = Some(budget);
        self
    }

    pub fn settings(&self) -> &ExchangeSettings {
        &self.settings
    }

    /// The exchange's market list: unified symbol → native id.
    pub async fn markets(&self, ex: Exchange, demand: Demand<'_>) -> Result<Listing, FetchError> {
        Ok(self.market_list(ex, demand).await?.0)
    }

    /// The exchange's market list, and the body it came in as the exchange wrote it (kept to
    /// be served again by the gateway).
    pub async fn market_list(
        &self,
        ex: Exchange,
        demand: Demand<'_>,
    ) -> Result<(Listing, String), FetchError> {
        let body = self
            .get(
                ex,
                markets::path(ex),
                &[],
                list_error(ex),
                demand,
                markets::cost(ex),
            )
            .await?;
        let listing = markets::parse(ex, &body)?;
        Ok((listing, String::from_utf8_lossy(&body).into_owned()))
    }

    /// The exchange's currency list as it wrote it (`None`: the exchange has none in public,
    /// see [`markets::currencies_path`]); costs one request, like a market list.
    pub async fn currency_list(
        &self,
        ex: Exchange,
        demand: Demand<'_>,
    ) -> Result<Option<String>, FetchError> {
        let Some(path) = markets::currencies_path(ex) else {
            return Ok(None);
        };
        let body = self.get(ex, path, &[], list_error(ex), demand, 1).await?;
        if ex == Exchange::Kraken {
            kraken::check_error(&body)?;
        }
        Ok(Some(String::from_utf8_lossy(&body).into_owned()))
    }

    /// Coinbase's trades of product `native` with ids up to `until`, back to the first
    /// one before `since` (ms) or the product's first: ascending. Pages of 1,000, each
    /// taking its turn in the budget as `demand`; `None` when `max_pages` did not reach
    /// back to `since`.
    pub async fn coinbase_trades(
        &self,
        native: &str,
        until: u64,
        since: Millis,
        max_pages: usize,
        demand: Demand<'_>,
    ) -> Result<Option<Vec<coinbase::TradeRow>>, FetchError> {
        let path = coinbase::trades_path(native);
        let mut out: Vec<coinbase::TradeRow> = Vec::new();
        let mut after = until.saturating_add(1);
        for _ in 0..max_pages {
            let q = coinbase::trades_query(Some(after));
            let body = self
                .get(Exchange::Coinbase, &path, &q, coinbase::error, demand, 1)
                .await?;
            let page = coinbase::parse_trades(&body)?;
            let full = page.len() >= coinbase::TRADES_PAGE;
            let Some(oldest) = page.iter().map(|t| t.id).min() else {
                return Ok(Some(ascending(out)));
            };
            let reached = page.iter().any(|t| t.t < since);
            out.extend(page.into_iter().filter(|t| t.id <= until));
            if reached || !full || oldest <= 1 {
                return Ok(Some(ascending(out)));
            }
            after = oldest;
        }
        Ok(None)
    }

    /// Candles of `series` on `market`, with open times in `[from, to]`, asked at `now`,
    /// and what the answer confirms (SPEC §2, see [`candlepipe_core::confirm`]). An
    /// interval the exchange does not serve is built from the one it serves that divides it
    /// ([`candlepipe_core::aggregate`]). `demand` says who waits for them.
    pub async fn fetch(
        &self,
        series: &SeriesKey,
        market: &Market,
        from: Millis,
        to: Millis,
        now: Millis,
        demand: Demand<'_>,
    ) -> Result<Fetched, FetchError> {
        let iv = series.interval;
        let base = series.exchange.source_interval(iv).ok_or_else(|| {
            FetchError::UnsupportedInterval(format!("{} has no {iv} candles", series.exchange))
        })?;
        let base_series = SeriesKey::new(series.exchange, series.symbol.clone(), base);
        let base_to = to + iv.millis() - base.millis();
        let (candles, history_from) = self
            .fetch_native(&base_series, market, from, base_to, now, demand)
            .await?;
        let delay = self.settings.endpoint(series.exchange).publish_delay;
        // Coinbase may still change a closed candle until its publishing delay has passed
        // (its candles lag the trades it publishes); the others' closed rows are final.
        let fetched = confirm_revisable(
            base,
            (from, base_to),
            candles,
            history_from,
            now,
            delay.as_millis() as Millis,
            series.exchange == Exchange::Coinbase,
        );
        Ok(if base == iv {
            fetched
        } else {
            aggregate(iv, base, &fetched, (from, to))
        })
    }

    /// The candles of an interval the exchange serves, with open times in `[from, to]`,
    /// ascending; those at or before the closed bound at `now` are marked closed. Also the
    /// oldest open time the exchange still serves, when its answer shows it.
    async fn fetch_native(
        &self,
        series: &SeriesKey,
        market: &Market,
        from: Millis,
        to: Millis,
        now: Millis,
        demand: Demand<'_>,
    ) -> Result<(Vec<Candle>, Option<Millis>), FetchError> {
        let iv = series.interval;
        let step = iv.millis();
        let bound = closed_bound(iv, now);
        let mut out: Vec<Candle> = Vec::new();
        let mut history_from = None;
        let native = market.native.as_str();
        match series.exchange {
            Exchange::Binance => {
                let mut cursor = from;
                while cursor <= to {
                    let q = binance::query(native, iv, cursor, to);
                    let body = self
                        .get(
                            Exchange::Binance,
                            binance::PATH,
                            &q,
                            binance::error,
                            demand,
                            1,
                        )
                        .await?;
                    let page = binance::parse(&body, bound)?;
                    let full = page.len() as i64 >= binance::PAGE;
                    let Some(last) = page.last().map(|c| c.t) else {
                        break;
                    };
                    out.extend(page);
                    if !full {
                        break;
                    }
                    cursor = last + step;
                }
            }
            Exchange::Coinbase => {
                let path = coinbase::path(native);
                let mut cursor = from;
                while cursor <= to {
                    let end = (cursor + (coinbase::PAGE - 1) * step).min(to);
                    let q = coinbase::query(iv, cursor, end);
                    let body = self
                        .get(Exchange::Coinbase, &path, &q, coinbase::error, demand, 1)
                        .await?;
                    out.extend(
                        coinbase::parse(&body, bound)?
                            .into_iter()
                            .filter(|c| c.t >= cursor && c.t <= end),
                    );
                    cursor = end + step;
                }
            }
            Exchange::Kraken => {
                // OHLC keeps the newest 720 intervals; what is older is built from the
                // trades (when the pair's decimals are known), and a window wholly older
                // than OHLC keeps does not ask OHLC at all.
                let ohlc_keeps = kraken::oldest_kept(iv, now);
                let mut from_trades = None;
                if to >= ohlc_keeps - step || market.decimals.is_none() {
                    let q = kraken::query(native, iv, from);
                    let body = self
                        .get(Exchange::Kraken, kraken::PATH, &q, kraken::error, demand, 1)
                        .await?;
                    out = kraken::parse(&body, bound)?;
                    // A full answer begins where Kraken's OHLC history does.
                    if out.len() as i64 >= kraken::PAGE {
                        let oldest = out.first().map(|c| c.t).filter(|&t| t > from);
                        match market.decimals {
                            Some(_) => from_trades = oldest.map(|t| (t - step).min(to)),
                            None => history_from = oldest,
                        }
                    }
                } else {
                    from_trades = Some(to);
                }
                if let (Some(d), Some(end)) = (market.decimals, from_trades) {
                    let built = self
                        .kraken_trade_candles(native, d, iv, from, end, demand)
                        .await?;
                    out.extend(built);
                }
            }
        }
        out.retain(|c| c.t >= from && c.t <= to);
        out.sort_by_key(|c| c.t);
        out.dedup_by_key(|c| c.t);
        Ok((out, history_from))
    }

    /// Kraken's candles of `iv` with open times in `[from, to]` (all closed), built from
    /// its trades as its OHLC writes them ([`kraken_trades::candles`]). A window opening
    /// in intervals without trades takes the close before them from up to a day of
    /// intervals back ([`KRAKEN_LOOKBACK`]); found nowhere, those intervals stay out.
    async fn kraken_trade_candles(
        &self,
        native: &str,
        d: Decimals,
        iv: Interval,
        from: Millis,
        to: Millis,
        demand: Demand<'_>,
    ) -> Result<Vec<Candle>, FetchError> {
        let step = iv.millis();
        let (mut trades, _) = self
            .kraken_trades(native, from - step, to + step, usize::MAX, demand)
            .await?;
        let close_before = trades.first().is_some_and(|t| t.t < from);
        let opens_traded = trades.iter().any(|t| (from..from + step).contains(&t.t));
        if !close_before && !opens_traded {
            // Further back each time, until a trade before the window is found.
            for back in KRAKEN_LOOKBACK {
                let (earlier, reached) = self
                    .kraken_trades(
                        native,
                        from - back * step,
                        from,
                        KRAKEN_LOOKBACK_PAGES,
                        demand,
                    )
                    .await?;
                // Only a look that reached the window knows the last trade before it.
                let last = earlier.into_iter().rfind(|t| t.t < from);
                if let (true, Some(last)) = (reached, last) {
                    trades.insert(0, last);
                    break;
                }
            }
        }
        let mut candles = kraken_trades::candles(&trades, step, from, to, d);
        for c in &mut candles {
            c.built_from = Some(BuiltFrom::Trades);
        }
        Ok(candles)
    }

    /// Kraken's trades after `since` (ms), ascending, page after page until one reaches
    /// `until` (ms) or the newest trade, or `max_pages` were asked; and whether it reached.
    async fn kraken_trades(
        &self,
        native: &str,
        since: Millis,
        until: Millis,
        max_pages: usize,
        demand: Demand<'_>,
    ) -> Result<(Vec<Trade>, bool), FetchError> {
        let mut out: Vec<Trade> = Vec::new();
        let mut cursor = kraken_trades::since_of(since);
        for _ in 0..max_pages {
            let q = kraken_trades::query(native, &cursor);
            let body = self
                .get(
                    Exchange::Kraken,
                    kraken_trades::PATH,
                    &q,
                    kraken::error,
                    demand,
                    1,
                )
                .await?;
            let page = kraken_trades::parse(&body)?;
            let full = page.trades.len() >= kraken_trades::PAGE;
            let stuck = page.next_since == cursor;
            // A trade seen on the page before (same time at the boundary) is kept once.
            let seen = out.last().and_then(|t| t.id);
            out.extend(
                page.trades
                    .into_iter()
                    .filter(|t| seen.zip(t.id).is_none_or(|(seen, id)| id > seen)),
            );
            if !full || stuck || out.last().is_some_and(|t| t.t >= until) {
                return Ok((out, true));
            }
            cursor = page.next_since;
        }
        Ok((out, false))
    }

    /// Binance's archived candles of `series` on `market` for `period`, with open times in
    /// `[from, to]`, as a fetch at `now` confirms them; `Ok(None)` when the file or its
    /// checksum is not published (404) or the file is not the one its checksum states:
    /// the caller asks REST for that span instead.
    pub async fn binance_archived(
        &self,
        series: &SeriesKey,
        market: &Market,
        period: Period,
        (from, to): (Millis, Millis),
        now: Millis,
    ) -> Result<Option<(Fetched, u64)>, FetchError> {
        let iv = series.interval;
        let path = period.path(&market.native, iv);
        let outcome = |o: &'static str| {
            metrics::counter!("candlepipe_archive_files_total", "outcome" => o).increment(1)
        };
        // The checksum first: without it the file is not asked for.
        let files = match self.archive_get(&format!("{path}.CHECKSUM")).await? {
            Some(sum) => self.archive_get(&path).await?.map(|zip| (sum, zip)),
            None => None,
        };
        let Some((sum, zip)) = files else {
            outcome("missing");
            tracing::info!(path, "archive file not published; REST instead");
            return Ok(None);
        };
        let verified = binance_archive::checksum(&sum)
            .is_some_and(|sum| binance_archive::verified(&zip, &sum));
        if !verified {
            outcome("bad_checksum");
            tracing::warn!(
                path,
                "archive file does not match its checksum; REST instead"
            );
            return Ok(None);
        }
        let size = zip.len() as u64;
        let candles = tokio::task::spawn_blocking(move || {
            binance_archive::parse(&binance_archive::unzip(&zip)?)
        })
        .await
        .map_err(|e| FetchError::Malformed(format!("archive reader: {e}")))??;
        outcome("ok");
        metrics::counter!("candlepipe_archive_bytes_total").increment(size);
        let (a, b) = period.span(iv);
        let (a, b) = (a.max(from), b.min(to));
        let candles: Vec<Candle> = candles
            .into_iter()
            .filter(|c| c.t >= a && c.t <= b)
            .collect();
        let delay = self.settings.binance.publish_delay.as_millis() as Millis;
        let fetched = confirm_revisable(iv, (a, b), candles, None, now, delay, false);
        Ok(Some((fetched, size)))
    }

    /// One file of Binance's archive on its own budget; `None` for a 404.
    async fn archive_get(&self, path: &str) -> Result<Option<bytes::Bytes>, FetchError> {
        self.archive_limiter.until_ready().await;
        let url = format!(
            "{}{}",
            self.settings.binance_archive.url.trim_end_matches('/'),
            path
        );
        let resp = self
            .http
            .get(&url)
            .timeout(ARCHIVE_TIMEOUT)
            .send()
            .await
            .map_err(FetchError::from_reqwest)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(FetchError::from_reqwest)?;
        match status {
            200 => Ok(Some(body)),
            // S3 answers a missing key 404 (or 403 without list rights).
            403 | 404 => Ok(None),
            _ => Err(FetchError::Status {
                status,
                message: crate::parse::cut(&String::from_utf8_lossy(&body)),
            }),
        }
    }

    /// One request, retried after the exchange's pause when it says "too many".
    async fn get(
        &self,
        ex: Exchange,
        path: &str,
        query: &[(&'static str, String)],
        on_error: fn(u16, &[u8]) -> FetchError,
        demand: Demand<'_>,
        cost: u32,
    ) -> Result<bytes::Bytes, FetchError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let result = self.get_once(ex, path, query, on_error, demand, cost).await;
            match &result {
                Err(FetchError::RateLimited {
                    retry_after,
                    banned,
                    message,
                }) => {
                    let hold = retry_after.unwrap_or(DEFAULT_PAUSE);
                    tracing::warn!(exchange = %ex, ?hold, banned, "exchange rate limit hit; pausing it cluster-wide");
                    if let Some(b) = &self.budget {
                        b.pause(ex, hold, message.clone()).await;
                    }
                    if self.budget.is_none() || *banned || tries >= RATE_LIMITED_TRIES {
                        return result;
                    }
                }
                _ => return result,
            }
        }
    }

    /// The breaker's state for `ex` (0 closed, 1 half-open, 2 open).
    pub fn breaker_state(&self, ex: Exchange) -> State {
        self.breakers[slot(ex)].state()
    }

    async fn get_once(
        &self,
        ex: Exchange,
        path: &str,
        query: &[(&'static str, String)],
        on_error: fn(u16, &[u8]) -> FetchError,
        demand: Demand<'_>,
        cost: u32,
    ) -> Result<bytes::Bytes, FetchError> {
        let breaker = &self.breakers[slot(ex)];
        // Asked before the budget, so an open circuit spends no permit; taken after it,
        // since the probe's turn is when its request really goes out.
        if !breaker.would_admit(Instant::now()) {
            return Err(FetchError::CircuitOpen);
        }
        self.wait_for_turn(ex, demand, cost).await?;
        let Some(ticket) = breaker.admit(Instant::now()) else {
            return Err(FetchError::CircuitOpen);
        };
        let result = self.send(ex, path, query, on_error).await;
        ticket.settle(Instant::now(), health(&result));
        metrics::gauge!("candlepipe_breaker_state", "exchange" => ex.as_str())
            .set(f64::from(breaker.state().level()));
        metrics::counter!("candlepipe_exchange_requests_total", "exchange" => ex.as_str(), "outcome" => outcome(&result))
            .increment(1);
        result
    }

    /// Takes the turn of live job `demand`'s first request now, if the budget grants it at
    /// once and no request of this process waits for one: the fill asks for it alongside
    /// its series' lock and stored state, one round trip less before the request. Whether
    /// it was taken; the job's first request uses it (within [`AHEAD_FOR`]), and a turn
    /// the job did not use goes back with [`ExchangeClient::give_back_turn`].
    pub async fn take_turn_ahead(&self, ex: Exchange, demand: Demand<'_>) -> bool {
        let (Some(budget), Demand::Live { job }) = (&self.budget, demand) else {
            return false;
        };
        if !self.breakers[slot(ex)].would_admit(Instant::now()) {
            return false;
        }
        let queue = &self.queues[slot(ex)][demand.priority() as usize];
        let Ok(_turn) = queue.try_lock() else {
            return false;
        };
        match budget.try_now(ex, demand).await {
            Ok(true) => {
                self.hold_ahead(job, Instant::now());
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::debug!(error = %e, exchange = %ex, "no turn taken ahead");
                false
            }
        }
    }

    /// Takes over the turn live job `demand`'s admission took for it `age` ago (the ingest
    /// admitted it with its first turn, see the worker's `gcra::admit`), as if the job had
    /// taken it ahead itself: its first request uses it, within [`AHEAD_FOR`] of its
    /// taking. Whether it was taken over: not when it is already that old, or when this
    /// process takes part in no cluster budget. A turn not taken over is left unused, not
    /// given back (the budget is one request short for a moment): a job copied with its
    /// headers (a dead letter replayed) must never hand back a turn it did not take.
    pub fn adopt_turn(&self, demand: Demand<'_>, age: Duration) -> bool {
        let (Some(_), Demand::Live { job }) = (&self.budget, demand) else {
            return false;
        };
        if age > AHEAD_FOR {
            return false;
        }
        let Some(taken) = Instant::now().checked_sub(age) else {
            return false;
        };
        self.hold_ahead(job, taken);
        true
    }

    /// Notes that live job `job` holds a turn taken at `taken` (forgetting any older than
    /// a minute, whose jobs are long gone).
    fn hold_ahead(&self, job: &str, taken: Instant) {
        let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        ahead.retain(|_, t| t.elapsed() < Duration::from_secs(60));
        ahead.insert(job.to_string(), taken);
    }

    /// Gives back the turn job `demand` took ahead and did not use (its series was fresh,
    /// its lock held, its request failed before it went out); nothing if it has none.
    pub async fn give_back_turn(&self, ex: Exchange, demand: Demand<'_>) {
        if let (Some(_), Some(budget)) = (self.take_ahead(demand), &self.budget) {
            budget.settle_ahead(ex, false).await;
        }
    }

    /// The turn `demand` took ahead, taken out of the map.
    fn take_ahead(&self, demand: Demand<'_>) -> Option<Instant> {
        let Demand::Live { job } = demand else {
            return None;
        };
        let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        ahead.remove(job)
    }

    /// Waits until a request to `ex` for `demand` could go out, without taking the turn: a
    /// bulk job waits here before it locks its series, so that it holds no lock a live job
    /// would wait for while it waits for live work to pass.
    pub async fn await_turn(&self, ex: Exchange, demand: Demand<'_>) -> Result<(), FetchError> {
        self.wait_for_turn(ex, demand, 0).await
    }

    /// Waits until `cost` requests to `ex` may go out for `demand`: the cluster-wide budget
    /// (one request of each priority asking at a time in this process), or this process's
    /// own limiter when it takes part in no budget.
    async fn wait_for_turn(
        &self,
        ex: Exchange,
        demand: Demand<'_>,
        cost: u32,
    ) -> Result<(), FetchError> {
        if let Some(taken) = self.take_ahead(demand) {
            let used = cost == 1 && taken.elapsed() <= AHEAD_FOR;
            if let Some(b) = &self.budget {
                b.settle_ahead(ex, used).await;
            }
            if used {
                return Ok(());
            }
        }
        let waiting = Instant::now();
        match &self.budget {
            Some(b) => {
                let queue = &self.queues[slot(ex)][demand.priority() as usize];
                let _turn = queue.lock().await;
                b.acquire(ex, demand, cost).await?;
            }
            None => {
                if let Some(n) = NonZeroU32::new(cost) {
                    // A cost above the burst can never be granted at once: cell by cell.
                    if self.limiters[slot(ex)].until_n_ready(n).await.is_err() {
                        for _ in 0..cost {
                            self.limiters[slot(ex)].until_ready().await;
                        }
                    }
                }
            }
        }
        metrics::histogram!("candlepipe_ratelimit_wait_seconds", "exchange" => ex.as_str(), "priority" => demand.priority().as_str())
            .record(waiting.elapsed().as_secs_f64());
        Ok(())
    }

    /// One HTTP request to the exchange, in a span of its own (a child of the job's, so it
    /// carries the job's trace).
    #[tracing::instrument(name = "exchange_call", level = "info", skip(self, ex, query, on_error), fields(exchange = %ex))]
    async fn send(
        &self,
        ex: Exchange,
        path: &str,
        query: &[(&'static str, String)],
        on_error: fn(u16, &[u8]) -> FetchError,
    ) -> Result<bytes::Bytes, FetchError> {
        let url = format!(
            "{}{}",
            self.settings.endpoint(ex).url.trim_end_matches('/'),
            path
        );
        tracing::debug!(exchange = %ex, path, "exchange request");
        let resp = self
            .http
            .get(&url)
            .query(query)
            .send()
            .await
            .map_err(FetchError::from_reqwest)?;
        let status = resp.status().as_u16();
        if status == 429 || status == 418 {
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = resp.bytes().await.unwrap_or_default();
            return Err(FetchError::RateLimited {
                retry_after,
                banned: status == 418,
                message: crate::parse::cut(&String::from_utf8_lossy(&body)),
            });
        }
        if ex == Exchange::Binance {
            self.watch_binance_weight(resp.headers()).await;
        }
        let body = resp.bytes().await.map_err(FetchError::from_reqwest)?;
        if status != 200 {
            return Err(on_error(status, &body));
        }
        // Kraken reports its rate limit inside a 200 body.
        if ex == Exchange::Kraken {
            if let Err(e @ FetchError::RateLimited { .. }) = crate::kraken::check_error(&body) {
                return Err(e);
            }
        }
        Ok(body)
    }

    /// Binance counts request weight per minute (`X-MBX-USED-WEIGHT-1M`); near the limit,
    /// hold everyone off until the minute turns, before Binance answers 429.
    async fn watch_binance_weight(&self, headers: &reqwest::header::HeaderMap) {
        let used = headers
            .get("x-mbx-used-weight-1m")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let (Some(used), Some(b)) = (used, &self.budget) {
            if used >= BINANCE_WEIGHT_STOP {
                let now = candlepipe_core::now_ms();
                let hold = Duration::from_millis((60_000 - now.rem_euclid(60_000)) as u64);
                b.pause(
                    Exchange::Binance,
                    hold,
                    format!("used weight {used} of {BINANCE_WEIGHT_LIMIT}"),
                )
                .await;
            }
        }
    }
}

fn ascending(mut trades: Vec<coinbase::TradeRow>) -> Vec<coinbase::TradeRow> {
    trades.sort_by_key(|t| t.id);
    trades.dedup_by_key(|t| t.id);
    trades
}
