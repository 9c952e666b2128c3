#!/usr/bin/env bash
# Cache hits against the sized echo, several rounds, with each process's CPU per request:
# the A/B harness for work on the hit and miss paths (BENCHMARKS.md, "What the profiles
# showed"). Each round measures, at 64 requesters, an echo whose replies are as large as a
# 100-candle reply, then Redis hits (an ingest with CANDLEPIPE_L1_CAPACITY=0); with `hot`
# as the third argument, L1 hits instead; with `cold`, cold misses at 1 and 16 requesters
# beside `direct` (the same exchange requests without candlepipe; simulator at 20 ms, no
# budget); with `cold-wide`, the same after a zipf run: its requests of up to 500 candles
# widen later fills of 1m and 5m windows to 500 candles for ten minutes (ingest's
# `widest.rs`; the cold windows take 1m, 3m, 5m and 15m in turn, so only some runs are
# widened: bench.sh's `cold, widened` fixes 1m). Prints one line per measurement; writes
# nothing.
#   scripts/bench_hits.sh [seconds per run, default 5] [rounds, default 3] [redis|hot|cold|cold-wide]
#   CANDLEPIPE_BENCH_BIN=path  another build of candlepipe for the workers (compare two)
# Starts its own nats-server, redis-server (ports 24222/26379), simulator (28080) and
# workers, and stops them at the end. Release build.
# shellcheck source=scripts/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"

secs="${1:-5}"
rounds="${2:-3}"
workload="${3:-redis}"
export CANDLEPIPE_RUN_DIR="$root/.run/bench-hits"
use_ports 24222 26379 28080
export CANDLEPIPE_HMAC_KEY="bench-hmac-key-0123456789" CANDLEPIPE_LOG=warn
if [[ "$workload" == cold* ]]; then
  export CANDLEPIPE_BINANCE_RPS=100000 CANDLEPIPE_COINBASE_RPS=100000 CANDLEPIPE_KRAKEN_RPS=100000
fi

echo "== building (release)"
cargo build --release --quiet --bin candlepipe
bin="$root/target/release/candlepipe"
worker_bin="${CANDLEPIPE_BENCH_BIN:-$bin}"
rm -rf "$CANDLEPIPE_RUN_DIR" && mkdir -p "$CANDLEPIPE_RUN_DIR"
trap stop_all EXIT
scripts/services.sh start

start sim "$bin" sim --addr "127.0.0.1:28080"
wait_for sim "listening on"
if [[ "$workload" == cold* ]]; then
  for ex in binance coinbase kraken; do
    curl -fsS -X POST -H 'Content-Type: application/json' -d '{"latency_ms":20}' \
      "http://127.0.0.1:28080/sim/faults/$ex" >/dev/null
  done
fi
start echo "$bin" bench --serve-echo
wait_for echo "echo responder"
CANDLEPIPE_LOG=info start fill "$worker_bin" run fill
wait_for fill "fill ready"
l1=$((256 << 20)) # the default
[[ "$workload" == redis ]] && l1=0
CANDLEPIPE_LOG=info CANDLEPIPE_L1_CAPACITY=$l1 start ingest "$worker_bin" run ingest
wait_for ingest "ingest ready"

# CPU time (user + system, clock ticks) of a process.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
procs=(nats redis ingest echo fill)

measure() { # concurrency workload [flags...]: one run; prints req/s, p50/p99, CPU µs per request
  local concurrency=$1 before=() pid i line
  shift
  for i in "${!procs[@]}"; do before[i]=$(ticks "$(cat "$CANDLEPIPE_RUN_DIR/${procs[i]}.pid")"); done
  line=$("$bin" bench --workload "$@" --concurrency "$concurrency" --duration "$secs" --json 2>/dev/null | grep '^{')
  local cpu=()
  for i in "${!procs[@]}"; do
    pid=$(cat "$CANDLEPIPE_RUN_DIR/${procs[i]}.pid")
    cpu[i]=$(( $(ticks "$pid") - before[i] ))
  done
  python3 - "$line" "$hz" "${procs[*]}" "${cpu[*]}" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); hz = int(sys.argv[2])
names, ticks = sys.argv[3].split(), [int(t) for t in sys.argv[4].split()]
# The bench's own 1 s warm-up runs too: CPU is spread over every request sent.
sent = r["requests"] * (r["duration_s"] + 1) / r["duration_s"]
cpu = " ".join(f"{n} {t / hz / sent * 1e6:.1f}" for n, t in zip(names, ticks) if t)
print(f"{r['workload']:>6} {r['concurrency']:>2} {r['rps']:>9.0f} req/s  p50 {r['p50_us'] / 1000:.2f} ms  "
      f"p99 {r['p99_us'] / 1000:.2f} ms  CPU µs/request: {cpu}")
PY
}

if [[ "$workload" == cold* ]]; then
  [[ "$workload" == cold-wide ]] && measure 64 zipf
  for round in $(seq 1 "$rounds"); do
    echo "== round $round"
    measure 1 direct
    measure 1 cold
    measure 16 cold
  done
  exit 0
fi
# Fill the series once (the first request goes to the exchange); its reply's size is the
# echo's.
reply_bytes=$("$bin" bench --workload "$workload" --concurrency 1 --duration 1 --json 2>/dev/null |
  grep '^{' | python3 -c 'import json, sys; print(json.load(sys.stdin)["reply_bytes"])')
for round in $(seq 1 "$rounds"); do
  echo "== round $round"
  measure 64 echo --reply-bytes "$reply_bytes"
  measure 64 "$workload"
done
