#!/usr/bin/env python3
"""A candlepipe producer in Python (nats-py): candles and an analysis, every error code handled.

    pip install nats-py
    python3 examples/python/producer.py --nats nats://127.0.0.1:4222 \
        --exchange binance --symbol BTC/USDT --interval 1h --limit 5 --analyze ETH/USDT

Prints one line per answer; with --json, one JSON object per answer instead (what the test
suite reads). The contract is SPEC.md section 3: JSON over NATS request-reply, `ok:false` errors
with a code, never a silent timeout.
"""

import argparse
import asyncio
import json
import sys

import nats
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout

PREFIX = "candlepipe"

# What to do with each error code of `candlepipe.candles.get`.
# The request itself is wrong: asking again gives the same answer.
INPUT_ERRORS = {
    "bad_request",
    "unknown_exchange",
    "invalid_symbol",
    "unknown_symbol",
    "unsupported_interval",
    "limit_out_of_range",
    "history_unavailable",
}
# The service or the exchange could not answer now: ask again after a while.
TRANSIENT_ERRORS = {"rate_limited", "upstream_error", "timeout", "unavailable"}


class CandlepipeError(Exception):
    """An error reply: `code` is one of SPEC's codes, `retry_after_ms` when the service says."""

    def __init__(self, code, message, retry_after_ms=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


async def ask(nc, subject, body, timeout_s):
    """One request; the decoded reply, or CandlepipeError for an `ok:false` one."""
    try:
        msg = await nc.request(subject, json.dumps(body).encode(), timeout=timeout_s)
    except NoRespondersError:
        raise CandlepipeError("unavailable", f"nobody serves {subject}: is candlepipe running?")
    except NatsTimeout:
        # candlepipe always answers before the request's timeout_ms; this is the network.
        raise CandlepipeError("timeout", f"no answer on {subject} within {timeout_s} s")
    reply = json.loads(msg.data)
    if not reply.get("ok"):
        err = reply.get("error") or {}
        raise CandlepipeError(
            err.get("code", "unknown"), err.get("message", ""), err.get("retry_after_ms")
        )
    return reply


async def with_retries(call, attempts=4, first_wait_s=0.5, max_wait_s=10.0):
    """Runs `call` until it answers, waiting between transient errors (the service's own
    `retry_after_ms` when it gives one, else doubling from `first_wait_s`)."""
    wait = first_wait_s
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except CandlepipeError as e:
            if e.code in INPUT_ERRORS or e.code not in TRANSIENT_ERRORS or attempt == attempts:
                raise
            pause = e.retry_after_ms / 1000 if e.retry_after_ms else wait
            await asyncio.sleep(min(pause, max_wait_s))
            wait = min(wait * 2, max_wait_s)


async def candles(nc, exchange, symbol, interval, limit, timeout_ms=8000):
    body = {
        "exchange": exchange,
        "symbol": symbol,
        "interval": interval,
        "limit": limit,
        "timeout_ms": timeout_ms,
    }
    # The service answers within timeout_ms; leave the network a second more.
    return await with_retries(
        lambda: ask(nc, f"{PREFIX}.candles.get", body, timeout_ms / 1000 + 1)
    )


async def analyze(nc, exchange, symbols, interval, llm=False, timeout_s=30):
    body = {
        "exchange": exchange,
        "symbols": symbols,
        "interval": interval,
        "lookback": 200,
        "llm": llm,
    }
    return await with_retries(lambda: ask(nc, f"{PREFIX}.analysis.run", body, timeout_s))


def show(as_json, what, value):
    if as_json:
        print(json.dumps({"what": what, **value}), flush=True)
    elif "error" in value:
        print(f"{what}: {value['error']['code']}: {value['error']['message']}", flush=True)
    elif what == "candles":
        c = value["candles"]
        last = c[-1] if c else None
        print(
            f"candles: {len(c)} from {value['source']}, newest t={last and last['t']} "
            f"close={last and last['c']} closed={last and last['closed']}",
            flush=True,
        )
    else:
        for sym, r in value["results"].items():
            print(f"analysis: {sym} {r['trend']} rsi14={r['rsi14']} signal={r['signal']}")
        for sym, e in value.get("errors", {}).items():
            print(f"analysis: {sym} {e['code']}: {e['message']}")


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nats", default="nats://127.0.0.1:4222")
    p.add_argument("--inbox-prefix", default="_INBOX",
                   help="this producer's inbox prefix (a tenant's, e.g. _INBOX_desk1; the "
                        "service must list it in CANDLEPIPE_REPLY_PREFIXES)")
    p.add_argument("--exchange", default="binance")
    p.add_argument("--symbol", default="BTC/USDT")
    p.add_argument("--interval", default="1h")
    p.add_argument("--limit", type=int, default=5)
    p.add_argument("--analyze", nargs="*", default=[], metavar="SYMBOL")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    nc = await nats.connect(args.nats, connect_timeout=5, max_reconnect_attempts=3,
                            inbox_prefix=args.inbox_prefix)
    failed = False
    try:
        try:
            reply = await candles(nc, args.exchange, args.symbol, args.interval, args.limit)
            show(args.json, "candles", reply)
        except CandlepipeError as e:
            failed = True
            show(args.json, "candles", {"error": {"code": e.code, "message": e.message}})
        if args.analyze:
            try:
                reply = await analyze(nc, args.exchange, args.analyze, args.interval)
                show(args.json, "analysis", reply)
            except CandlepipeError as e:
                failed = True
                show(args.json, "analysis", {"error": {"code": e.code, "message": e.message}})
    finally:
        await nc.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
