#!/usr/bin/env bash
# Cold misses on an exchange server no one on the team wrote (scripts/independent_exchange.py:
# aiohttp, 20 ms per request, headers and body written apart), issue #26: per round, the same
# kind of klines requests from curl (one keep-alive connection), Python's http.client
# (`plain`), candlepipe's own exchange client alone (`direct`: the fill's `fetch`), and
# through candlepipe (`cold`: `candlepipe run all`, 1 requester), then where a cold miss's
# time goes (scripts/cold_steps.py: request, fill job queued, exchange answered, ready,
# reply). Prints; writes nothing.
#   scripts/bench_cold.sh [seconds per run, default 8] [rounds, default 2]
# Starts its own nats-server, redis-server (ports 44222/46379), exchange (48080) and worker,
# and stops them at the end. Release build. CANDLEPIPE_LOG overrides the worker's log
# filter (the default keeps the fill at debug: the step breakdown reads its log).
# shellcheck source=scripts/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"

secs="${1:-8}"
rounds="${2:-2}"
export CANDLEPIPE_RUN_DIR="$root/.run/bench-cold"
use_ports 44222 46379 48080
export CANDLEPIPE_HMAC_KEY="bench-hmac-key-0123456789" CANDLEPIPE_BINANCE_RPS=100000
export CANDLEPIPE_LOG="${CANDLEPIPE_LOG:-warn,candlepipe_worker::fill=debug}"
ensure_python_packages
export PYTHONPATH="$CANDLEPIPE_PYTHONPATH"

bench_stack

start exchange python3 scripts/independent_exchange.py 48080 0.02
for _ in $(seq 1 50); do curl -fsS -o /dev/null "$sim_url/api/v3/exchangeInfo" 2>/dev/null && break; sleep 0.2; done
start worker "$bin" run all --gateway-addr 127.0.0.1:0
wait_for worker "fill ready"

p50() { # workload: p50 ms of a `bench --json` line on stdin
  python3 -c "import json, sys; r = json.loads(sys.stdin.read()); print('%6s p50 %.2f ms (%d requests)' % (sys.argv[1], r['p50_us'] / 1000, r['requests']))" "$1"
}
curl_p50() { # 200 klines requests like plain's on one curl connection
  local now=$(( $(date +%s) / 60 * 60000 )) urls=() k end
  for k in $(seq 1 200); do
    end=$(( now - (k % 50 + 2) * 100 * 60000 ))
    urls+=(-o /dev/null "$sim_url/api/v3/klines?symbol=TEST$(( (k * 7) % 2000 ))USDT&interval=1m&startTime=$(( end - 99 * 60000 ))&endTime=$(( end + 59999 ))&limit=1000")
  done
  curl -sS -w '%{time_total}\n' "${urls[@]}" |
    python3 -c 'import statistics, sys; t = [float(l) for l in sys.stdin]; print(f"  curl p50 {statistics.median(t) * 1000:.2f} ms ({len(t)} requests)")'
}

for round in $(seq 1 "$rounds"); do
  echo "== round $round"
  curl_p50
  python3 scripts/plain_client.py "$sim_url" "$secs" | p50 plain
  "$bin" bench --workload direct --concurrency 1 --duration "$secs" --json 2>/dev/null | grep '^{' | p50 direct
  "$bin" bench --workload cold --concurrency 1 --duration "$secs" --json 2>/dev/null | grep '^{' | p50 cold
done
echo "== where a cold miss's time goes (medians)"
python3 scripts/cold_steps.py "$CANDLEPIPE_NATS_URL" $((secs + 2)) "$CANDLEPIPE_RUN_DIR/worker.log" &
steps=$!
sleep 0.5
"$bin" bench --workload cold --concurrency 1 --duration "$secs" --json >/dev/null 2>&1
wait "$steps"
