//! `candlepipe bench`: a load generator for `candlepipe.candles.get`, with HDR histograms, and
//! `--serve-echo`, a trivial responder that measures what the transport alone can do.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use candlepipe_core::{CandlesRequest, Exchange, Interval, Subjects};
use candlepipe_exchange::budget::Demand;
use candlepipe_exchange::markets::{Listing, Market};
use candlepipe_exchange::ExchangeClient;
use clap::ValueEnum;
use futures::StreamExt;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;

use crate::live;
use crate::scenarios::{self, Scenario};
use crate::setup::Setup;
use crate::streams::StreamsOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// The same few series again and again: L1 hits.
    Hot,
    /// The same as hot, meant for ingest running with `CANDLEPIPE_L1_CAPACITY=0`: Redis hits.
    Redis,
    /// A series never asked for before on every request: misses filled from the exchange.
    Cold,
    /// Many series, intervals and limits with Zipf popularity: a realistic mix.
    Zipf,
    /// A trivial responder (`--serve-echo`, another process): the transport's own limit.
    Echo,
    /// The cold workload's requests sent straight to the exchange with candlepipe's HTTP
    /// client (no NATS, no cache): the exchange's own latency, which cold misses add to.
    Direct,
    /// Live candles from the simulator's stream to a NATS subscriber (`--series` watched,
    /// `--rate` updates a second in all; needs `--sim-url` and a stream worker).
    Live,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value = "hot")]
    workload: Workload,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to measure, in seconds (after a one-second warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Series in the zipf mix.
    #[arg(long, default_value_t = 1000)]
    series: usize,
    /// NATS connections the requesters share.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Run the echo responder (until SIGTERM) instead of generating load.
    #[arg(long)]
    serve_echo: bool,
    /// With `--workload echo`: ask the responder for replies of this many bytes (default:
    /// the request echoed), to compare with workloads whose replies are that large.
    #[arg(long)]
    reply_bytes: Option<usize>,
    /// Run a scenario of spending the exchanges' budgets under pressure instead of a
    /// workload; prints one JSON object (`--duration` is each of its phases' length).
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// The simulator's URL, to count the exchange calls a scenario caused (and, for the
    /// live workload, to set its stream rate).
    #[arg(long)]
    sim_url: Option<String>,
    /// With `--workload cold` or `direct`: every window of this interval (default: 1m, 3m,
    /// 5m and 15m in turn, 2,000 requests each). Ingest widens a miss to the widest window
    /// asked for on the exchange and interval lately, so a fixed interval after a run that
    /// asked for wider windows of it measures widened misses.
    #[arg(long, value_parser = parse_interval)]
    cold_interval: Option<Interval>,
    /// With `--workload live`: live candles a second, in all.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// With `--scenario streams`: series on Binance, Kraken and Coinbase.
    #[arg(long, default_value = "100,100,100", value_parser = parse_mix)]
    mix: StreamsMix,
    /// With `--scenario streams`: the requests' `max_age_ms` (`default`: leave it out, so
    /// that the service's default for streamed series applies).
    #[arg(long, default_value = "2000")]
    max_age_ms: String,
}

fn parse_interval(s: &str) -> Result<Interval, String> {
    Interval::parse(s).map_err(|e| e.message)
}

/// Series per exchange for the streams scenario: Binance, Kraken, Coinbase.
#[derive(Debug, Clone, Copy)]
pub struct StreamsMix(pub [usize; 3]);

fn parse_mix(s: &str) -> Result<StreamsMix, String> {
    let counts: Vec<usize> = s
        .split(',')
        .map(|n| n.trim().parse::<usize>().map_err(|e| format!("{n}: {e}")))
        .collect::<Result<_, _>>()?;
    match counts[..] {
        [b, k, c] => Ok(StreamsMix([b, k, c])),
        _ => Err(format!("three counts (Binance,Kraken,Coinbase), got '{s}'")),
    }
}

/// Request header telling the echo responder how large a reply to send.
const REPLY_BYTES_HEADER: &str = "Bench-Reply-Bytes";

fn echo_subject(setup: &Setup) -> String {
    format!("{}.bench.echo", setup.prefix)
}

/// Builds the payload of request number `n` of a workload.
struct Requests {
    workload: Workload,
    zipf_cdf: Vec<f64>,
    cold_base: u64,
    cold_interval: Option<Interval>,
}

const ZIPF_S: f64 = 1.1;
const ZIPF_INTERVALS: [Interval; 4] = [Interval::M1, Interval::M5, Interval::H1, Interval::D1];
const ZIPF_LIMITS: [u32; 4] = [50, 100, 200, 500];
const EXCHANGES: [&str; 3] = ["binance", "coinbase", "kraken"];
const COLD_INTERVALS: [Interval; 4] = [Interval::M1, Interval::M3, Interval::M5, Interval::M15];
/// Distinct cold windows; a run takes consecutive ones from a point set by the clock.
const COLD_WINDOWS: u64 = 2000 * 4 * 125;

impl Requests {
    fn new(workload: Workload, series: usize, cold_interval: Option<Interval>) -> Self {
        let mut cdf = Vec::with_capacity(series);
        let mut total = 0.0;
        for k in 1..=series.max(1) {
            total += 1.0 / (k as f64).powf(ZIPF_S);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        // Cold windows must be new in every run: start from the clock.
        let cold_base = candlepipe_core::now_ms() as u64 % COLD_WINDOWS;
        Requests {
            workload,
            zipf_cdf: cdf,
            cold_base,
            cold_interval,
        }
    }

    fn hot_series() -> [serde_json::Value; 4] {
        let r = |ex: &str, sym: &str| json!({"exchange":ex,"symbol":sym,"interval":"1h","limit":100,"max_age_ms":3_600_000});
        [
            r("binance", "BTC/USDT"),
            r("binance", "ETH/USDT"),
            r("coinbase", "BTC/USD"),
            r("kraken", "ETH/USD"),
        ]
    }

    /// Cold request `k`: a window of 100 closed candles nobody asked for, one of
    /// [`COLD_WINDOWS`] (2,000 listed series × 4 intervals, or the one `interval`, × 125
    /// windows back in time, a page (1,000 candles) apart, so that no fill widened to an
    /// earlier request's width holds a later one's).
    fn cold(k: u64, interval: Option<Interval>) -> serde_json::Value {
        let (iv, window) = match interval {
            Some(iv) => (iv, k / 2000 % 125),
            None => (COLD_INTERVALS[(k / 2000 % 4) as usize], k / 8000),
        };
        let back = (window + 1) as i64 * 1000 * iv.millis();
        let end = iv.open_of(candlepipe_core::now_ms()) - back;
        json!({"exchange":"binance","symbol":format!("TEST{}/USDT", k % 2000),
               "interval":iv.as_str(),"limit":100,"end":end})
    }

    fn zipf(i: usize) -> serde_json::Value {
        let ex = EXCHANGES[i % 3];
        let quote = if ex == "binance" { "USDT" } else { "USD" };
        json!({
            "exchange": ex,
            "symbol": format!("TEST{}/{quote}", i / 3 % 2000),
            "interval": ZIPF_INTERVALS[(i / 7) % ZIPF_INTERVALS.len()].as_str(),
            "limit": ZIPF_LIMITS[(i / 11) % ZIPF_LIMITS.len()],
        })
    }

    fn payload(&self, n: u64, rng: &mut impl Rng) -> Vec<u8> {
        let value = match self.workload {
            Workload::Hot | Workload::Redis | Workload::Echo => {
                let hot = Self::hot_series();
                hot[(n % hot.len() as u64) as usize].clone()
            }
            Workload::Cold | Workload::Direct => {
                Self::cold((self.cold_base + n) % COLD_WINDOWS, self.cold_interval)
            }
            Workload::Zipf => {
                let u: f64 = rng.random();
                Self::zipf(self.zipf_cdf.partition_point(|c| *c < u))
            }
            // Measured by [`crate::live`], which sends no candle requests.
            Workload::Live => serde_json::Value::Null,
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }
}

/// `"source":"l1"` etc. from the start of a JSON reply, without parsing the candles; an
/// error reply is `error:<code>`.
fn source_of(reply: &[u8]) -> &'static str {
    let head = &reply[..reply.len().min(200)];
    let find = |needle: &[u8]| head.windows(needle.len()).position(|w| w == needle);
    if find(b"\"ok\":false").is_some() {
        return error_label(head);
    }
    if find(b"\"source\":\"l1\"").is_some() {
        "l1"
    } else if find(b"\"source\":\"redis\"").is_some() {
        "redis"
    } else if find(b"\"source\":\"exchange\"").is_some() {
        "exchange"
    } else {
        "echo"
    }
}

fn error_label(head: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(head);
    let code = text
        .split("\"code\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(candlepipe_core::ErrorCode::parse);
    match code {
        Some(c) => {
            ERROR_LABELS[candlepipe_core::ErrorCode::ALL
                .iter()
                .position(|x| *x == c)
                .unwrap_or(0)]
        }
        None => "error",
    }
}

/// `error:<code>` for each code, in `ErrorCode::ALL` order.
const ERROR_LABELS: [&str; 10] = [
    "error:bad_request",
    "error:unknown_exchange",
    "error:invalid_symbol",
    "error:unknown_symbol",
    "error:unsupported_interval",
    "error:limit_out_of_range",
    "error:rate_limited",
    "error:upstream_error",
    "error:timeout",
    "error:unavailable",
];

/// Where the requests go: candlepipe (or the echo) over NATS, or the exchange itself.
#[derive(Clone)]
enum Target {
    Nats {
        client: async_nats::Client,
        subject: String,
        headers: async_nats::HeaderMap,
    },
    /// The exchange itself, with Binance's market list for the native ids.
    Direct(ExchangeClient, Arc<Listing>),
}

impl Target {
    /// Sends one request; returns where the answer came from and its size, or `None` when
    /// nothing came back in time.
    async fn call(&self, payload: Bytes) -> Option<(&'static str, u64)> {
        let limit = Duration::from_secs(10);
        match self {
            Target::Nats {
                client,
                subject,
                headers,
            } => {
                let request = async_nats::Request::new()
                    .payload(payload)
                    .headers(headers.clone());
                let msg =
                    tokio::time::timeout(limit, client.send_request(subject.clone(), request))
                        .await
                        .ok()?
                        .ok()?;
                Some((source_of(&msg.payload), msg.payload.len() as u64))
            }
            Target::Direct(exchange, markets) => {
                let q = serde_json::from_slice::<CandlesRequest>(&payload)
                    .ok()?
                    .validate()
                    .ok()?;
                let market = Market::named(markets.get(&q.series.symbol)?);
                let now = candlepipe_core::now_ms();
                let w = q.window(now);
                match tokio::time::timeout(
                    limit,
                    exchange.fetch(&q.series, &market, w.from, w.to, now, Demand::Bulk),
                )
                .await
                .ok()?
                {
                    Ok(got) if !got.candles.is_empty() => Some(("direct", 0)),
                    _ => Some(("error:upstream_error", 0)),
                }
            }
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    workload: Workload,
    concurrency: usize,
    duration_s: f64,
    requests: u64,
    errors: u64,
    rps: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    /// Mean reply size.
    reply_bytes: u64,
    sources: BTreeMap<&'static str, u64>,
}

async fn serve_echo(setup: &Setup) -> anyhow::Result<ExitCode> {
    let nats = setup
        .nats("candlepipe-bench-echo", Duration::from_secs(10))
        .await?;
    let mut sub = nats
        .queue_subscribe(echo_subject(setup), "bench-echo".to_string())
        .await?;
    eprintln!("echo responder on {}", echo_subject(setup));
    let stop = setup.stop.cancelled();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            msg = sub.next() => {
                let Some(msg) = msg else { break };
                let Some(reply) = msg.reply else { continue };
                let size = msg.headers.as_ref().and_then(|h| h.get(REPLY_BYTES_HEADER)).and_then(|v| v.as_str().parse::<usize>().ok());
                let body = match size {
                    Some(n) => Bytes::from(vec![b'x'; n.min(1 << 20)]),
                    None => msg.payload,
                };
                let _ = nats.publish(reply, body).await;
            }
            _ = &mut stop => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(setup: &Setup, args: Args) -> anyhow::Result<ExitCode> {
    if args.serve_echo {
        return serve_echo(setup).await;
    }
    if args.workload == Workload::Live {
        let report = live::run(
            setup,
            args.series,
            args.rate,
            args.duration,
            args.sim_url.as_deref(),
        )
        .await?;
        if args.json {
            println!("{report}");
        } else {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(scenario) = args.scenario {
        let max_age_ms = match args.max_age_ms.as_str() {
            "default" => None,
            ms => Some(
                ms.parse::<i64>()
                    .map_err(|e| anyhow::anyhow!("--max-age-ms {ms}: {e}"))?,
            ),
        };
        let streams = StreamsOptions {
            mix: args.mix.0,
            max_age_ms,
            watch_subject: Subjects::new(&setup.prefix).candles_watch(),
        };
        let report = scenarios::run(
            setup,
            scenario,
            args.duration,
            args.sim_url.as_deref(),
            streams,
        )
        .await?;
        println!("{report}");
        return Ok(ExitCode::SUCCESS);
    }
    let subject = match args.workload {
        Workload::Echo => echo_subject(setup),
        _ => Subjects::new(&setup.prefix).candles_get(),
    };
    let mut clients = Vec::new();
    if args.workload != Workload::Direct {
        for i in 0..args.connections.max(1) {
            clients.push(
                setup
                    .nats(&format!("candlepipe-bench-{i}"), Duration::ZERO)
                    .await?,
            );
        }
    }
    let direct = match args.workload {
        Workload::Direct => {
            let client =
                ExchangeClient::new(setup.exchanges.clone()).context("building the HTTP client")?;
            let markets = client
                .markets(Exchange::Binance, Demand::Bulk)
                .await
                .context("loading Binance's market list")?;
            Some((client, Arc::new(markets)))
        }
        _ => None,
    };
    let requests = Arc::new(Requests::new(
        args.workload,
        args.series,
        args.cold_interval,
    ));

    // Warm the hot series so the measurement sees only hits (through the typed client;
    // the measurement itself sends pre-encoded bytes, as the echo it is compared with).
    if matches!(args.workload, Workload::Hot | Workload::Redis) {
        let client = candlepipe_client::Client::new(clients[0].clone()).with_prefix(&setup.prefix);
        for r in Requests::hot_series() {
            let r: CandlesRequest = serde_json::from_value(r)?;
            client
                .candles(&r)
                .await
                .with_context(|| format!("warm-up of {} {} failed", r.exchange, r.symbol))?;
        }
    }

    let counter = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let warmup = Duration::from_secs(1);
    let measure = Duration::from_secs_f64(args.duration.max(0.1));
    let started = Instant::now();
    let (measure_from, measure_until) = (started + warmup, started + warmup + measure);

    let mut tasks = tokio::task::JoinSet::new();
    let mut headers = async_nats::HeaderMap::new();
    if let (Workload::Echo, Some(n)) = (args.workload, args.reply_bytes) {
        headers.insert(REPLY_BYTES_HEADER, n.to_string().as_str());
    }
    for t in 0..args.concurrency.max(1) {
        let target = match &direct {
            Some((exchange, markets)) => Target::Direct(exchange.clone(), markets.clone()),
            None => Target::Nats {
                client: clients[t % clients.len()].clone(),
                subject: subject.clone(),
                headers: headers.clone(),
            },
        };
        let (requests, counter, failed) = (requests.clone(), counter.clone(), failed.clone());
        tasks.spawn(async move {
            let mut hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut sources: BTreeMap<&'static str, u64> = BTreeMap::new();
            let mut rng = rand::rngs::StdRng::from_os_rng();
            let mut errors = 0u64;
            let mut bytes = 0u64;
            loop {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let payload = Bytes::from(requests.payload(n, &mut rng));
                let sent = Instant::now();
                if sent >= measure_until {
                    break;
                }
                let reply = target.call(payload).await;
                if sent < measure_from {
                    continue;
                }
                match reply {
                    Some((source, size)) => {
                        if source.starts_with("error") {
                            errors += 1;
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        *sources.entry(source).or_default() += 1;
                        bytes += size;
                        let _ = hist.record(sent.elapsed().as_micros() as u64);
                    }
                    None => {
                        errors += 1;
                        failed.fetch_add(1, Ordering::Relaxed);
                        *sources.entry("error:no_reply").or_default() += 1;
                    }
                }
            }
            (hist, sources, errors, bytes)
        });
    }

    // A progress line while it runs.
    let progress = {
        let (counter, failed) = (counter.clone(), failed.clone());
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = counter.load(Ordering::Relaxed);
                eprint!(
                    "\r{:>6.1}s  {:>10} requests  {:>9} failed  {:>9} req/s   ",
                    started.elapsed().as_secs_f64(),
                    now,
                    failed.load(Ordering::Relaxed),
                    now - last
                );
                let _ = std::io::stderr().flush();
                last = now;
            }
        })
    };

    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut sources: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut errors, mut bytes) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (h, s, e, b) = done?;
        bytes += b;
        hist.add(&h)?;
        for (k, v) in s {
            *sources.entry(k).or_default() += v;
        }
        errors += e;
    }
    progress.abort();
    eprintln!();

    let requests = hist.len();
    let report = Report {
        workload: args.workload,
        concurrency: args.concurrency,
        duration_s: measure.as_secs_f64(),
        requests,
        errors,
        rps: requests as f64 / measure.as_secs_f64(),
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
        reply_bytes: bytes / requests.max(1),
        sources,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{}", serde_json::to_string(&report)?);
    } else {
        let ms = |us: u64| us as f64 / 1000.0;
        let _ = writeln!(out, "workload     conc  requests   errors      req/s   p50 ms   p99 ms  p99.9 ms   max ms  reply B  sources");
        let _ = writeln!(
            out,
            "{:<10} {:>6} {:>9} {:>8} {:>10.0} {:>8.3} {:>8.3} {:>9.3} {:>8.3} {:>8}  {:?}",
            format!("{:?}", report.workload).to_lowercase(),
            report.concurrency,
            report.requests,
            report.errors,
            report.rps,
            ms(report.p50_us),
            ms(report.p99_us),
            ms(report.p999_us),
            ms(report.max_us),
            report.reply_bytes,
            report.sources
        );
    }
    drop(out);
    let answered = report
        .sources
        .iter()
        .filter(|(k, _)| !k.starts_with("error"))
        .map(|(_, n)| n)
        .sum::<u64>();
    if answered == 0 {
        let hint = match args.workload {
            Workload::Echo => {
                format!("nothing answers on {subject}: start `candlepipe bench --serve-echo` first")
            }
            Workload::Direct => "is the exchange reachable?".to_string(),
            _ => format!("nothing answers on {subject}: are ingest workers running?"),
        };
        eprintln!("no request was answered ({} failed): {hint}", report.errors);
        return Ok(ExitCode::FAILURE);
    }
    if report.errors > 0 {
        eprintln!(
            "{} of {} measured requests failed",
            report.errors,
            report.errors + answered
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn window(v: &serde_json::Value) -> (String, String, i64) {
        (
            v["symbol"].as_str().unwrap_or_default().to_string(),
            v["interval"].as_str().unwrap_or_default().to_string(),
            v["end"].as_i64().unwrap_or_default(),
        )
    }

    #[test]
    fn cold_windows_of_one_interval_are_all_of_it_and_never_repeat_within_a_run() {
        let ks = 123_456..123_456 + 10_000;
        let windows: Vec<_> = ks
            .clone()
            .map(|k| window(&Requests::cold(k, Some(Interval::M1))))
            .collect();
        assert!(windows.iter().all(|w| w.1 == "1m"));
        assert_eq!(windows.iter().collect::<HashSet<_>>().len(), 10_000);
        // Without one, the intervals take turns, 2,000 requests each.
        let mixed: HashSet<String> = ks.map(|k| window(&Requests::cold(k, None)).1).collect();
        assert_eq!(mixed.len(), 4);
    }
}
