#!/usr/bin/env bash
# The gateway under HTTP load, measured by an independent tool (wrk, from apt): cached
# Binance klines (100 rows, from L1) against the gateway's trivial endpoint (`/v1/echo`,
# a body of the same size) in the same process, alternating, at 64 connections. Targets
# (issue #23): klines at ≥ 70% of the trivial endpoint's throughput, p99 ≤ 1.5× its p99.
# For comparison, the same klines from a second gateway without its answer cache
# (CANDLEPIPE_GATEWAY_CACHE_MS=0): each request a candles.get over NATS.
# Writes the section between <!-- gateway-http --> markers of BENCHMARKS.md.
#   scripts/bench_gateway.sh [seconds per run, default 10] [rounds, default 3]
# Starts its own nats-server, redis-server (ports 24222/26379), simulator (28080), fill,
# ingest and gateway (28090, and 28091 without the cache) workers, and stops them at the
# end. Release build.
# shellcheck source=scripts/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"

secs="${1:-10}"
rounds="${2:-3}"
export CANDLEPIPE_RUN_DIR="$root/.run/bench-gateway"
use_ports 24222 26379 28080 28090 28091
export CANDLEPIPE_HMAC_KEY="bench-hmac-key-0123456789" CANDLEPIPE_LOG=warn
command -v wrk >/dev/null || apt_install wrk

bench_stack

start sim "$bin" sim --addr "127.0.0.1:28080"
wait_for sim "listening on"
CANDLEPIPE_LOG=info start fill "$bin" run fill
wait_for fill "fill ready"
CANDLEPIPE_LOG=info start ingest "$bin" run ingest
wait_for ingest "ingest ready"
CANDLEPIPE_LOG=info start gateway "$bin" run gateway --gateway-addr 127.0.0.1:28090
wait_for gateway "gateway ready"
CANDLEPIPE_LOG=info CANDLEPIPE_GATEWAY_CACHE_MS=0 start uncached "$bin" run gateway --gateway-addr 127.0.0.1:28091
wait_for uncached "gateway ready"

gw=http://127.0.0.1:28090
klines="$gw/binance/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=100"
for _ in $(seq 50); do
  curl -fsS -o /dev/null "$klines" && break
  sleep 0.2
done
size=$(curl -fsS "$klines" | wc -c)
echo_url="$gw/v1/echo?bytes=$size"
echo "== klines reply: $size bytes; $rounds rounds of ${secs} s each, 64 connections, 2 threads"

results="$CANDLEPIPE_RUN_DIR/results.txt"
: >"$results"
run() { # name url
  local out
  out=$(wrk -t2 -c64 -d"${secs}s" --latency "$2")
  local rps p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "$1 $rps $p99" | tee -a "$results"
  if grep -q "Non-2xx" <<<"$out"; then
    echo "error: $1 had non-2xx answers" >&2
    grep "Non-2xx" <<<"$out" >&2
    exit 1
  fi
}
for _ in $(seq "$rounds"); do
  run echo "$echo_url"
  run klines "$klines"
  run uncached "${klines/28090/28091}"
done

python3 - "$results" "$secs" "$rounds" "$size" <<'PY' | python3 scripts/bench_section.py gateway-http
import re, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
secs, rounds, size = sys.argv[2], sys.argv[3], sys.argv[4]

def ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

def of(name):
    runs = [(float(r[1]), ms(r[2])) for r in rows if r[0] == name]
    return statistics.median(x for x, _ in runs), statistics.median(p for _, p in runs), runs

echo_rps, echo_p99, echo_runs = of("echo")
kl_rps, kl_p99, kl_runs = of("klines")
un_rps, un_p99, un_runs = of("uncached")
ratio, p99_ratio = kl_rps / echo_rps, kl_p99 / echo_p99
met = ratio >= 0.70 and p99_ratio <= 1.5
print("\n".join([
    "<!-- gateway-http -->",
    "## The gateway under HTTP load",
    "",
    f"Produced by `scripts/bench_gateway.sh {secs} {rounds}` (release build, one gateway, ingest and fill "
    f"process each on this 2-core machine): `wrk -t2 -c64 -d{secs}s --latency`, alternating the trivial endpoint "
    f"`/v1/echo?bytes={size}` (a body as large as the klines reply, same process) and cached Binance klines "
    f"(`/binance/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=100`, {size} bytes, the forming minute included), "
    "medians of the rounds. Target (issue #23): klines ≥ 70% of the trivial "
    "endpoint's throughput, p99 ≤ 1.5× its p99.",
    "",
    "| endpoint | req/s (median) | p99 (median) | runs (req/s, p99 ms) |",
    "|---|---|---|---|",
    f"| trivial `/v1/echo` | {echo_rps:.0f} | {echo_p99:.2f} ms | " + ", ".join(f"{r:.0f} / {p:.2f}" for r, p in echo_runs) + " |",
    f"| cached klines | {kl_rps:.0f} | {kl_p99:.2f} ms | " + ", ".join(f"{r:.0f} / {p:.2f}" for r, p in kl_runs) + " |",
    f"| cached klines, gateway without its answer cache | {un_rps:.0f} | {un_p99:.2f} ms | " + ", ".join(f"{r:.0f} / {p:.2f}" for r, p in un_runs) + " |",
    "",
    "The gateway keeps each candle answer 250 ms (`CANDLEPIPE_GATEWAY_CACHE_MS`) for identical requests, so at "
    "this load nearly every klines request is served from memory like the trivial one (neither reads its query "
    "the same way: the echo parses `bytes`, a kept answer is found by its URI). Without that cache each request "
    "is a `candles.get` over NATS to the ingest's L1 and a rendering of 100 rows, on the same two cores as wrk, "
    "NATS and the ingest: the last row.",
    "",
    f"Klines at **{100 * ratio:.0f}%** of the trivial endpoint's throughput, p99 **{p99_ratio:.2f}×**: "
    f"**{'met' if met else 'NOT met'}**.",
    "",
    "<!-- /gateway-http -->",
]))
PY
echo "== wrote the gateway-http section of BENCHMARKS.md"
