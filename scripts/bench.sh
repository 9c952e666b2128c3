#!/usr/bin/env bash
# Runs the standard benchmark set and writes BENCHMARKS.md: every workload at 1, 16 and 64
# concurrent requesters, beside a trivial NATS echo measured in the same run; Redis hits
# and cold misses also in three rounds beside their references (the sized echo, the plain
# HTTP client), one right after the other, which the targets are judged on; then the
# scenarios of spending the exchanges' budgets under pressure, at the default budgets; then
# live candles from the exchanges' streams (5 minutes of 300 hot series, and live latency).
#   scripts/bench.sh [seconds per run, default 10]
# Starts its own nats-server, redis-server (ports 24222/26379), simulator (28080, 20 ms
# latency) and workers, and stops them at the end. Release build.
# shellcheck source=scripts/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"

secs="${1:-10}"
sim_latency_ms=20
export CANDLEPIPE_RUN_DIR="$root/.run/bench"
sim_port=28080
use_ports 24222 26379 "$sim_port"
# Cold misses measure candlepipe, not the budget: let the simulator take anything.
export CANDLEPIPE_BINANCE_RPS=100000 CANDLEPIPE_COINBASE_RPS=100000 CANDLEPIPE_KRAKEN_RPS=100000
export CANDLEPIPE_HMAC_KEY="bench-hmac-key-0123456789" CANDLEPIPE_LOG=warn

echo "== building (release)"
cargo build --release --quiet --bin candlepipe
bin="$root/target/release/candlepipe"
rm -rf "$CANDLEPIPE_RUN_DIR" && mkdir -p "$CANDLEPIPE_RUN_DIR"
results="$CANDLEPIPE_RUN_DIR/results.jsonl"

trap stop_all EXIT
scripts/services.sh start

start sim "$bin" sim --addr "127.0.0.1:$sim_port"
wait_for sim "listening on"
for ex in binance coinbase kraken; do
  curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"latency_ms\":$sim_latency_ms}" \
    "http://127.0.0.1:$sim_port/sim/faults/$ex"
done
start echo "$bin" bench --serve-echo
wait_for echo "echo responder"
CANDLEPIPE_LOG=info start fill "$bin" run fill
wait_for fill "fill ready"
CANDLEPIPE_LOG=info start ingest "$bin" run ingest
wait_for ingest "ingest ready" 1

# Marks the JSON line on stdin as round $2 of workload $1, named $3 if given (bench and
# plain_client.py write the field without and with a space).
round_of() { sed "s/\"workload\": *\"$1\"/\"workload\":\"${3:-$1}\",\"round\":$2/"; }
measure() { # workload [bench flags...]
  local workload=$1; shift
  for c in 1 16 64; do
    echo "== $workload $* at $c concurrent requesters (${secs}s)"
    "$bin" bench --workload "$workload" --concurrency "$c" --duration "$secs" --json "$@" | tee -a "$results"
  done
}
measure echo
measure hot
# The transport's limit for replies as large as the hot ones (100 candles).
hot_bytes=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1])][-1]["reply_bytes"])' "$results")
measure echo --reply-bytes "$hot_bytes"
# Plain cold misses, before anything asks for wider windows: each fill asks the exchange for
# the 100 candles its request wants.
measure cold
# The exchange's own latency: the cold requests sent straight to the simulator, with
# candlepipe's HTTP client and with a plain keep-alive client.
measure direct
echo "== plain keep-alive client (${secs}s)"
python3 scripts/plain_client.py "$sim_url" "$secs" | tee -a "$results"
# The cold-miss target is judged beside the plain client: each round measures both, one
# right after the other (on a shared machine the cost of waking each process drifts between
# minutes, as the transport's rate does), on the same requests: 100 candles of 1m windows
# (the simulator answers a 15m window ~0.7 ms slower than a 1m one, so the mixed intervals
# of the line above would not compare like with like).
for round in 1 2 3; do
  echo "== cold misses beside the plain client, round $round (${secs}s each)"
  python3 scripts/plain_client.py "$sim_url" "$secs" |
    round_of plain "$round" | tee -a "$results"
  "$bin" bench --workload cold --cold-interval 1m --concurrency 1 --duration "$secs" --json |
    round_of cold "$round" | tee -a "$results"
done
measure zipf
# Widened cold misses: zipf asked for up to 500 1m candles, so ingest widens each 1m miss to
# 500 candles (ingest/widest.rs), one exchange page, written as eight chunks.
echo "== cold, widened at 1 concurrent requester (${secs}s)"
"$bin" bench --workload cold --cold-interval 1m --concurrency 1 --duration "$secs" --json |
  sed 's/"workload":"cold"/"workload":"cold, widened"/' | tee -a "$results"

echo "== restarting ingest with L1 disabled for the redis workload"
kill "$(cat "$CANDLEPIPE_RUN_DIR/ingest.pid")"; sleep 1
CANDLEPIPE_LOG=info CANDLEPIPE_L1_CAPACITY=0 start ingest "$bin" run ingest
wait_for ingest "ingest ready" 2
measure redis
# The Redis-hit target is judged beside the sized echo: on a shared machine the transport's
# own rate drifts within minutes, so each round measures both, one right after the other.
for round in 1 2 3; do
  echo "== Redis hits beside the sized echo at 64, round $round (${secs}s each)"
  "$bin" bench --workload echo --reply-bytes "$hot_bytes" --concurrency 64 --duration "$secs" --json |
    round_of echo "$round" "echo, sized" | tee -a "$results"
  "$bin" bench --workload redis --concurrency 64 --duration "$secs" --json |
    round_of redis "$round" | tee -a "$results"
done

echo "== the scenarios, at the default budgets (Binance 20, Coinbase 10, Kraken 1 a second)"
for name in ingest fill; do kill "$(cat "$CANDLEPIPE_RUN_DIR/$name.pid")"; done
sleep 1
redis-cli -p 26379 FLUSHALL >/dev/null
unset CANDLEPIPE_BINANCE_RPS CANDLEPIPE_COINBASE_RPS CANDLEPIPE_KRAKEN_RPS
CANDLEPIPE_LOG=info start fill "$bin" run fill
wait_for fill "fill ready" 2
CANDLEPIPE_LOG=info start ingest "$bin" run ingest
wait_for ingest "ingest ready" 3
sleep 2 # the fill worker's market-list loads take Binance's budget for half a second
for scenario in lanes burst unknown backfill; do
  echo "== scenario $scenario"
  "$bin" bench --scenario "$scenario" --duration "$secs" --sim-url "$sim_url" | tee -a "$results"
done
echo "== scenario zipf-series (25 s)"
"$bin" bench --scenario zipf-series --duration 25 --sim-url "$sim_url" | tee -a "$results"

echo "== live candles: 300 hot series for 5 minutes, then live latency at 2,000 updates a second"
for name in ingest fill; do kill "$(cat "$CANDLEPIPE_RUN_DIR/$name.pid")"; done
sleep 1
redis-cli -p 26379 FLUSHALL >/dev/null
# The first loads of 300 series measure the streams, not the budget; a series is hot after
# 3 requests in a minute.
export CANDLEPIPE_BINANCE_RPS=100000 CANDLEPIPE_KRAKEN_RPS=100000 CANDLEPIPE_STREAM_HOT_PER_MINUTE=3
for ex in binance kraken coinbase; do
  curl -fsS -X POST -H 'Content-Type: application/json' -d '{}' "$sim_url/sim/faults/$ex"
done
CANDLEPIPE_LOG=info start fill "$bin" run fill
wait_for fill "fill ready" 3
CANDLEPIPE_LOG=info start ingest "$bin" run ingest
wait_for ingest "ingest ready" 4
CANDLEPIPE_LOG=info start stream "$bin" run stream
wait_for stream "stream ready"
echo "== scenario streams (20 s warm-up + 280 s)"
"$bin" bench --scenario streams --duration 280 --sim-url "$sim_url" | tee -a "$results"
echo "== live latency (${secs}s)"
"$bin" bench --workload live --series 200 --rate 2000 --duration "$secs" --sim-url "$sim_url" --json | tee -a "$results"

python3 scripts/bench_report.py "$results" "$secs" "$sim_latency_ms" >"$CANDLEPIPE_RUN_DIR/BENCHMARKS.md"
mv "$CANDLEPIPE_RUN_DIR/BENCHMARKS.md" BENCHMARKS.md
echo "== wrote BENCHMARKS.md"
