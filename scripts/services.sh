#!/usr/bin/env bash
# Start, stop or show the local nats-server (JetStream) and redis-server that the demo uses,
# on ports of their own, with state under .run/. Installs both with apt-get when missing.
# Servers already running elsewhere (system services, other ports) are never touched.
#
#   scripts/services.sh start|stop|status
#   CANDLEPIPE_DEMO_NATS_PORT (14222)  CANDLEPIPE_DEMO_REDIS_PORT (16379)
#   CANDLEPIPE_RUN_DIR (.run): where pid files, logs and the JetStream store go
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run="${CANDLEPIPE_RUN_DIR:-$root/.run}"
nats_port="${CANDLEPIPE_DEMO_NATS_PORT:-14222}"
redis_port="${CANDLEPIPE_DEMO_REDIS_PORT:-16379}"

# shellcheck source=scripts/install.sh
source "$root/scripts/install.sh"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 100); do
    port_open "$port" && return 0
    sleep 0.1
  done
  echo "error: $what did not open port $port; see $run/$what.log" >&2
  exit 1
}

start() {
  ensure_servers
  mkdir -p "$run/nats" "$run/redis"
  if alive "$run/nats.pid"; then
    echo "nats-server already running on $nats_port (pid $(cat "$run/nats.pid"))"
  elif port_open "$nats_port"; then
    echo "error: port $nats_port is taken by another process; set CANDLEPIPE_DEMO_NATS_PORT" >&2
    exit 1
  else
    nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$run/nats" \
      -P "$run/nats.pid" -l "$run/nats.log" &
    wait_port "$nats_port" nats
    echo "nats-server on 127.0.0.1:$nats_port (JetStream, store $run/nats)"
  fi
  if alive "$run/redis.pid"; then
    echo "redis-server already running on $redis_port (pid $(cat "$run/redis.pid"))"
  elif port_open "$redis_port"; then
    echo "error: port $redis_port is taken by another process; set CANDLEPIPE_DEMO_REDIS_PORT" >&2
    exit 1
  else
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize yes --pidfile "$run/redis.pid" --logfile "$run/redis.log" --dir "$run/redis" >/dev/null
    wait_port "$redis_port" redis
    echo "redis-server on 127.0.0.1:$redis_port"
  fi
}

stop_one() {
  local pidfile=$1 what=$2
  if alive "$pidfile"; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stopped $what"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop_one "$run/nats.pid" nats-server; stop_one "$run/redis.pid" redis-server ;;
  status)
    alive "$run/nats.pid" && echo "nats-server: running on $nats_port" || echo "nats-server: stopped"
    alive "$run/redis.pid" && echo "redis-server: running on $redis_port" || echo "redis-server: stopped"
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
