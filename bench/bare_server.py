"""Baseline for benchmark (a): the cheapest aiohttp JSON handler that reads a body, parses it
and answers 202 — what an HTTP accept path costs before any work is done."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

import orjson
import uvloop
from aiohttp import web


async def handler(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    return web.Response(
        body=orjson.dumps({"id": "x", "status": "queued", "to": body.get("to")}),
        status=202,
        content_type="application/json",
    )


def main() -> None:
    # ``bare_server.py PORT [PROCESSES]``: as many processes on the port (SO_REUSEPORT) as the
    # gateway runs with http.workers, so that both sides of benchmark (a) have the same shape.
    processes = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    for _ in range(processes - 1):
        if os.fork() == 0:
            # Linux prctl(PR_SET_PDEATHSIG): stop with the parent the benchmark stops.
            ctypes.CDLL(None).prctl(1, signal.SIGTERM)
            break
    uvloop.install()  # the same event loop as the gateway, so the comparison is fair
    app = web.Application()
    app.router.add_post("/v1/messages", handler)
    app.router.add_get("/healthz", lambda r: web.json_response({"status": "ok"}))
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
        reuse_port=processes > 1,
    )


if __name__ == "__main__":
    main()
