//! `candlepipe backfill EXCHANGE SYMBOL INTERVAL --since DATE`: pages history into the cache
//! within the cluster-wide request budget; Binance's closed months and days come from its
//! public archive first (files, no API weight), Kraken's history past its OHLC from its
//! trades. Resumable: what the store already covers is skipped, so running it again
//! continues where it stopped. It ends saying its route and what it cost.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use candlepipe_core::closing::closed_bound;
use candlepipe_core::{
    now_ms, BuiltFrom, ErrorCode, Exchange, Interval, Millis, SeriesKey, Symbol, WireError,
};
use candlepipe_exchange::binance_archive::{self, Period, Piece};
use candlepipe_exchange::budget::Demand;
use candlepipe_store::Records;
use candlepipe_worker::cluster::markets::Markets;
use candlepipe_worker::cluster::stats::{self as cluster_stats, Counters, Field};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::connect;
use crate::errors::Input;
use crate::times::{format_instant, parse_instant};

/// A series and a range of its closed candles (shared with `candlepipe export`).
#[derive(clap::Args)]
pub struct Range {
    exchange: String,
    symbol: String,
    interval: String,
    /// Oldest candle wanted: RFC 3339, a UTC date (2026-12-01) or ms.
    #[arg(long)]
    since: String,
    /// Newest candle wanted (default: the last closed one).
    #[arg(long)]
    until: Option<String>,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    range: Range,
    /// Candles per exchange request batch (1 to 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=1000))]
    page: i64,
    /// Binance: page REST klines only, not Binance's archive of closed months and days.
    #[arg(long)]
    rest_only: bool,
    /// Without `CANDLEPIPE_HMAC_KEY`, sign with the public development key (a local trial).
    #[arg(long)]
    dev: bool,
}

/// Progress as a bar on a terminal, as a line per page elsewhere (logs, CI).
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            ProgressBar::new(total).with_style(
                ProgressStyle::with_template("backfill {bar:40} {pos}/{len} candle slots {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            )
        });
        Progress {
            bar,
            total,
            done: 0,
        }
    }

    fn advance(&mut self, n: u64, stored: u64) {
        self.done += n;
        match &self.bar {
            Some(b) => {
                b.set_position(self.done);
                b.set_message(format!("{stored} candles stored"));
            }
            None => eprintln!(
                "backfill: {}/{} candle slots ({:.0}%), {stored} candles stored",
                self.done,
                self.total,
                100.0 * self.done as f64 / self.total.max(1) as f64
            ),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

pub async fn run(cfg: &Config, args: Args) -> anyhow::Result<ExitCode> {
    cfg.require_hmac_key(args.dev)?;
    let (series, from, to) = args.range.resolve()?;
    let route = match args.rest_only {
        true => Route::RestOnly,
        false => Route::Cheapest,
    };
    let filled = fill_range(cfg, &series, from, to, args.page, route).await?;
    println!(
        "backfilled {series}: {} candle slots from {} to {}, {} candles fetched, {} already cached; {}",
        filled.slots,
        format_instant(from),
        format_instant(to),
        filled.stored,
        filled.already,
        filled.route(series.exchange)
    );
    Ok(ExitCode::SUCCESS)
}

impl Range {
    /// The series, and the open times of the first and last closed candles wanted.
    pub(crate) fn resolve(&self) -> anyhow::Result<(SeriesKey, Millis, Millis)> {
        resolve(
            &self.exchange,
            &self.symbol,
            &self.interval,
            &self.since,
            self.until.as_deref(),
        )
    }
}

fn resolve(
    exchange: &str,
    symbol: &str,
    interval: &str,
    since: &str,
    until: Option<&str>,
) -> anyhow::Result<(SeriesKey, Millis, Millis)> {
    let series = SeriesKey::new(
        Exchange::parse(exchange)?,
        Symbol::parse(&super::unified_symbol(exchange, symbol))?,
        Interval::parse(interval)?,
    );
    if series.exchange.source_interval(series.interval).is_none() {
        return Err(WireError::new(
            ErrorCode::UnsupportedInterval,
            format!(
                "{} does not serve {} candles",
                series.exchange, series.interval
            ),
        )
        .into());
    }
    let iv = series.interval;
    let from = iv.open_of(parse_instant(since).context("--since")?);
    let last_closed = closed_bound(iv, now_ms());
    let to = match until {
        Some(u) => iv
            .open_of(parse_instant(u).context("--until")?)
            .min(last_closed),
        None => last_closed,
    };
    if from > to {
        return Err(Input(format!(
            "nothing to do: --since ({}) is after {} ({})",
            format_instant(from),
            match until {
                Some(_) if to < last_closed => "--until",
                _ => "the last closed candle",
            },
            format_instant(to)
        ))
        .into());
    }
    Ok((series, from, to))
}

/// What [`fill_range`] did, and the store it filled.
pub(crate) struct Filled {
    pub slots: u64,
    pub stored: u64,
    pub already: u64,
    /// Of `stored`, the candles built from the exchange's trades (Kraken's history).
    pub from_trades: u64,
    /// Exchange calls made (candles, trades and market lists).
    pub calls: u64,
    /// The exchange's budget, requests per second.
    pub rps: u32,
    pub archive: ArchiveUse,
    pub store: candlepipe_store::SeriesStore,
}

/// Which ways [`fill_range`] may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Binance's archive first, then REST.
    Cheapest,
    /// REST pages only.
    RestOnly,
}

/// What Binance's archive gave a backfill.
#[derive(Debug, Default)]
pub(crate) struct ArchiveUse {
    pub files: u64,
    pub bytes: u64,
    /// Files missing or failing their checksum, asked of smaller files or REST instead.
    pub fallbacks: u64,
}

impl Filled {
    /// Which way the candles came and what it cost.
    pub(crate) fn route(&self, ex: Exchange) -> String {
        let rest = format!("{} {ex} calls (its budget: {}/s)", self.calls, self.rps);
        let a = &self.archive;
        let archive = format!(
            "{} archive files ({:.1} MB, no API weight{})",
            a.files,
            a.bytes as f64 / 1e6,
            match a.fallbacks {
                0 => String::new(),
                n => format!("; {n} not at hand, asked otherwise"),
            }
        );
        match (ex, self.from_trades) {
            (Exchange::Binance, _) if a.files + a.fallbacks > 0 => {
                format!("route: {ex} archive and candles REST: {archive}, {rest}")
            }
            (_, 0) => format!("route: {ex} candles REST, {rest}"),
            (_, n) if n == self.stored => {
                format!("route: {ex} trades (all {n} built from trades), {rest}")
            }
            (_, n) => {
                format!("route: {ex} candles REST and trades ({n} built from trades), {rest}")
            }
        }
    }
}

/// Pages what the store lacks of `[from, to]` into it from the exchange, within the
/// cluster-wide budget, showing progress.
pub(crate) async fn fill_range(
    cfg: &Config,
    series: &SeriesKey,
    from: Millis,
    to: Millis,
    page: i64,
    route: Route,
) -> anyhow::Result<Filled> {
    let series = series.clone();
    let step = series.interval.millis();
    let slots = ((to - from) / step + 1) as u64;
    if slots as usize > cfg.history_cap {
        eprintln!(
            "warning: {slots} candles exceed the history cap ({}); the oldest will be dropped again (CANDLEPIPE_HISTORY_CAP)",
            cfg.history_cap
        );
    }

    let nats = connect::nats(cfg, "candlepipe-backfill", Duration::ZERO).await?;
    let redis = connect::redis(cfg, Duration::ZERO).await?;
    let stats = Arc::new(Counters::default());
    let connect::Filling {
        store,
        exchange: client,
        ..
    } = connect::filling(cfg, &nats, &redis, stats.clone()).await?;
    let markets = Markets::new(
        Records::new(redis.clone(), cfg.keyring.clone(), &cfg.redis_prefix),
        redis.clone(),
        cfg.markets,
    );
    let market = markets
        .market(&series, &client)
        .await
        .with_context(|| series.to_string())?;
    if series.exchange == Exchange::Kraken && market.decimals.is_none() {
        eprintln!("note: Kraken's AssetPairs gives no decimals for {}: only its 720 most recent candles can be fetched", market.native);
    }

    // Resume: only the parts the store does not cover yet.
    let state = store
        .read(&series, from, from)
        .await?
        .map(|r| r.state)
        .unwrap_or_default();
    let gaps = state.coverage.gaps(from, to, step);
    let mut progress = Progress::new(slots);
    let already = slots
        - gaps
            .iter()
            .map(|(a, b)| ((b - a) / step + 1) as u64)
            .sum::<u64>();
    let mut stored = 0u64;
    let mut from_trades = 0u64;
    if already > 0 {
        progress.advance(already, stored);
    }
    let page = page.max(1) * step;
    let mut archive = ArchiveUse::default();
    // What no file covers, for REST after the files: contiguous spans (a day whose file is
    // not at hand beside the next, yesterday beside today) merged into one run of pages.
    let mut rest: Vec<(Millis, Millis)> = Vec::new();
    for (a, b) in gaps {
        // Binance: its archive's closed months and days first (no API weight), REST for
        // the rest and for any file it lacks or that fails its checksum.
        let mut pieces: VecDeque<Piece> = match (series.exchange, route) {
            (Exchange::Binance, Route::Cheapest) => {
                binance_archive::plan(series.interval, a, b, now_ms()).into()
            }
            _ => VecDeque::from([Piece::Rest(a, b)]),
        };
        while let Some(piece) = pieces.pop_front() {
            let period = match piece {
                Piece::Rest(from, to) => {
                    merge_span(&mut rest, (from, to), step);
                    continue;
                }
                Piece::File(period) => period,
            };
            let (pa, pb) = period.span(series.interval);
            let span = (pa.max(a), pb.min(b));
            let now = now_ms();
            match client
                .binance_archived(&series, &market, period, span, now)
                .await
            {
                Ok(Some((fetched, bytes))) => {
                    archive.files += 1;
                    archive.bytes += bytes;
                    stored += fetched.candles.len() as u64;
                    store.write(&series, &fetched, now).await?;
                    progress.advance(((span.1 - span.0) / step + 1) as u64, stored);
                    continue;
                }
                Ok(None) => {}
                Err(e) => eprintln!(
                    "warning: {}: {e}; asking REST instead",
                    period.path(&market.native, series.interval)
                ),
            }
            archive.fallbacks += 1;
            // A month not at hand: its days' files; a day: REST.
            match period {
                Period::Month(_) => {
                    for day in period.days().into_iter().rev() {
                        let (da, db) = day.span(series.interval);
                        if db >= span.0 && da <= span.1 {
                            pieces.push_front(Piece::File(day));
                        }
                    }
                }
                Period::Day(_) => merge_span(&mut rest, span, step),
            }
        }
    }
    for (from, to) in rest {
        let mut cursor = from;
        while cursor <= to {
            let end = (cursor + page - step).min(to);
            let now = now_ms();
            let fetched = client
                .fetch(&series, &market, cursor, end, now, Demand::Bulk)
                .await
                .with_context(|| {
                    format!(
                        "fetching {series} from {} to {}",
                        format_instant(cursor),
                        format_instant(end)
                    )
                })?;
            stored += fetched.candles.len() as u64;
            from_trades += fetched
                .candles
                .iter()
                .filter(|c| c.built_from == Some(BuiltFrom::Trades))
                .count() as u64;
            store.write(&series, &fetched, now).await?;
            progress.advance(((end - cursor) / step + 1) as u64, stored);
            cursor = end + step;
        }
    }
    progress.finish();
    let calls = stats.count(Field::ExchangeCalls(series.exchange));
    // Count this run's exchange calls in the cluster totals (one flush, now).
    let done = tokio_util::sync::CancellationToken::new();
    done.cancel();
    stats
        .flush_every(
            redis,
            cluster_stats::key(&cfg.redis_prefix),
            Duration::ZERO,
            done,
        )
        .await;
    Ok(Filled {
        slots,
        stored,
        already,
        from_trades,
        calls,
        rps: cfg.exchanges.endpoint(series.exchange).rps,
        archive,
        store,
    })
}

/// Adds `span` to the REST spans, joined to the last one when it follows it directly.
fn merge_span(spans: &mut Vec<(Millis, Millis)>, span: (Millis, Millis), step: Millis) {
    match spans.last_mut() {
        Some(last) if last.1 + step == span.0 => last.1 = span.1,
        _ => spans.push(span),
    }
}
