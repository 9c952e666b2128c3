"""An exchange no one on the team wrote the server of: Binance's klines and exchangeInfo
(TEST0USDT..TEST1999USDT) from aiohttp, a fixed latency per request, headers and body
written apart as aiohttp does. For `scripts/bench_cold.sh`, so cold misses are judged on a
server other than `candlepipe sim`.

    python3 scripts/independent_exchange.py PORT [LATENCY_S, default 0.02]
"""
import asyncio, json, sys, time
from aiohttp import web

LAT = float(sys.argv[2]) if len(sys.argv) > 2 else 0.02
SYMS = [f"TEST{i}USDT" for i in range(2000)]

async def info(req):
    await asyncio.sleep(LAT)
    body = {"timezone": "UTC", "serverTime": int(time.time()*1000), "rateLimits": [], "exchangeFilters": [],
            "symbols": [{"symbol": s, "status": "TRADING", "baseAsset": s[:-4], "quoteAsset": "USDT", "filters": []} for s in SYMS]}
    return web.json_response(body)

STEP = {"1m": 60000, "3m": 180000, "5m": 300000, "15m": 900000, "1h": 3600000}

async def klines(req):
    await asyncio.sleep(LAT)
    q = req.query
    step = STEP[q["interval"]]
    limit = int(q.get("limit", 500))
    now = int(time.time()*1000)
    end = int(q["endTime"]) if "endTime" in q else now
    start = int(q["startTime"]) if "startTime" in q else None
    last = min(end, now) // step * step
    if start is not None:
        first = (start + step - 1) // step * step
        opens = list(range(first, last + 1, step))[:limit]
    else:
        opens = list(range(last - (limit - 1) * step, last + 1, step))
    rows = []
    for t in opens:
        p = 100 + (t // step) % 50
        rows.append([t, f"{p}.10000000", f"{p+1}.00000000", f"{p-1}.00000000", f"{p}.50000000", "12.34500000",
                     t + step - 1, "1234.50000000", 42, "6.00000000", "600.00000000", "0"])
    return web.Response(text=json.dumps(rows, separators=(",", ":")), content_type="application/json")

app = web.Application()
app.router.add_get("/api/v3/exchangeInfo", info)
app.router.add_get("/api/v3/klines", klines)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
