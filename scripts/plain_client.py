"""A plain keep-alive HTTP client: the same cold requests `bench --workload direct` sends,
one after another on one connection (Python's http.client). Prints one JSON line in the
shape of `candlepipe bench --json`, so cold misses can be judged against it.

    python3 scripts/plain_client.py SIM_URL SECONDS
"""
import http.client
import json
import random
import sys
import time
from urllib.parse import urlparse

url, seconds = urlparse(sys.argv[1]), float(sys.argv[2])
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
minute = 60_000
now = int(time.time() * 1000) // minute * minute
latencies = []
k = random.randrange(1_000_000)
until = time.monotonic() + 1 + seconds  # a one-second warm-up, as bench has
while time.monotonic() < until:
    end = now - (k // 2000 % 100 + 2) * 100 * minute
    path = (f"/api/v3/klines?symbol=TEST{k % 2000}USDT&interval=1m"
            f"&startTime={end - 99 * minute}&endTime={end + minute - 1}&limit=1000")
    k += 1
    started = time.monotonic()
    conn.request("GET", path)
    body = conn.getresponse().read()
    elapsed = time.monotonic() - started
    assert body.startswith(b"[["), body[:200]
    if time.monotonic() > until - seconds:
        latencies.append(elapsed)
latencies.sort()
us = lambda q: int(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6)
print(json.dumps({"workload": "plain", "concurrency": 1, "duration_s": seconds,
                  "requests": len(latencies), "errors": 0, "rps": len(latencies) / seconds,
                  "p50_us": us(0.5), "p99_us": us(0.99), "p999_us": us(0.999),
                  "max_us": int(latencies[-1] * 1e6), "reply_bytes": 0,
                  "sources": {"plain": len(latencies)}}))
