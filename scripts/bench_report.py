"""Turns scripts/bench.sh's JSON lines into BENCHMARKS.md (stdout)."""
import datetime
import json
import os
import platform
import sys

results_path, secs, sim_latency_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(line) for line in open(results_path) if line.strip()]
echoes = [r for r in rows if r["workload"] == "echo"]
small = min((r["reply_bytes"] for r in echoes), default=0)
# The trivial echo (the spec's reference) and the echo with replies as large as ours.
echo = {r["concurrency"]: r for r in echoes if r["reply_bytes"] == small}
sized = {r["concurrency"]: r for r in echoes if r["reply_bytes"] != small}
for r in rows:
    if r["workload"] == "echo" and r["reply_bytes"] != small:
        r["workload"] = "echo, sized"

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
ms = lambda us: f"{us / 1000:.3f}"
out = []
out.append("# Benchmarks\n")
out.append(f"Produced by `scripts/bench.sh {secs}` on {datetime.date.today()}: "
           f"{os.cpu_count()} cores ({cpu_model()}), {mem_gib:.0f} GiB, {platform.system()} {platform.release()}. "
           f"Release build; nats-server, redis-server, the simulator ({sim_latency_ms} ms latency per exchange "
           f"request), one ingest and one fill process and the load generator all share the machine. "
           f"Each run measures {secs} s after a 1 s warm-up; `echo` is a trivial NATS responder in its own "
           f"process, the transport's limit in this same run.\n")
out.append("`× echo` compares with the trivial echo (the spec's reference); `× sized echo` with an echo "
           "whose replies are as large as a 100-candle reply: what the transport itself can do for "
           "payloads of that size.\n")
out.append("| workload | requesters | reply B | req/s | × echo | × sized echo | p50 ms | p99 ms | × echo p99 | p99.9 ms | errors | answered from |")
out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    e, z = echo.get(r["concurrency"]), sized.get(r["concurrency"])
    ratio = f"{r['rps'] / e['rps']:.2f}" if e else "-"
    zratio = f"{r['rps'] / z['rps']:.2f}" if z else "-"
    p99_ratio = f"{r['p99_us'] / e['p99_us']:.2f}" if e and e["p99_us"] else "-"
    sources = ", ".join(f"{k} {v}" for k, v in sorted(r["sources"].items()))
    out.append(f"| {r['workload']} | {r['concurrency']} | {r['reply_bytes']} | {r['rps']:.0f} | {ratio} | {zratio} | "
               f"{ms(r['p50_us'])} | {ms(r['p99_us'])} | {p99_ratio} | {ms(r['p999_us'])} | {r['errors']} | {sources} |")

def target(workload, conc=64):
    return next((r for r in rows if r["workload"] == workload and r["concurrency"] == conc), None)

out.append("\n## Against the targets (SPEC §6)\n")
for workload, need in [("hot", 0.70), ("redis", 0.50)]:
    r, e = target(workload), echo.get(64)
    if r and e:
        thr = r["rps"] / e["rps"]
        p99 = r["p99_us"] / e["p99_us"] if e["p99_us"] else float("inf")
        verdict = "met" if thr >= need and (workload != "hot" or p99 <= 2.0) else "NOT met"
        extra = f", p99 {p99:.2f}× echo's (target ≤ 2×)" if workload == "hot" else ""
        z = sized.get(64)
        same = f" Against the sized echo: {r['rps'] / z['rps']:.2f}×." if z else ""
        out.append(f"- `{workload}` at 64: {thr:.2f}× echo's throughput (target ≥ {need:.2f}){extra}: **{verdict}**.{same}")
cold = target("cold", 1)
if cold:
    added = cold["p50_us"] / 1000 - sim_latency_ms
    verdict = "met" if added <= 3.0 else "NOT met"
    out.append(f"- cold miss at 1 requester: p50 {cold['p50_us'] / 1000:.3f} ms against the simulator's "
               f"{sim_latency_ms} ms, so {added:.3f} ms added (target ≤ 3 ms): **{verdict}**.")
out.append("- 1,000 concurrent requests for one cold series cause 1 exchange request: asserted by the test "
           "`a_thousand_concurrent_cold_requests_through_three_ingests_make_one_exchange_request`.")
out.append("""
## What the profiles showed, and what changed

Profiled with `perf record -g` on the ingest process under `candlepipe bench --workload hot
--concurrency 64` (and `redis` with `CANDLEPIPE_L1_CAPACITY=0`), release build, same machine.

1. **L1 hits re-encoded every reply.** 38% of ingest CPU was `rust_decimal` formatting
   decimals, 11% JSON string escaping, 7% memmove: 100 candles, 500 decimals, per hit. Encoded
   replies are now kept on the immutable L1 snapshot they came from (`l1.rs`), so they can
   never outlive its data and need no invalidation. Hot at 64 requesters: 11.4k -> 23-25k
   req/s, p99 20 -> 7-9 ms. Afterwards the ingest used 36% of one core at 27k req/s while
   nats-server used 75% and the load generator 53%: at ~1.0x the sized echo, L1 hits now
   cost what the transport costs to move an 11 KB reply. Against the trivial 90-byte echo
   the ratio is bounded by that reply size, not by candlepipe.
2. **Redis reads took two round trips** (meta, then chunks). The meta and every chunk the
   window can touch are now read in one pipeline, writes read version and meta together,
   and the fill lock is released after `ready` is announced. Redis hits at 64: 7.4k -> 9.5-10.3k
   req/s; cold-miss overhead 4.1-4.5 -> 3.2-4.0 ms p50 (runs on this shared 2-core machine vary
   by about a millisecond; the table above is one run).
3. **What bounds Redis hits now** (not yet addressed): JSON-encoding the reply (~25% of
   ingest CPU), decoding candles stored as decimal *strings* in MessagePack (~12%) and
   SHA-256 over whole 256-candle chunks (~6%). Storing decimals in binary and caching
   encoded candle fragments per chunk are the next steps.""")

# Keep the soak section (scripts/soak.sh) when the table is regenerated.
try:
    old = open("BENCHMARKS.md").read()
    start, end = old.find("<!-- soak -->"), old.find("<!-- /soak -->")
    if start >= 0 and end > start:
        out.append("\n" + old[start:end + len("<!-- /soak -->")])
except OSError:
    pass
print("\n".join(out))
