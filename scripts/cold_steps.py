"""Where a cold miss's time goes: listens on NATS to the requests, fill jobs, ready events
and replies of a `bench --workload cold` run, reads the fill worker's debug log for when
each exchange answer arrived, and prints the median of each step.

    python3 scripts/cold_steps.py NATS_URL SECONDS FILL_LOG
"""
import asyncio
import re
import statistics
import sys
import time
from datetime import datetime

import nats

SERIES = re.compile(r"(TEST\d+)")


async def listen(url, seconds):
    nc = await nats.connect(url)
    seen = {}

    async def note(msg):
        at = time.time() * 1000
        m = SERIES.search(msg.data[:200].decode(errors="replace"))
        if not m:
            return
        kind = ("request" if msg.subject.endswith("candles.get")
                else "job queued" if ".jobs.fill." in msg.subject
                else "ready" if ".candles.ready." in msg.subject
                else "reply" if b'"ok"' in msg.data[:20] else None)
        if kind:
            seen.setdefault(m.group(1), {}).setdefault(kind, at)

    for subject in ["candlepipe.candles.get", "candlepipe.jobs.fill.>",
                    "candlepipe.candles.ready.>", "_INBOX.>"]:
        await nc.subscribe(subject, cb=note)
    await asyncio.sleep(seconds)
    await nc.close()
    return seen


def main():
    url, seconds, log = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    seen = asyncio.run(listen(url, seconds))
    for line in open(log, errors="replace"):
        m = re.match(r"(\S+Z)\s+DEBUG .*fetched series=\S+ (TEST\d+)/", line)
        if m and m.group(2) in seen:
            at = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp() * 1000
            seen[m.group(2)]["exchange answered"] = at
    steps = ["request", "job queued", "exchange answered", "ready", "reply"]
    rows = [e for e in seen.values() if all(s in e for s in steps)]
    if not rows:
        sys.exit("no complete cold request seen")
    for a, b in zip(steps, steps[1:]):
        print(f"  {a:>17} -> {b:<17} {statistics.median(e[b] - e[a] for e in rows):7.3f} ms")
    print(f"  {'request':>17} -> {'reply':<17} "
          f"{statistics.median(e['reply'] - e['request'] for e in rows):7.3f} ms ({len(rows)} requests)")


main()
