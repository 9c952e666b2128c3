#!/usr/bin/env bash
# The main job, end to end and offline, on built-in defaults: local nats-server and
# redis-server on ports of their own, the exchange simulator (exchanges and an
# OpenAI-compatible LLM), and a worker running ingest, fill and analyze. Asks each exchange
# for candles twice and shows where each answer came from, then analyses a portfolio with
# LLM commentary and prints its tokens and cost.
# Installs what is missing; stops everything it started when it ends.
# shellcheck source=scripts/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"

export CANDLEPIPE_RUN_DIR="$root/.run"
sim_port="${CANDLEPIPE_DEMO_SIM_PORT:-18080}"
use_ports "${CANDLEPIPE_DEMO_NATS_PORT:-14222}" "${CANDLEPIPE_DEMO_REDIS_PORT:-16379}" "$sim_port"
gateway_port="${CANDLEPIPE_DEMO_GATEWAY_PORT:-18088}"
export CANDLEPIPE_GATEWAY_ADDR="127.0.0.1:$gateway_port"

echo "== building"
cargo build --quiet --bin candlepipe
bin="$root/target/debug/candlepipe"
mkdir -p "$CANDLEPIPE_RUN_DIR"
rm -f "$CANDLEPIPE_RUN_DIR"/{sim,worker}.log
trap stop_all EXIT

echo "== services"
scripts/services.sh start

echo "== exchange simulator on 127.0.0.1:$sim_port"
start sim "$bin" sim --addr "127.0.0.1:$sim_port"
wait_for sim "listening on"

# The simulator's LLM stands in for a real provider; its prices are built in.
export CANDLEPIPE_LLM_URL="http://127.0.0.1:$sim_port"
export CANDLEPIPE_LLM_MODEL=sim-small

echo "== workers: candlepipe run all (log: .run/worker.log)"
# --dev: no CANDLEPIPE_HMAC_KEY here, so sign with the public development key (a trial only).
start worker "$bin" run all --dev
wait_for worker "ingest ready"
wait_for worker "fill ready"
wait_for worker "analyze ready"
wait_for worker "stream ready"
wait_for worker "gateway ready"

for pair in "binance BTC/USDT" "coinbase ETH/USD" "kraken BTC/USD"; do
  read -r exchange symbol <<<"$pair"
  echo
  echo "== candlepipe get $exchange $symbol 1m --limit 5   (first time)"
  "$bin" get "$exchange" "$symbol" 1m --limit 5
  echo "== candlepipe get $exchange $symbol 1m --limit 5   (again)"
  "$bin" get "$exchange" "$symbol" 1m --limit 5 | head -1
done

echo
echo "== candlepipe get coinbase BTC/USD 4h --limit 3   (Coinbase has no 4h: built from its 1h)"
"$bin" get coinbase BTC/USD 4h --limit 3

echo
echo "== candlepipe watch binance BTC/USDT 1m --count 3   (live, from the exchange's WebSocket)"
"$bin" watch binance BTC/USDT 1m --count 3

echo
echo "== Binance's own klines endpoint, from the cache: GET /binance/api/v3/klines on 127.0.0.1:$gateway_port"
# Plain bash over /dev/tcp: any HTTP client works (point a Binance client's base URL here).
exec 3<>"/dev/tcp/127.0.0.1/$gateway_port"
printf 'GET /binance/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=2 HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
tail -n 1 <&3
echo
exec 3<&-

echo
echo "== an error, answered with its code"
"$bin" get binance 'BTC.USDT' 1m || true
echo
echo "== candlepipe analyze (8 symbols, one unknown) --interval 1h --llm"
"$bin" analyze BTC/USDT ETH/USDT SOL/USDT BNB/USDT XRP/USDT ADA/USDT DOGE/USDT NOPE/USDT \
  --interval 1h --llm
echo
echo "== the same again: commentary is cached until the candle closes, so it costs nothing"
"$bin" analyze BTC/USDT ETH/USDT --interval 1h --llm | tail -1
echo
echo "== candlepipe stats"
sleep 5   # each worker adds its request counts to the cluster totals every 5 s
"$bin" stats
echo
echo "demo finished: first answers came from the exchange (the simulator), repeats from L1;"
echo "the analysis read candles through the same cache and priced every LLM token."
