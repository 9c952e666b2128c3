#!/usr/bin/env bash
# The main job, end to end and offline, on built-in defaults: local nats-server and
# redis-server on ports of their own, the exchange simulator, ingest and fill workers.
# Asks each exchange for candles twice and shows where each answer came from.
# Installs what is missing; stops everything it started when it ends.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/install.sh
source scripts/install.sh
ensure_rust
ensure_servers

sim_port="${CANDLEPIPE_DEMO_SIM_PORT:-18080}"
export CANDLEPIPE_NATS_URL="nats://127.0.0.1:${CANDLEPIPE_DEMO_NATS_PORT:-14222}"
export CANDLEPIPE_REDIS_URL="redis://127.0.0.1:${CANDLEPIPE_DEMO_REDIS_PORT:-16379}"
export CANDLEPIPE_BINANCE_URL="http://127.0.0.1:$sim_port"
export CANDLEPIPE_COINBASE_URL="http://127.0.0.1:$sim_port"
export CANDLEPIPE_KRAKEN_URL="http://127.0.0.1:$sim_port"

echo "== building"
cargo build --quiet --bin candlepipe
bin="$root/target/debug/candlepipe"
mkdir -p .run

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/services.sh stop >/dev/null
}
trap cleanup EXIT

echo "== services"
scripts/services.sh start

wait_for() { # file, text
  for _ in $(seq 1 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "error: '$2' not seen in $1:" >&2; tail -20 "$1" >&2; exit 1
}

echo "== exchange simulator on 127.0.0.1:$sim_port"
"$bin" sim --addr "127.0.0.1:$sim_port" >.run/sim.log 2>&1 &
pids+=($!)
wait_for .run/sim.log "listening on"

echo "== workers: candlepipe run all (log: .run/worker.log)"
"$bin" run all >.run/worker.log 2>&1 &
pids+=($!)
wait_for .run/worker.log "ingest ready"
wait_for .run/worker.log "fill ready"

for pair in "binance BTC/USDT" "coinbase ETH/USD" "kraken BTC/USD"; do
  read -r exchange symbol <<<"$pair"
  echo
  echo "== candlepipe get $exchange $symbol 1m --limit 5   (first time)"
  "$bin" get "$exchange" "$symbol" 1m --limit 5
  echo "== candlepipe get $exchange $symbol 1m --limit 5   (again)"
  "$bin" get "$exchange" "$symbol" 1m --limit 5 | head -1
done

echo
echo "== an error, answered with its code"
"$bin" get binance 'BTC.USDT' 1m || true
echo
echo "demo finished: first answers came from the exchange (the simulator), repeats from L1."
