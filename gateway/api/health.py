"""Liveness, readiness and metrics: ``GET /healthz``, ``GET /readyz``, ``GET /metrics``."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.api.http import DRAINING, json_response, services
from gateway.metrics import scrape

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process is alive and serving HTTP."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: the database answers and the node is not draining for shutdown."""
    if request.app[DRAINING][0]:
        return json_response({"status": "draining"}, status=503)
    try:
        ok = await asyncio.wait_for(services(request).store.ping(), timeout=2.0)
    except Exception as exc:  # any failure means "not ready"; the reason is logged, not shown
        log.warning("readiness check failed: %s", type(exc).__name__)
        ok = False
    if not ok:
        return json_response({"status": "unavailable", "database": "down"}, status=503)
    return json_response({"status": "ready", "database": "up"})


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text exposition."""
    body = scrape()
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def register(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
