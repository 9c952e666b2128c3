#!/usr/bin/env bash
# Soak with chaos: a zipf load for N minutes against one ingest (L1 capped) and two fill
# workers, while a fill worker is SIGKILLed and restarted every 2 minutes and Redis is
# restarted half-way. Samples the ingest's RSS every 10 s and writes the "Soak" section of
# BENCHMARKS.md.   scripts/soak.sh [minutes, default 10]
# shellcheck source=scripts/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"

minutes="${1:-10}"
l1_capacity=33554432
export CANDLEPIPE_RUN_DIR="$root/.run/soak"
sim_port=38080
use_ports 34222 36379 "$sim_port"
export CANDLEPIPE_BINANCE_RPS=2000 CANDLEPIPE_COINBASE_RPS=2000 CANDLEPIPE_KRAKEN_RPS=2000
export CANDLEPIPE_HMAC_KEY="soak-hmac-key-0123456789" CANDLEPIPE_LOG=info CANDLEPIPE_ACK_WAIT_MS=5000

echo "== building (release)"
cargo build --release --quiet --bin candlepipe
bin="$root/target/release/candlepipe"
rm -rf "$CANDLEPIPE_RUN_DIR" && mkdir -p "$CANDLEPIPE_RUN_DIR"
log="$CANDLEPIPE_RUN_DIR/events.log"

trap stop_all EXIT
scripts/services.sh start

note() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$log"; }

start sim "$bin" sim --addr "127.0.0.1:$sim_port"
wait_for sim "listening on"
for ex in binance coinbase kraken; do
  curl -fsS -X POST -H 'Content-Type: application/json' -d '{"latency_ms":20}' "http://127.0.0.1:$sim_port/sim/faults/$ex"
done
CANDLEPIPE_L1_CAPACITY=$l1_capacity start ingest "$bin" run ingest
wait_for ingest "ingest ready"
start fill1 "$bin" run fill
start fill2 "$bin" run fill
wait_for fill1 "fill ready"
wait_for fill2 "fill ready"

secs=$((minutes * 60))
note "soak: zipf over 5000 series, 16 requesters, ${minutes} min, L1 capacity $l1_capacity bytes"
"$bin" bench --workload zipf --series 5000 --concurrency 16 --duration "$secs" --json \
  >"$CANDLEPIPE_RUN_DIR/result.json" 2>/dev/null &
load=$!

rss_csv="$CANDLEPIPE_RUN_DIR/rss.csv"
echo "seconds,ingest_rss_kib" >"$rss_csv"
t=0
while kill -0 "$load" 2>/dev/null; do
  sleep 10
  t=$((t + 10))
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$CANDLEPIPE_RUN_DIR/ingest.pid")/status" 2>/dev/null || echo 0)
  echo "$t,$rss" >>"$rss_csv"
  if ((t % 120 == 60)); then
    victim=fill$(( (t / 120) % 2 + 1 ))
    note "SIGKILL $victim and restart it"
    kill -9 "$(cat "$CANDLEPIPE_RUN_DIR/$victim.pid")" || true
    start "$victim" "$bin" run fill
  fi
  if ((t == secs / 2 / 10 * 10)); then
    note "restart redis-server (its data is lost: no persistence)"
    kill "$(cat "$CANDLEPIPE_RUN_DIR/redis.pid")"; sleep 1
    scripts/services.sh start >/dev/null
  fi
done
wait "$load" || true
note "load finished"

python3 - "$CANDLEPIPE_RUN_DIR" "$minutes" "$l1_capacity" <<'PY' | python3 scripts/bench_section.py soak
import json, sys
run, minutes, cap = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.load(open(f"{run}/result.json"))
rss = [tuple(map(int, l.split(","))) for l in open(f"{run}/rss.csv").read().split("\n")[1:] if l]
events = open(f"{run}/events.log").read().strip()
half = [v for t, v in rss if t > len(rss) * 5]
section = [
    "<!-- soak -->",
    "## Soak with chaos",
    "",
    f"Produced by `scripts/soak.sh {minutes}`: zipf over 5,000 series (3 exchanges, 4 intervals, 4 limits), "
    f"16 requesters, one ingest with `CANDLEPIPE_L1_CAPACITY={cap}`, two fill workers, simulator 20 ms; "
    "every 2 minutes a fill worker is SIGKILLed and restarted; Redis is restarted (empty) half-way.",
    "",
    f"- {r['requests']} requests, {r['errors']} errors ({100 * r['errors'] / max(1, r['requests']):.3f}%), "
    f"{r['rps']:.0f} req/s, p50 {r['p50_us'] / 1000:.3f} ms, p99 {r['p99_us'] / 1000:.3f} ms, "
    f"p99.9 {r['p999_us'] / 1000:.3f} ms; answered from {r['sources']}.",
    f"- Ingest RSS: first sample {rss[0][1] / 1024:.0f} MiB, max {max(v for _, v in rss) / 1024:.0f} MiB, "
    f"last {rss[-1][1] / 1024:.0f} MiB; second half between {min(half or [0]) / 1024:.0f} and {max(half or [0]) / 1024:.0f} MiB.",
    "",
    "RSS every 10 s (MiB): " + " ".join(f"{v / 1024:.0f}" for _, v in rss),
    "",
    "Events:",
    "```",
    events,
    "```",
    "<!-- /soak -->",
]
print("\n".join(section))
PY
echo "== wrote the soak section of BENCHMARKS.md"
