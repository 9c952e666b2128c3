//! The Redis series store (SPEC §4).
//!
//! Layout, per series (the `{…}` hash tag keeps one series in one Redis Cluster slot):
//! - `cp:s:{binance:BTC-USDT:1m}:ver`   plain integer: the write version, for compare-and-set
//!   (a series' first is its write time in microseconds, then one more per write)
//! - `cp:s:{binance:BTC-USDT:1m}:meta`  envelope of [`MetaBody`]: fetch time, coverage, chunks
//! - `cp:s:{binance:BTC-USDT:1m}:c:<t>` envelope of up to 64 candles starting at chunk `t`,
//!   packed as integers ([`crate::packed`]): what fills merge into and L1 loads
//! - `cp:s:{binance:BTC-USDT:1m}:j:<r>` and `…:m:<r>`: envelopes of the same candles' reply
//!   fragments, JSON and MessagePack ([`crate::fragments`]), per run of 16 open times
//!   starting at `r`; written with their chunk's version, in the same Lua swap or (a fill
//!   job's write) in a second script right after it, so a Redis hit verifies and copies the
//!   runs its window touches instead of decoding chunks (a hit finding runs missing within
//!   [`RUNS_GRACE_MS`] of the swap reads the chunks; later, they are damage)
//! - `cp:s:{binance:BTC-USDT:1m}:live`  envelope whose write time is when the stream last
//!   proved the series had no undelivered trade (Kraken: any message on its connection;
//!   Coinbase: the product's heartbeat), read with the meta
//! - `cp:s:{binance:BTC-USDT:1m}:fence` plain integer: the newest stream lease fence that
//!   claimed or wrote the series; a stream write with an older one is refused
//! - `cp:s:{binance:BTC-USDT:1m}:lock`  a fill worker's token while it fills the series
//! - `cp:s:{binance:BTC-USDT:1m}:job:<Nats-Msg-Id>`  set when a fill job for the series
//!   finished, for the dedup window (by the job's write itself when it wrote)
//! - channel `cp:ready`: a fill job's write publishes its `ready` event there as it lands,
//!   with the values it stored ([`JobWrite::signal`], [`crate::write_signal`]), for the
//!   ingests waiting for it
//!
//! Requests of every `limit` read the same chunks. A write reads, merges and then swaps in
//! everything with one Lua script that fails if another writer got there first; the writer
//! then reads and merges again. The merge keeps confirmed candles ([`Standing`]: a stored
//! candle is replaced only by one that stands at least as high). History is capped by
//! dropping the oldest chunks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::Redis;
use candlepipe_core::{
    now_ms, Candle, Coverage, Encoding, Fetched, Millis, ReadyEvent, SeriesKey, SeriesState,
};
use serde::{Deserialize, Serialize};

use crate::envelope::{Keyring, Stored, Unusable};
use crate::write_signal::WriteValues;
use crate::StoreError;
use bytes::Bytes;

/// Candles per chunk value. A read decodes and verifies whole chunks, so a window of
/// `limit` candles costs about `limit + CHUNK_CANDLES` candles of work; a write rewrites
/// the chunks it touches. 64 keeps both small (256 made a 100-candle Redis hit decode and
/// hash 2.5 times what it served) for a few more keys per read.
pub const CHUNK_CANDLES: i64 = 64;
/// Open times per run of reply fragments: a chunk holds `CHUNK_CANDLES / RUN_CANDLES`
/// runs. Each run is verified on its own, so a 100-candle window hashes at most
/// `100 + 2 * (RUN_CANDLES - 1)` candles' fragments.
pub const RUN_CANDLES: i64 = 16;
const RUNS_PER_CHUNK: i64 = CHUNK_CANDLES / RUN_CANDLES;
/// The formats fragments are kept in.
const FRAGMENT_FORMATS: [Encoding; 2] = [Encoding::Json, Encoding::Msgpack];
const MAX_WRITE_ATTEMPTS: usize = 8;
/// The largest `limit`.
const MAX_WINDOW: i64 = 1000;
/// Chunks a read fetches in its single round trip: enough for the largest window.
const MAX_CHUNKS_PER_READ: i64 = MAX_WINDOW / CHUNK_CANDLES + 2;
/// Runs a reply read fetches in its single round trip: enough for the largest window.
const MAX_RUNS_PER_READ: i64 = MAX_WINDOW / RUN_CANDLES + 2;

/// How long after a write its chunks' runs may be missing without being damage: a fill
/// writes them in a second script right after its swap ([`JobWrite::signal`]).
const RUNS_GRACE_MS: Millis = 10_000;

/// How long a stream's live mark outlives its last renewal (it only ever says "live at
/// that time"; an old one answers nothing).
const LIVE_MARK_TTL_MS: u64 = 600_000;

/// Open times asked of the exchange and not confirmed kept per series (the forming candle
/// and the few not published yet; more only if fills stop).
const MAX_ASKED: usize = 256;

/// The meta value's body; its version and write time are the envelope's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MetaBody {
    fetched_at: Millis,
    coverage: Coverage,
    /// Open times asked and not confirmed → when last asked.
    asked: BTreeMap<Millis, Millis>,
    /// Oldest open time the exchange still serves (0: all).
    history_from: Millis,
    /// When the exchange's stream last wrote (0: never).
    #[serde(default)]
    streamed_at: Millis,
    /// The chunks that exist: start time → the write version that wrote it. A chunk whose
    /// envelope has another version is not the one this meta describes and is not served.
    chunks: BTreeMap<Millis, u64>,
    /// The covered open times that only the exchange's stream confirmed (Binance's `x`), not
    /// a REST read: REST's record may still replace their candles. A subset of `coverage`.
    #[serde(default)]
    stream_only: Coverage,
    /// When (on the writer's clock) the last write that left its chunks' runs to follow it
    /// swapped in (0: none did): a run missing within [`RUNS_GRACE_MS`] of it may still be
    /// to come, and is not damage yet.
    #[serde(default)]
    runs_follow: Millis,
}

impl MetaBody {
    /// The series' state as this meta of write `version` and a live mark of `live_at`
    /// (0: none) describe it.
    fn into_state(self, version: u64, live_at: Millis) -> SeriesState {
        SeriesState {
            version,
            fetched_at: self.fetched_at,
            coverage: self.coverage,
            asked: self.asked,
            history_from: self.history_from,
            streamed_at: self.streamed_at.max(live_at),
            stream_only: self.stream_only,
        }
    }
}

/// How settled a candle is, lowest first. A write replaces a stored candle only with one
/// that stands at least as high ("confirmed wins"): nothing replaces a closed, covered
/// candle but another confirmation, and a REST-confirmed one only another REST read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Standing {
    /// Forming, not published yet, built from trades, or closed by nobody's word but ours.
    Unconfirmed,
    /// Closed and confirmed by the exchange's stream alone.
    Stream,
    /// Closed and confirmed by a REST read: the record.
    Rest,
}

impl Standing {
    fn of_stored(meta: &MetaBody, t: Millis) -> Standing {
        match (meta.coverage.covers(t), meta.stream_only.covers(t)) {
            (false, _) => Standing::Unconfirmed,
            (true, true) => Standing::Stream,
            (true, false) => Standing::Rest,
        }
    }

    fn of_incoming(fetched: &Fetched, c: &Candle) -> Standing {
        let confirmed = c.closed && fetched.covered.iter().any(|&(a, b)| a <= c.t && c.t <= b);
        match (confirmed, fetched.streamed) {
            (false, _) => Standing::Unconfirmed,
            (true, true) => Standing::Stream,
            (true, false) => Standing::Rest,
        }
    }
}

/// A window read from Redis.
#[derive(Debug, Clone)]
pub struct SeriesRead {
    /// Coverage already excludes chunks that were missing or failed verification.
    pub state: SeriesState,
    /// Candles with open times in the window, ascending.
    pub candles: Vec<Candle>,
    /// What a write merges into, as this read found it ([`JobWrite::basis`]).
    pub basis: WriteBasis,
}

/// The meta a read found and the write version it names: what a later write of the series
/// merges into without reading them again, if no write came between (its swap checks the
/// version). The default is a series with nothing stored.
#[derive(Debug, Clone, Default)]
pub struct WriteBasis {
    version: u64,
    meta: MetaBody,
}

/// A window read as reply fragments ([`SeriesStore::read_reply`]).
#[derive(Debug)]
pub enum ReplyRead {
    /// The series is not stored (or its meta did not verify).
    Absent,
    /// A run the window needs could not be used; [`SeriesStore::read`] decides (a run that
    /// failed verification took its chunk with it, so that read refetches it).
    Unserved,
    Served(StoredReply),
}

/// The state of a series and the fragments of its stored candles in a window.
#[derive(Debug)]
pub struct StoredReply {
    pub state: SeriesState,
    /// One per stored candle in the window, ascending.
    pub rows: Vec<FragmentRow>,
    /// The values read; rows point into them.
    values: Vec<Bytes>,
}

/// A stored candle's open time and where its fragment lies.
#[derive(Debug, Clone, Copy)]
pub struct FragmentRow {
    pub t: Millis,
    value: usize,
    start: usize,
    end: usize,
}

impl StoredReply {
    /// The fragment of `row`, one of [`StoredReply::rows`].
    pub fn fragment(&self, row: &FragmentRow) -> &[u8] {
        self.values
            .get(row.value)
            .and_then(|v| v.get(row.start..row.end))
            .unwrap_or_default()
    }
}

/// What a fill job adds to its write ([`SeriesStore::write_for_job`]).
#[derive(Debug, Clone, Copy)]
pub struct JobWrite<'a> {
    /// The job's `Nats-Msg-Id`: marked finished (as [`SeriesStore::mark_job_done`] does)
    /// in the same swap, so the mark costs no round trip of its own.
    pub id: &'a str,
    /// How long the mark stays (the dedup window).
    pub done_for: std::time::Duration,
    /// What the job's read of the series, under its lock, found stored
    /// ([`SeriesRead::basis`]; the default when nothing was): the first attempt merges into
    /// it without reading the series again. If another write came since, the swap fails on
    /// the version and the write reads and merges as usual. `None`: read first.
    pub basis: Option<&'a WriteBasis>,
    /// Publish the write's `ready` event on [`SeriesStore::ready_channel`] from the swap
    /// itself, with the values written ([`crate::write_signal`]): the ingests waiting for
    /// the job hear it as the write lands, before the fill has its answer from Redis and
    /// publishes the event on NATS, and answer without reading the series back. The swap
    /// then holds the meta and the packed chunks only; the chunks' runs of reply fragments
    /// (what Redis hits serve, not what the waiting ingests need) follow in a second
    /// script, so that encoding and storing them is not on a cold miss's path.
    pub signal: bool,
}

/// What a fill wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub version: u64,
    pub last_t: Option<Millis>,
    /// What the series covers for good after the write.
    pub coverage: Coverage,
    /// The runs a signalling job write left to write ([`SeriesStore::write_runs`]).
    pub runs: Option<Runs>,
}

/// The runs of reply fragments of the chunks a signalling job write swapped in, still to be
/// written ([`JobWrite::signal`], [`SeriesStore::write_runs`]).
#[derive(Debug, Clone)]
pub struct Runs {
    series: SeriesKey,
    version: u64,
    written_at: Millis,
    /// Per chunk: its start, its candles and its value as the swap set it.
    chunks: Vec<(Millis, Vec<Candle>, Vec<u8>)>,
}

#[derive(Clone)]
pub struct SeriesStore {
    conn: Redis,
    keyring: Keyring,
    prefix: Arc<str>,
    max_chunks: usize,
    /// Values that failed verification since start (also a metric).
    tampered: Arc<AtomicU64>,
}

/// KEYS: version, meta, the lease fence, the live mark, the values to set, the values to
/// delete; then the job marker if ARGV[4] is not empty (its time to live in ARGV[5]).
/// ARGV[6] is how many values to set; ARGV[7] the stream holder's lease fence ('' for a
/// fill: REST writes are not fenced); ARGV[8] a channel to publish a message on once the
/// write is applied ('': none; a user without the channel loses the signal, not the write):
/// ARGV[9], then (if ARGV[10], the frames, is not empty) the meta and per value its frame
/// prefix from ARGV[10] and the value, then the live mark ([`crate::write_signal`]); the
/// values follow. A fence older
/// than the series' refuses the write (-1), a newer one becomes the series'. Values go in
/// MSETs of at most 500 (Lua's `unpack` has a limit); the keys to delete (a few dropped
/// chunks' and the rewritten chunks' runs) in one DEL.
const WRITE_SCRIPT: &str = r#"
if ARGV[7] ~= '' and tonumber(redis.call('GET', KEYS[3]) or '0') > tonumber(ARGV[7]) then
  return -1
end
local cur = redis.call('GET', KEYS[1]) or '0'
if cur ~= ARGV[1] then return 0 end
if ARGV[7] ~= '' then redis.call('SET', KEYS[3], ARGV[7]) end
local n = tonumber(ARGV[6])
local last = #KEYS
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[last], '1', 'PX', ARGV[5])
  last = last - 1
end
local kv = {KEYS[1], ARGV[2], KEYS[2], ARGV[3]}
for i = 1, n do
  kv[#kv + 1] = KEYS[4 + i]
  kv[#kv + 1] = ARGV[10 + i]
  if #kv >= 1000 then
    redis.call('MSET', unpack(kv))
    kv = {}
  end
end
if #kv > 0 then redis.call('MSET', unpack(kv)) end
if last >= 5 + n then redis.call('DEL', unpack(KEYS, 5 + n, last)) end
if ARGV[8] ~= '' then
  local parts = {ARGV[9]}
  local frames = ARGV[10]
  if frames ~= '' then
    parts[2] = ARGV[3]
    for i = 1, (#frames - 1) / 12 do
      parts[#parts + 1] = string.sub(frames, 12 * i - 10, 12 * i + 1)
      parts[#parts + 1] = ARGV[10 + i]
    end
  end
  parts[#parts + 1] = redis.call('GET', KEYS[4]) or ''
  redis.pcall('PUBLISH', ARGV[8], table.concat(parts))
end
return 1
"#;

/// KEYS: per chunk, its key and then its runs' keys (ARGV[1] runs per chunk). ARGV after
/// the first: per chunk, its value as written and then its runs' values. Sets a chunk's
/// runs only while the chunk holds that value; returns how many chunks' runs it set.
const RUNS_SCRIPT: &str = r#"
local per = tonumber(ARGV[1])
local set = 0
for c = 0, #KEYS / (per + 1) - 1 do
  local k = c * (per + 1)
  if redis.call('GET', KEYS[k + 1]) == ARGV[k + 2] then
    local kv = {}
    for r = 1, per do
      kv[#kv + 1] = KEYS[k + 1 + r]
      kv[#kv + 1] = ARGV[k + 2 + r]
    end
    redis.call('MSET', unpack(kv))
    set = set + 1
  end
end
return set
"#;

/// KEYS: the lease fence, the live mark. ARGV: the holder's fence, the mark, its time to
/// live. Refused (-1) for a fence older than the series'.
const LIVE_SCRIPT: &str = r#"
if tonumber(redis.call('GET', KEYS[1]) or '0') > tonumber(ARGV[1]) then return -1 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"#;

/// KEYS: the lease fence. Raises it to ARGV[1]; the fence it holds now.
const CLAIM_SCRIPT: &str = r#"
local f = tonumber(redis.call('GET', KEYS[1]) or '0')
local mine = tonumber(ARGV[1])
if mine > f then
  redis.call('SET', KEYS[1], ARGV[1])
  return mine
end
return f
"#;

/// Sets the lock if free; returns nil when taken, else the holder's token.
const LOCK_SCRIPT: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return nil end
return redis.call('GET', KEYS[1]) or ''

"#;

const RENEW_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#;

const UNLOCK_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

impl SeriesStore {
    /// Bytes of values this process keeps once verified ([`crate::verified`]).
    pub fn verified_bytes(&self) -> usize {
        self.keyring.verified_bytes()
    }

    /// `history_cap` is the number of candles kept per series (at least 1,000, the largest
    /// `limit`, plus one chunk of slack).
    pub fn new(conn: Redis, keyring: Keyring, prefix: &str, history_cap: usize) -> Self {
        let chunks = (history_cap as i64 + CHUNK_CANDLES - 1) / CHUNK_CANDLES + 1;
        SeriesStore {
            conn,
            keyring,
            prefix: prefix.into(),
            max_chunks: chunks.max(MAX_CHUNKS_PER_READ) as usize,
            tampered: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn tampered_total(&self) -> u64 {
        self.tampered.load(Ordering::Relaxed)
    }

    /// The Redis channel fill writes announce themselves on ([`JobWrite::signal`]).
    pub fn ready_channel(&self) -> String {
        format!("{}ready", self.prefix)
    }

    fn base(&self, s: &SeriesKey) -> String {
        format!(
            "{}s:{{{}:{}:{}}}",
            self.prefix,
            s.exchange,
            s.symbol.token(),
            s.interval
        )
    }

    /// In the series' slot, so that a write can mark its job in the same swap.
    fn job_key(&self, s: &SeriesKey, id: &str) -> String {
        format!("{}:job:{id}", self.base(s))
    }

    fn chunk_key(base: &str, start: Millis) -> String {
        format!("{base}:c:{start}")
    }

    /// A run's key: `j` for JSON fragments, `m` for MessagePack.
    fn run_key(base: &str, enc: Encoding, start: Millis) -> String {
        let letter = match enc {
            Encoding::Json => "j",
            Encoding::Msgpack => "m",
        };
        format!("{base}:{letter}:{start}")
    }

    /// Chunks are aligned to the interval's own open times (weekly candles open on Mondays).
    fn chunk_start(s: &SeriesKey, t: Millis) -> Millis {
        Self::aligned(s, t, CHUNK_CANDLES)
    }

    /// Runs are aligned like chunks, so every run lies in one chunk.
    fn run_start(s: &SeriesKey, t: Millis) -> Millis {
        Self::aligned(s, t, RUN_CANDLES)
    }

    fn aligned(s: &SeriesKey, t: Millis, candles: i64) -> Millis {
        let origin = s.interval.open_of(0);
        let span = candles * s.interval.millis();
        origin + (t - origin).div_euclid(span) * span
    }

    /// The keys of a chunk's runs, every format.
    fn run_keys(s: &SeriesKey, base: &str, chunk: Millis) -> Vec<String> {
        let span = RUN_CANDLES * s.interval.millis();
        (0..RUNS_PER_CHUNK)
            .flat_map(|i| {
                FRAGMENT_FORMATS
                    .into_iter()
                    .map(move |enc| Self::run_key(base, enc, chunk + i * span))
            })
            .collect()
    }

    /// Reads the state and the candles of `[from, to]`.
    pub async fn read(
        &self,
        s: &SeriesKey,
        from: Millis,
        to: Millis,
    ) -> Result<Option<SeriesRead>, StoreError> {
        let base = self.base(s);
        let mut conn = self.conn.clone();
        // One round trip: the meta and every chunk the window can touch. The meta's chunk
        // list then says which of those count (and which are missing).
        let span = CHUNK_CANDLES * s.interval.millis();
        let first = Self::chunk_start(s, from);
        let count = ((to - first).div_euclid(span) + 1).clamp(1, MAX_CHUNKS_PER_READ);
        let starts: Vec<Millis> = (0..count).map(|i| first + i * span).collect();
        let keys: Vec<String> = starts.iter().map(|&c| Self::chunk_key(&base, c)).collect();
        let Some(Current {
            version,
            meta,
            live,
            values: raw_chunks,
        }) = self
            .read_current(&mut conn, &base, &keys, |meta| {
                starts.iter().map(|c| meta.chunks.get(c).copied()).collect()
            })
            .await?
        else {
            return Ok(None);
        };
        let live_at = self.open_live(&mut conn, &base, live).await;
        let mut wanted = Vec::new();
        let mut raws = Vec::new();
        for ((start, key), raw) in starts.iter().zip(keys).zip(raw_chunks) {
            if let Some(&ver) = meta.chunks.get(start) {
                wanted.push((*start, ver));
                raws.push((key, raw));
            }
        }
        // Chunks past what one round trip covers (very wide windows) are read now.
        let last_read = *starts.last().unwrap_or(&first);
        let rest: Vec<(Millis, u64)> = match last_read < to {
            true => meta
                .chunks
                .range(last_read + 1..=to)
                .map(|(c, v)| (*c, *v))
                .collect(),
            // (`range` panics on an empty range such as `to + 1..=to`.)
            false => Vec::new(),
        };
        let (mut chunks, mut damaged) = self
            .open_chunks(&mut conn, s, &base, &wanted, raws, (from, to))
            .await;
        if !rest.is_empty() {
            let (more, bad) = self
                .read_chunks(&mut conn, s, &base, &rest, (from, to))
                .await?;
            chunks.extend(more);
            damaged.extend(bad);
        }
        let mut state = meta.clone().into_state(version, live_at);
        remove_spans(&mut state.coverage, s, &damaged);
        let candles = chunks.into_values().flatten().collect();
        Ok(Some(SeriesRead {
            state,
            candles,
            basis: WriteBasis { version, meta },
        }))
    }

    /// The state and the candles of `[from, to]` as the write that published `values` with
    /// its signal left them ([`crate::write_signal`]), opened as [`SeriesStore::read`] opens
    /// what it reads: each value's MAC under its key, the meta of write `version`, each
    /// chunk of the version the meta names. `None` (read the series instead) if the write
    /// did not carry every chunk of the window the meta names, or anything fails to open.
    /// Needs no round trip; the values opened are kept as a read keeps them.
    pub fn read_signalled(
        &self,
        s: &SeriesKey,
        version: u64,
        values: &WriteValues,
        from: Millis,
        to: Millis,
    ) -> Option<SeriesRead> {
        let base = self.base(s);
        let first = Self::chunk_start(s, from);
        if first > to {
            return None;
        }
        let meta = Stored::Sent(values.meta.clone());
        let opened = self
            .keyring
            .open_stored(&format!("{base}:meta"), &meta)
            .ok()?;
        if opened.version != version {
            return None;
        }
        let meta: MetaBody = rmp_serde::from_slice(&opened.body).ok()?;
        let live_at = match &values.live {
            Some(raw) => {
                let live = Stored::Sent(raw.clone());
                self.keyring
                    .open_stored(&format!("{base}:live"), &live)
                    .ok()?
                    .written_at
            }
            None => 0,
        };
        let mut candles = Vec::new();
        for (&start, &named) in meta.chunks.range(first..=to) {
            let (_, raw) = values.chunks.iter().find(|(c, _)| *c == start)?;
            let chunk = Stored::Sent(raw.clone());
            let opened = self
                .keyring
                .open_stored(&Self::chunk_key(&base, start), &chunk)
                .ok()?;
            if opened.version != named {
                return None;
            }
            candles.extend(crate::packed::decode(&opened.body, from, to).ok()?);
        }
        Some(SeriesRead {
            state: meta.clone().into_state(version, live_at),
            candles,
            basis: WriteBasis { version, meta },
        })
    }

    /// Reads the state and the reply fragments in `enc` of the stored candles of
    /// `[from, to]`, in one round trip (two when a run kept once verified was rewritten
    /// since); only the runs the window touches are verified, and runs kept at the version
    /// the meta names are not read at all.
    pub async fn read_reply(
        &self,
        s: &SeriesKey,
        from: Millis,
        to: Millis,
        enc: Encoding,
    ) -> Result<ReplyRead, StoreError> {
        let base = self.base(s);
        let span = RUN_CANDLES * s.interval.millis();
        let first = Self::run_start(s, from);
        let count = (to - first).div_euclid(span) + 1;
        if !(1..=MAX_RUNS_PER_READ).contains(&count) {
            return Ok(ReplyRead::Unserved);
        }
        let starts: Vec<Millis> = (0..count).map(|i| first + i * span).collect();
        let keys: Vec<String> = starts
            .iter()
            .map(|&r| Self::run_key(&base, enc, r))
            .collect();
        let mut conn = self.conn.clone();
        let Some(Current {
            version,
            mut meta,
            live,
            values: raw_runs,
        }) = self
            .read_current(&mut conn, &base, &keys, |meta| {
                starts
                    .iter()
                    .map(|&r| meta.chunks.get(&Self::chunk_start(s, r)).copied())
                    .collect()
            })
            .await?
        else {
            return Ok(ReplyRead::Absent);
        };
        let live_at = self.open_live(&mut conn, &base, live).await;
        let (chunks, runs_follow) = (std::mem::take(&mut meta.chunks), meta.runs_follow);
        let mut reply = StoredReply {
            state: meta.into_state(version, live_at),
            rows: Vec::with_capacity(
                ((to - from) / s.interval.millis() + 1).clamp(1, 1024) as usize
            ),
            values: Vec::with_capacity(starts.len()),
        };
        for ((start, key), raw) in starts.iter().zip(&keys).zip(raw_runs) {
            let chunk = Self::chunk_start(s, *start);
            let Some(&named) = chunks.get(&chunk) else {
                continue; // nothing stored there: coverage says what that means
            };
            let Some(raw) = raw else {
                // A fill's runs follow its swap within milliseconds ([`JobWrite::signal`]);
                // missing past that, they are damage.
                if now_ms() - runs_follow < RUNS_GRACE_MS {
                    return Ok(ReplyRead::Unserved);
                }
                tracing::warn!(series = %s, key, "run listed in meta is missing; refetching its chunk");
                self.drop_chunk(&mut conn, s, &base, chunk).await;
                return Ok(ReplyRead::Unserved);
            };
            if let Err(why) = self.open_run(key, &raw, named, (from, to), &mut reply) {
                // Altered or outdated: the chunk goes too, so the full read refetches both.
                let lost = matches!(why, Unusable::Tampered(_) | Unusable::Outdated(_));
                self.discard(&mut conn, key, why).await;
                if lost {
                    self.drop_chunk(&mut conn, s, &base, chunk).await;
                }
                return Ok(ReplyRead::Unserved);
            }
        }
        Ok(ReplyRead::Served(reply))
    }

    /// Verifies a run written by version `named` and appends its fragments in `[from, to]`
    /// (the run is kept in `values`).
    fn open_run(
        &self,
        key: &str,
        stored: &Stored,
        named: u64,
        (from, to): (Millis, Millis),
        reply: &mut StoredReply,
    ) -> Result<(), Unusable> {
        let opened = self.keyring.open_stored(key, stored)?;
        let raw = stored.bytes();
        if opened.version != named {
            return Err(Unusable::NotCurrent(format!(
                "written by version {}, the meta names {named}",
                opened.version
            )));
        }
        let rows = crate::fragments::parse(&opened.body).map_err(Unusable::undecodable)?;
        // The body is borrowed from `raw` (the decoder never copies it): fragments are
        // found in `raw` at the body's offset.
        let offset = match &opened.body {
            std::borrow::Cow::Borrowed(b) => {
                (b.as_ptr() as usize).checked_sub(raw.as_ptr() as usize)
            }
            std::borrow::Cow::Owned(_) => None,
        }
        .ok_or_else(|| Unusable::undecodable("body not borrowed from the value"))?;
        let value = reply.values.len();
        reply.rows.extend(
            rows.into_iter()
                .filter(|(t, _)| (from..=to).contains(t))
                .map(|(t, r)| FragmentRow {
                    t,
                    value,
                    start: offset + r.start,
                    end: offset + r.end,
                }),
        );
        reply.values.push(raw.clone());
        Ok(())
    }

    /// Merges a fetch made at `now` into the series and returns the new version. Safe
    /// against concurrent writers of the same series: the loser merges again on top of the
    /// winner.
    pub async fn write(
        &self,
        s: &SeriesKey,
        fetched: &Fetched,
        now: Millis,
    ) -> Result<Written, StoreError> {
        self.write_with(s, fetched, now, None, None).await
    }

    /// [`SeriesStore::write`] for the series' stream holder, whose lease carries `fence`:
    /// refused ([`StoreError::Fenced`]) once a holder with a newer fence has claimed or
    /// written the series.
    pub async fn write_streamed(
        &self,
        s: &SeriesKey,
        fetched: &Fetched,
        now: Millis,
        fence: u64,
    ) -> Result<Written, StoreError> {
        self.write_with(s, fetched, now, None, Some(fence)).await
    }

    /// A new stream holder raises the series' fence to its lease's at once, so the holder
    /// before it is refused from then on; returns false if a newer fence holds it already.
    pub async fn claim(&self, s: &SeriesKey, fence: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let now: u64 = redis::Script::new(CLAIM_SCRIPT)
            .key(format!("{}:fence", self.base(s)))
            .arg(fence)
            .invoke_async(&mut conn)
            .await?;
        Ok(now == fence)
    }

    /// [`SeriesStore::write`] for a fill job: also marks the job finished, in the same swap.
    pub async fn write_for_job(
        &self,
        s: &SeriesKey,
        fetched: &Fetched,
        now: Millis,
        job: JobWrite<'_>,
    ) -> Result<Written, StoreError> {
        self.write_with(s, fetched, now, Some(job), None).await
    }

    async fn write_with(
        &self,
        s: &SeriesKey,
        fetched: &Fetched,
        now: Millis,
        job: Option<JobWrite<'_>>,
        fence: Option<u64>,
    ) -> Result<Written, StoreError> {
        let base = self.base(s);
        let ver_key = format!("{base}:ver");
        let meta_key = format!("{base}:meta");
        let step = s.interval.millis();
        let mut conn = self.conn.clone();
        // A signalling write carries its values to the waiting ingests and writes its runs
        // after the swap ([`JobWrite::signal`]).
        let signal = job.is_some_and(|j| j.signal);
        let mut basis = job.and_then(|j| j.basis);
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let (cur_ver, mut meta) = match basis.take() {
                Some(b) => (b.version, b.meta.clone()),
                None => {
                    let (cur_ver, raw_meta): (Option<u64>, Option<Bytes>) = redis::pipe()
                        .get(&ver_key)
                        .get(&meta_key)
                        .query_async(&mut conn)
                        .await?;
                    let meta = self
                        .open_meta(&mut conn, &meta_key, raw_meta.map(Stored::Sent))
                        .await
                        .map(|(_, m)| m)
                        .unwrap_or_default();
                    (cur_ver.unwrap_or(0), meta)
                }
            };

            // Chunks the fetch touches, merged with what they hold.
            let touched: Vec<Millis> = {
                let mut t: Vec<Millis> = fetched
                    .candles
                    .iter()
                    .map(|c| Self::chunk_start(s, c.t))
                    .collect();
                t.dedup();
                t
            };
            let existing: Vec<(Millis, u64)> = touched
                .iter()
                .filter_map(|c| meta.chunks.get(c).map(|v| (*c, *v)))
                .collect();
            let (mut chunks, damaged) = self
                .read_chunks(&mut conn, s, &base, &existing, (Millis::MIN, Millis::MAX))
                .await?;
            remove_spans(&mut meta.coverage, s, &damaged);
            remove_spans(&mut meta.stream_only, s, &damaged);
            // An open candle stored earlier whose open time this fetch confirmed without
            // returning it (it had no trades after all) is not a candle.
            for candles in chunks.values_mut() {
                candles.retain(|c| {
                    c.closed || !fetched.covered.iter().any(|&(a, b)| a <= c.t && c.t <= b)
                });
            }
            // Confirmed wins: each incoming candle replaces the stored one only if it stands
            // at least as high (judged against the meta read in this attempt, so a retry
            // merges against what is stored now).
            let mut by_chunk: BTreeMap<Millis, BTreeMap<Millis, Candle>> = chunks
                .into_iter()
                .map(|(start, candles)| (start, candles.into_iter().map(|c| (c.t, c)).collect()))
                .collect();
            for c in &fetched.candles {
                let slot = by_chunk.entry(Self::chunk_start(s, c.t)).or_default();
                let replaces = slot.get(&c.t).is_none_or(|_| {
                    Standing::of_incoming(fetched, c) >= Standing::of_stored(&meta, c.t)
                });
                if replaces {
                    slot.insert(c.t, c.clone());
                }
            }
            let merged: BTreeMap<Millis, Vec<Candle>> = by_chunk
                .into_iter()
                .map(|(start, by_t)| (start, by_t.into_values().collect()))
                .collect();
            merge_knowledge(&mut meta, fetched, step, now);
            if signal {
                meta.runs_follow = now_ms();
            }
            let new_ver = next_version(cur_ver, now);
            for start in merged.keys() {
                meta.chunks.insert(*start, new_ver);
            }
            let excess = meta.chunks.len().saturating_sub(self.max_chunks);
            let dropped: Vec<Millis> = meta.chunks.keys().take(excess).copied().collect();
            for d in &dropped {
                meta.chunks.remove(d);
            }
            if let Some(&first) = meta.chunks.keys().next() {
                if excess > 0 {
                    meta.coverage.trim_before(first);
                    meta.stream_only.trim_before(first);
                }
            }

            let last_t = meta
                .chunks
                .keys()
                .next_back()
                .and_then(|c| merged.get(c))
                .and_then(|v| v.last())
                .map(|c| c.t)
                .or(fetched.candles.last().map(|c| c.t));
            let mut keys = vec![
                ver_key.clone(),
                meta_key.clone(),
                format!("{base}:fence"),
                format!("{base}:live"),
            ];
            let mut args: Vec<Vec<u8>> = vec![
                cur_ver.to_string().into_bytes(),
                new_ver.to_string().into_bytes(),
                self.keyring.seal(
                    &meta_key,
                    new_ver,
                    now,
                    &rmp_serde::to_vec_named(&meta).unwrap_or_default(),
                ),
                job.map(|j| j.id).unwrap_or_default().as_bytes().to_vec(),
                job.map(|j| j.done_for.as_millis().max(1) as u64)
                    .unwrap_or_default()
                    .to_string()
                    .into_bytes(),
            ];
            let to_set: Vec<(Millis, &Vec<Candle>)> = merged
                .iter()
                .filter(|(k, _)| !dropped.contains(k))
                .map(|(k, v)| (*k, v))
                .collect();
            // Values to set: each chunk and (unless they follow) its runs in every format.
            let per_chunk = match signal {
                true => 1,
                false => 1 + RUNS_PER_CHUNK as usize * FRAGMENT_FORMATS.len(),
            };
            args.push((to_set.len() * per_chunk).to_string().into_bytes());
            args.push(
                fence
                    .map(|f| f.to_string())
                    .unwrap_or_default()
                    .into_bytes(),
            );
            // The channel, and the head and frames of the message the swap publishes, if it
            // signals (built once the values it carries are sealed).
            args.push(match signal {
                true => self.ready_channel().into_bytes(),
                false => Vec::new(),
            });
            let message_at = args.len();
            args.push(Vec::new());
            args.push(Vec::new());
            let mut chunk_at = Vec::with_capacity(to_set.len());
            for (start, candles) in &to_set {
                let key = Self::chunk_key(&base, *start);
                let body = crate::packed::encode(candles);
                chunk_at.push((*start, args.len()));
                args.push(self.keyring.seal(&key, new_ver, now, &body));
                keys.push(key);
                if !signal {
                    let (run_keys, runs) = self.runs_of(s, &base, *start, candles, new_ver, now);
                    keys.extend(run_keys);
                    args.extend(runs);
                }
            }
            if signal {
                let event = ReadyEvent {
                    series: s.clone(),
                    last_t,
                    version: new_ver,
                    error: None,
                    is_final: false,
                };
                let chunks: Vec<(Millis, usize)> = chunk_at
                    .iter()
                    .map(|&(start, at)| (start, args[at].len()))
                    .collect();
                let framing = crate::write_signal::framing(&event, args[2].len(), &chunks);
                args[message_at] = framing.head;
                args[message_at + 1] = framing.frames;
            }
            for &d in &dropped {
                keys.push(Self::chunk_key(&base, d));
                keys.extend(Self::run_keys(s, &base, d));
            }
            // The runs to follow replace the rewritten chunks' runs: those go now, so that
            // none of another version is read meanwhile.
            if signal {
                for (start, _) in &to_set {
                    keys.extend(Self::run_keys(s, &base, *start));
                }
            }
            if let Some(j) = job.filter(|j| !j.id.is_empty()) {
                keys.push(self.job_key(s, j.id));
            }

            let applied: i64 = redis::Script::new(WRITE_SCRIPT)
                .key(keys)
                .arg(&args)
                .invoke_async(&mut conn)
                .await?;
            if applied == -1 {
                return Err(StoreError::Fenced);
            }
            if applied == 1 {
                let runs = signal.then(|| {
                    let mut merged = merged;
                    Runs {
                        series: s.clone(),
                        version: new_ver,
                        written_at: now,
                        chunks: chunk_at
                            .iter()
                            .map(|&(start, at)| {
                                let candles = merged.remove(&start).unwrap_or_default();
                                (start, candles, std::mem::take(&mut args[at]))
                            })
                            .collect(),
                    }
                });
                return Ok(Written {
                    version: new_ver,
                    last_t,
                    coverage: meta.coverage.clone(),
                    runs,
                });
            }
            tracing::debug!(series = %s, "concurrent write; merging again");
        }
        Err(StoreError::Conflict)
    }

    /// The keys and sealed values of every run of chunk `start` (its `candles`), empty
    /// ones too: a run the meta's chunk names and Redis lacks is damage, not an empty
    /// stretch.
    fn runs_of(
        &self,
        s: &SeriesKey,
        base: &str,
        start: Millis,
        candles: &[Candle],
        version: u64,
        now: Millis,
    ) -> (Vec<String>, Vec<Vec<u8>>) {
        let run_span = RUN_CANDLES * s.interval.millis();
        let mut keys = Vec::with_capacity(RUNS_PER_CHUNK as usize * FRAGMENT_FORMATS.len());
        let mut values = Vec::with_capacity(keys.capacity());
        for i in 0..RUNS_PER_CHUNK {
            let run = start + i * run_span;
            let lo = candles.partition_point(|c| c.t < run);
            let hi = candles.partition_point(|c| c.t < run + run_span);
            for enc in FRAGMENT_FORMATS {
                let key = Self::run_key(base, enc, run);
                let body = crate::fragments::encode(enc, &candles[lo..hi]);
                values.push(self.keyring.seal(&key, version, now, &body));
                keys.push(key);
            }
        }
        (keys, values)
    }

    /// Writes the runs a signalling job write left ([`Written::runs`]), each chunk's only
    /// while Redis still holds the chunk value the swap set: a writer that replaced it
    /// writes its own. Failing here costs speed, not data: a Redis hit that finds runs
    /// missing reads the chunks, and past [`RUNS_GRACE_MS`] after the swap refetches them.
    pub async fn write_runs(&self, runs: Runs) {
        if runs.chunks.is_empty() {
            return;
        }
        let s = &runs.series;
        let base = self.base(s);
        let mut keys = Vec::new();
        let mut args: Vec<Vec<u8>> = vec![(RUNS_PER_CHUNK as usize * FRAGMENT_FORMATS.len())
            .to_string()
            .into_bytes()];
        for (start, candles, chunk) in runs.chunks {
            let (run_keys, values) =
                self.runs_of(s, &base, start, &candles, runs.version, runs.written_at);
            keys.push(Self::chunk_key(&base, start));
            args.push(chunk);
            keys.extend(run_keys);
            args.extend(values);
        }
        let set: Result<i64, _> = redis::Script::new(RUNS_SCRIPT)
            .key(keys)
            .arg(args)
            .invoke_async(&mut self.conn.clone())
            .await;
        if let Err(e) = set {
            tracing::warn!(error = %e, series = %s, "runs not written; Redis hits read the chunks until they are");
        }
    }

    /// Takes the series' cluster-wide fill lock for `ttl` if it is free; `Err(holder)`
    /// (the holder's token) if not.
    pub async fn try_lock(
        &self,
        s: &SeriesKey,
        token: &str,
        ttl: std::time::Duration,
    ) -> Result<Result<(), String>, StoreError> {
        let mut conn = self.conn.clone();
        let holder: Option<String> = redis::Script::new(LOCK_SCRIPT)
            .key(format!("{}:lock", self.base(s)))
            .arg(token)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(match holder {
            None => Ok(()),
            Some(h) => Err(h),
        })
    }

    /// Whether a fill worker holds the series' lock now (fills it, or is about to).
    pub async fn locked(&self, s: &SeriesKey) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = redis::cmd("EXISTS")
            .arg(format!("{}:lock", self.base(s)))
            .query_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    /// Extends the lock to `ttl` from now if `token` still holds it; whether it does.
    pub async fn renew_lock(
        &self,
        s: &SeriesKey,
        token: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let renewed: i64 = redis::Script::new(RENEW_SCRIPT)
            .key(format!("{}:lock", self.base(s)))
            .arg(token)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(renewed == 1)
    }

    /// Releases the lock if `token` still holds it.
    pub async fn unlock(&self, s: &SeriesKey, token: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::Script::new(UNLOCK_SCRIPT)
            .key(format!("{}:lock", self.base(s)))
            .arg(token)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Marks fill job `id` (its `Nats-Msg-Id`) for series `s` as finished for `ttl` (the
    /// dedup window).
    pub async fn mark_job_done(
        &self,
        s: &SeriesKey,
        id: &str,
        ttl: std::time::Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("SET")
            .arg(self.job_key(s, id))
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Whether fill job `id` for series `s` has finished (within the dedup window).
    pub async fn job_done(&self, s: &SeriesKey, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = redis::cmd("EXISTS")
            .arg(self.job_key(s, id))
            .query_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    /// Records that the exchange's stream proved, at `at` (cluster clock), that the series
    /// had no trade it has not delivered: the series counts as streamed then
    /// ([`SeriesState::streamed_at`](candlepipe_core::SeriesState)) without a write of its
    /// candles. Only the series' stream holder calls it, after the candles it received
    /// before that proof were written (the sink applies a series' messages in order).
    /// Refused ([`StoreError::Fenced`]) like [`SeriesStore::write_streamed`].
    pub async fn mark_live(&self, s: &SeriesKey, at: Millis, fence: u64) -> Result<(), StoreError> {
        let base = self.base(s);
        let key = format!("{base}:live");
        let value = self.keyring.seal(&key, 0, at, &[]);
        let mut conn = self.conn.clone();
        let applied: i64 = redis::Script::new(LIVE_SCRIPT)
            .key(format!("{base}:fence"))
            .key(&key)
            .arg(fence)
            .arg(value)
            .arg(LIVE_MARK_TTL_MS)
            .invoke_async(&mut conn)
            .await?;
        match applied {
            -1 => Err(StoreError::Fenced),
            _ => Ok(()),
        }
    }

    /// The time a verified live mark names (0: none); one that fails is discarded.
    async fn open_live(&self, conn: &mut Redis, base: &str, raw: Option<Stored>) -> Millis {
        let Some(raw) = raw else { return 0 };
        let key = format!("{base}:live");
        match self.keyring.open_stored(&key, &raw) {
            Ok(opened) => opened.written_at,
            Err(why) => {
                self.discard(conn, &key, why.into()).await;
                0
            }
        }
    }

    /// Verifies a meta value read from `key`; one that fails is discarded (a miss).
    async fn open_meta(
        &self,
        conn: &mut Redis,
        key: &str,
        raw: Option<Stored>,
    ) -> Option<(u64, MetaBody)> {
        let raw = raw?;
        match self.keyring.open_stored(key, &raw) {
            Ok(opened) => match rmp_serde::from_slice::<MetaBody>(&opened.body) {
                Ok(meta) => Some((opened.version, meta)),
                Err(e) => {
                    self.discard(conn, key, Unusable::undecodable(e)).await;
                    None
                }
            },
            Err(why) => {
                self.discard(conn, key, why.into()).await;
                None
            }
        }
    }

    /// Reads and verifies chunks; returns the good ones (their candles in `window`) and the
    /// starts of the bad or missing.
    async fn read_chunks(
        &self,
        conn: &mut Redis,
        s: &SeriesKey,
        base: &str,
        starts: &[(Millis, u64)],
        window: (Millis, Millis),
    ) -> Result<(BTreeMap<Millis, Vec<Candle>>, Vec<Millis>), StoreError> {
        if starts.is_empty() {
            return Ok((BTreeMap::new(), Vec::new()));
        }
        let keys: Vec<String> = starts
            .iter()
            .map(|&(c, _)| Self::chunk_key(base, c))
            .collect();
        let values: Vec<Option<Bytes>> = redis::cmd("MGET").arg(&keys).query_async(conn).await?;
        Ok(self
            .open_chunks(
                conn,
                s,
                base,
                starts,
                keys.into_iter()
                    .zip(values.into_iter().map(|v| v.map(Stored::Sent)))
                    .collect(),
                window,
            )
            .await)
    }

    /// Verifies chunk values (`(key, value)` per `(start, version the meta names)`) and
    /// decodes their candles in `window`; a missing, failing or other-version chunk is
    /// damage.
    async fn open_chunks(
        &self,
        conn: &mut Redis,
        s: &SeriesKey,
        base: &str,
        starts: &[(Millis, u64)],
        raws: Vec<(String, Option<Stored>)>,
        (from, to): (Millis, Millis),
    ) -> (BTreeMap<Millis, Vec<Candle>>, Vec<Millis>) {
        let mut good = BTreeMap::new();
        let mut damaged = Vec::new();
        for ((start, named), (key, value)) in starts.iter().zip(raws) {
            let Some(raw) = value else {
                tracing::warn!(series = %s, key, "chunk listed in meta is missing; refetching it");
                self.drop_chunk(conn, s, base, *start).await;
                damaged.push(*start);
                continue;
            };
            let candles = self
                .keyring
                .open_stored(&key, &raw)
                .map_err(Unusable::from)
                .and_then(|o| match o.version == *named {
                    true => Ok(o),
                    false => Err(Unusable::NotCurrent(format!(
                        "written by version {}, the meta names {named}",
                        o.version
                    ))),
                })
                .and_then(|o| {
                    crate::packed::decode(&o.body, from, to).map_err(Unusable::undecodable)
                });
            match candles {
                Ok(c) => {
                    good.insert(*start, c);
                }
                Err(why) => {
                    let lost = matches!(why, Unusable::Tampered(_) | Unusable::Outdated(_));
                    self.discard(conn, &key, why).await;
                    if lost {
                        self.drop_chunk(conn, s, base, *start).await;
                    }
                    damaged.push(*start);
                }
            }
        }
        (good, damaged)
    }

    /// Deletes chunk `start` and its runs: a chunk is its packed candles and their runs,
    /// lost and refetched together.
    async fn drop_chunk(&self, conn: &mut Redis, s: &SeriesKey, base: &str, start: Millis) {
        let mut keys = Self::run_keys(s, base, start);
        keys.push(Self::chunk_key(base, start));
        if let Err(e) = redis::cmd("DEL").arg(&keys).query_async::<i64>(conn).await {
            tracing::warn!(error = %e, series = %s, "a lost chunk's values not deleted");
        }
    }

    /// A value that fails verification is never served (see [`crate::records::discard`]).
    async fn discard(&self, conn: &mut Redis, key: &str, why: Unusable) {
        if crate::records::discard(conn, key, &why).await {
            self.tampered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What [`SeriesStore::read_with_meta`] read: the meta, the stream's live mark and the
/// values asked.
struct MetaRead {
    meta: Option<Stored>,
    live: Option<Stored>,
    values: Vec<Option<Stored>>,
}

/// What [`SeriesStore::read_current`] read: the opened meta, the live mark and the values
/// of the keys asked, each the one the meta was read with (or kept at the version it names).
struct Current {
    version: u64,
    meta: MetaBody,
    live: Option<Stored>,
    values: Vec<Option<Stored>>,
}

impl SeriesStore {
    /// The series' meta, live mark and `keys` as of one moment: [`SeriesStore::read_with_meta`]
    /// with kept values, confirmed by [`SeriesStore::confirm_kept`] against the versions
    /// `named` says the meta gives each key; if a write came between those two reads, read
    /// again without kept values, in one MGET. `None`: no meta (or one that does not open).
    async fn read_current(
        &self,
        conn: &mut Redis,
        base: &str,
        keys: &[String],
        named: impl Fn(&MetaBody) -> Vec<Option<u64>>,
    ) -> Result<Option<Current>, StoreError> {
        let meta_key = format!("{base}:meta");
        let mut kept = true;
        loop {
            let MetaRead {
                meta: raw_meta,
                live,
                mut values,
            } = self.read_with_meta(conn, base, keys, kept).await?;
            let sent = raw_meta.as_ref().map(|m| m.bytes().clone());
            let Some((version, meta)) = self.open_meta(conn, &meta_key, raw_meta).await else {
                return Ok(None);
            };
            if self
                .confirm_kept(conn, base, keys, &mut values, &named(&meta), sent)
                .await?
            {
                return Ok(Some(Current {
                    version,
                    meta,
                    live,
                    values,
                }));
            }
            kept = false;
        }
    }

    /// The meta, the live mark and `keys` in one MGET (atomic, so the values are those of
    /// the meta read with them). With `kept`, a key this process keeps a verified value for
    /// is not read: the kept value stands in until [`SeriesStore::confirm_kept`] holds it
    /// against the meta (see `verified.rs`).
    async fn read_with_meta(
        &self,
        conn: &mut Redis,
        base: &str,
        keys: &[String],
        kept: bool,
    ) -> Result<MetaRead, StoreError> {
        let mut values: Vec<Option<Stored>> = keys
            .iter()
            .map(|k| match kept {
                true => self.keyring.latest(k).map(Stored::Kept),
                false => None,
            })
            .collect();
        let mut mget = redis::cmd("MGET");
        mget.arg(format!("{base}:meta")).arg(format!("{base}:live"));
        for (key, value) in keys.iter().zip(&values) {
            if value.is_none() {
                mget.arg(key);
            }
        }
        let mut raws: Vec<Option<Bytes>> = mget.query_async(conn).await?;
        let wanted = 2 + values.iter().filter(|v| v.is_none()).count();
        if raws.len() != wanted {
            return Err(StoreError::Unexpected(format!(
                "MGET of {wanted} keys answered {} values",
                raws.len()
            )));
        }
        let mut read = raws.split_off(2).into_iter();
        for value in values.iter_mut().filter(|v| v.is_none()) {
            *value = read.next().flatten().map(Stored::Sent);
        }
        let live = raws.pop().flatten().map(Stored::Sent);
        let meta = raws.pop().flatten().map(Stored::Sent);
        Ok(MetaRead { meta, live, values })
    }

    /// Reads again, in one MGET with the meta, each value of `keys` that
    /// [`SeriesStore::read_with_meta`] took from the kept ones and that is not of the version
    /// the meta names for it (`named`; one the meta does not name is not used and is left).
    /// A kept value of the version the meta names is the value written then: a write
    /// version is written once per key (`next_version` keeps that true across a Redis that
    /// lost its data). Whether the values now go with the meta read first (`meta`, as Redis
    /// sent it): `false` when a write came between the two reads, and the caller reads
    /// again without kept values, in one MGET.
    async fn confirm_kept(
        &self,
        conn: &mut Redis,
        base: &str,
        keys: &[String],
        values: &mut [Option<Stored>],
        named: &[Option<u64>],
        meta: Option<Bytes>,
    ) -> Result<bool, StoreError> {
        let stale: Vec<usize> = (0..keys.len())
            .filter(|&i| {
                let (Some(key), Some(Some(kept @ Stored::Kept(_))), Some(named)) =
                    (keys.get(i), values.get(i), named.get(i))
                else {
                    return false;
                };
                named.is_some_and(|n| {
                    self.keyring
                        .open_stored(key, kept)
                        .map_or(true, |o| o.version != n)
                })
            })
            .collect();
        if stale.is_empty() {
            return Ok(true);
        }
        let mut mget = redis::cmd("MGET");
        mget.arg(format!("{base}:meta"));
        for &i in &stale {
            mget.arg(&keys[i]);
        }
        let mut raws: Vec<Option<Bytes>> = mget.query_async(conn).await?;
        if raws.len() != 1 + stale.len() {
            return Err(StoreError::Unexpected(format!(
                "MGET of {} keys answered {} values",
                1 + stale.len(),
                raws.len()
            )));
        }
        let values_read = raws.split_off(1);
        if raws.pop().flatten() != meta {
            return Ok(false);
        }
        for (i, raw) in stale.into_iter().zip(values_read) {
            if let Some(value) = values.get_mut(i) {
                *value = raw.map(Stored::Sent);
            }
        }
        Ok(true)
    }
}

/// The write version after `cur` for a write at `now`. A series' first version is its
/// write time in microseconds, not 1, so a version is written once per key even across a
/// Redis that lost its data (or only the version key): a process may serve a value it
/// verified before for as long as the meta names its version (`verified.rs`), and a
/// restart from 1 would name again versions it kept from before, of other candles. Still
/// monotonic per series, and below 2^53 (exact as a JSON number) until the year 2255.
fn next_version(cur: u64, now: Millis) -> u64 {
    match cur {
        0 => (now.max(1) as u64).saturating_mul(1000),
        _ => cur + 1,
    }
}

/// Adds what a fetch at `now` confirmed, asked and learnt of the history to the meta.
fn merge_knowledge(meta: &mut MetaBody, fetched: &Fetched, step: Millis, now: Millis) {
    for &(a, b) in &fetched.covered {
        if fetched.streamed {
            // What REST confirmed stays REST's; the rest is the stream's word alone.
            let mut t = a;
            while t <= b {
                if !meta.coverage.covers(t) || meta.stream_only.covers(t) {
                    meta.stream_only.add(t, t, step);
                }
                t += step;
            }
        } else {
            meta.stream_only.remove(a, b, step);
        }
        meta.coverage.add(a, b, step);
    }
    if let Some(at) = fetched.tail_fetched_at {
        meta.fetched_at = meta.fetched_at.max(at);
    }
    if let Some(h) = fetched.history_from {
        meta.history_from = meta.history_from.max(h);
    }
    if fetched.streamed {
        meta.streamed_at = meta.streamed_at.max(now);
    }
    for &t in &fetched.unconfirmed {
        let at = meta.asked.entry(t).or_insert(now);
        *at = (*at).max(now);
    }
    let (coverage, history_from) = (&meta.coverage, meta.history_from);
    meta.asked
        .retain(|&t, _| t >= history_from && !coverage.covers(t));
    while meta.asked.len() > MAX_ASKED {
        let oldest = meta
            .asked
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(t, _)| *t);
        match oldest {
            Some(t) => meta.asked.remove(&t),
            None => break,
        };
    }
}

fn remove_spans(coverage: &mut Coverage, s: &SeriesKey, chunk_starts: &[Millis]) {
    let step = s.interval.millis();
    for &c in chunk_starts {
        coverage.remove(c, c + (CHUNK_CANDLES - 1) * step, step);
    }
}
