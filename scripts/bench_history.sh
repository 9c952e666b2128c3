#!/usr/bin/env bash
# Deep history (issue #24), against the simulator at the default budgets (Binance 20 rps,
# Kraken 1 rps, archive files 10/s):
# - a 90-day Binance 1m backfill through Binance's archive (monthly, then daily files, REST
#   for today), against the same backfill with --rest-only (klines pages of 1,000);
# - a 7-day Kraken 1m backfill from Kraken's trades (OHLC alone keeps 720 minutes).
# Writes the section between <!-- deep-history --> markers of BENCHMARKS.md.
#   scripts/bench_history.sh
# Starts its own nats-server, redis-server (ports 25222/27379) and simulator (29080), and
# stops them at the end. Release build.
# shellcheck source=scripts/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"

export CANDLEPIPE_RUN_DIR="$root/.run/bench-history"
use_ports 25222 27379 29080
export CANDLEPIPE_HMAC_KEY="bench-hmac-key-0123456789" CANDLEPIPE_LOG=warn
export CANDLEPIPE_HISTORY_CAP=200000

bench_stack
start sim "$bin" sim --addr "127.0.0.1:29080"
wait_for sim "listening on"

results="$CANDLEPIPE_RUN_DIR/results.txt"
: >"$results"
stats() { curl -fsS "$sim_url/sim/stats"; }
# run NAME EXCHANGE SYMBOL DAYS [flags…]: one backfill, its time and the sim's counts after it.
run() {
  local name=$1 ex=$2 symbol=$3 days=$4
  shift 4
  local now since t0 t1
  now=$(date +%s)
  since=$(((now / 86400 - days) * 86400 * 1000))
  curl -fsS -X POST "$sim_url/sim/reset" >/dev/null
  echo "== $name: $ex $symbol 1m, $days days"
  t0=$(date +%s.%N)
  "$bin" backfill "$ex" "$symbol" 1m --since "$since" "$@" 2>"$CANDLEPIPE_RUN_DIR/$name.err" | tee "$CANDLEPIPE_RUN_DIR/$name.out"
  t1=$(date +%s.%N)
  stats >"$CANDLEPIPE_RUN_DIR/$name.stats.json"
  echo "$name $t0 $t1" >>"$results"
}
run archive binance BTC/USDT 90
run rest-only binance ETH/USDT 90 --rest-only
run kraken-trades kraken XBT/USD 7

python3 - "$CANDLEPIPE_RUN_DIR" <<'PY' | python3 scripts/bench_section.py deep-history
import json, re, sys
d = sys.argv[1]
times = {l.split()[0]: float(l.split()[2]) - float(l.split()[1]) for l in open(f"{d}/results.txt")}
def of(name, ex):
    s = json.load(open(f"{d}/{name}.stats.json"))
    out = open(f"{d}/{name}.out").read()
    slots = int(re.search(r"(\d+) candle slots", out).group(1))
    fetched = int(re.search(r"(\d+) candles fetched", out).group(1))
    archive = s.get("binance_archive", {}).get("requests", 0)
    return slots, fetched, s[ex]["requests"], s[ex]["market_lists"], archive, times[name], out.strip()
rows = [("Binance 90 days, archive first", *of("archive", "binance")),
        ("Binance 90 days, REST only", *of("rest-only", "binance")),
        ("Kraken 7 days, trades past OHLC's 720", *of("kraken-trades", "kraken"))]
print("\n".join([
    "<!-- deep-history -->",
    "## Deep history: Binance's archive, Kraken's trades",
    "",
    "Produced by `scripts/bench_history.sh` (release build, against the simulator at the default budgets: "
    "Binance 20 requests/s, Kraken 1/s, archive files 10/s per process; one `candlepipe backfill` of 1m "
    "candles up to the last closed minute each). REST only: the same backfill with `--rest-only` "
    "(klines pages of 1,000). Calls are the simulator's count of candle requests (klines, OHLC, Trades), market "
    "lists apart; archive requests count each file and its `.CHECKSUM`.",
    "",
    "| backfill | candle slots | candles stored | candle calls | market lists | archive requests | time |",
    "|---|---|---|---|---|---|---|",
    *[f"| {n} | {slots} | {fetched} | {calls} | {lists} | {arch} | {t:.1f} s |" for n, slots, fetched, calls, lists, arch, t, _ in rows],
    "",
    "What each said:",
    "",
    *[f"- {n}: `{out.splitlines()[-1]}`" for n, *_, out in rows],
    "",
    "Kraken's OHLC alone serves the newest 720 minutes: without its trades, all older minutes of the week "
    "(from midnight seven days back) would be `history_unavailable`. The simulator makes six trades a traded minute; a busy real "
    "pair makes far more, and costs a Trades call per 1,000 of them at Kraken's 1 call a second.",
    "",
    "<!-- /deep-history -->",
]))
PY
echo "== wrote the deep-history section of BENCHMARKS.md"
