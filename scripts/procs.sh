#!/usr/bin/env bash
# Background processes for the demo, bench and soak scripts. Sourced; needs
# $CANDLEPIPE_RUN_DIR (logs and pid files go there) and the project root as cwd.

# Points every candlepipe process at local servers: use_ports NATS REDIS SIM.
use_ports() {
  export CANDLEPIPE_DEMO_NATS_PORT=$1 CANDLEPIPE_DEMO_REDIS_PORT=$2
  export CANDLEPIPE_NATS_URL="nats://127.0.0.1:$1" CANDLEPIPE_REDIS_URL="redis://127.0.0.1:$2"
  sim_url="http://127.0.0.1:$3"
  export CANDLEPIPE_BINANCE_URL=$sim_url CANDLEPIPE_COINBASE_URL=$sim_url CANDLEPIPE_KRAKEN_URL=$sim_url
  export CANDLEPIPE_BINANCE_ARCHIVE_URL=$sim_url
  export CANDLEPIPE_BINANCE_WS_URL="ws://127.0.0.1:$3" CANDLEPIPE_KRAKEN_WS_URL="ws://127.0.0.1:$3/v2"
  export CANDLEPIPE_COINBASE_WS_URL="ws://127.0.0.1:$3"
}

# start NAME COMMAND...: runs it in the background; log NAME.log, pid NAME.pid.
start() {
  local name=$1; shift
  "$@" >>"$CANDLEPIPE_RUN_DIR/$name.log" 2>&1 &
  echo $! >"$CANDLEPIPE_RUN_DIR/$name.pid"
}

# wait_for NAME TEXT [COUNT]: until NAME.log holds TEXT (COUNT times), at most 30 s.
wait_for() {
  local log="$CANDLEPIPE_RUN_DIR/$1.log"
  for _ in $(seq 1 300); do
    [[ $(grep -c "$2" "$log" 2>/dev/null || true) -ge ${3:-1} ]] && return 0
    sleep 0.1
  done
  echo "error: '$2' not seen in $log:" >&2
  tail -20 "$log" >&2
  exit 1
}

# The start of every benchmark: a release build ($bin), an empty $CANDLEPIPE_RUN_DIR, the
# servers of scripts/services.sh, and everything stopped on exit.
bench_stack() {
  echo "== building (release)"
  cargo build --release --quiet --bin candlepipe
  bin="$root/target/release/candlepipe"
  rm -rf "$CANDLEPIPE_RUN_DIR" && mkdir -p "$CANDLEPIPE_RUN_DIR"
  trap stop_all EXIT
  scripts/services.sh start
}

# Stops everything started here, then the servers of scripts/services.sh.
stop_all() {
  local f
  for f in "$CANDLEPIPE_RUN_DIR"/*.pid; do
    case "$(basename "$f")" in nats.pid | redis.pid) continue ;; esac
    [[ -f "$f" ]] && kill "$(cat "$f")" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  scripts/services.sh stop >/dev/null
}
