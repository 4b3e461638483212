"""The gateway-facing API (EBOX-PROTOCOL §1) and the service's health and metrics routes."""

from __future__ import annotations

import hmac
import logging

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapters.kartpooshe.ebox.context import ebox
from adapters.kartpooshe.ebox.deposit import read_deposit, valid_letter_id
from adapters.kartpooshe.ebox.errors import EboxProblem
from adapters.kartpooshe.ebox.metrics import DEPOSITS, REGISTRY
from adapters.kartpooshe.ebox.outbox import iso

log = logging.getLogger(__name__)


def _check_bearer(request: web.Request) -> None:
    expected = ebox(request).config.gateway_to_ebox_token
    given = request.headers.get("Authorization", "")
    # Constant-time comparison (protocol "Authentication"), over bytes of any length.
    if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
        raise EboxProblem("unauthorised")


def _json(data: object, status: int) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def put_letter(request: web.Request) -> web.Response:
    """PUT /api/v1/letters/{letter_id}: deposit a letter, idempotent by letter_id."""
    try:
        _check_bearer(request)
        letter_id = request.match_info["letter_id"]
        if not valid_letter_id(letter_id):
            raise EboxProblem("invalid_letter", "letter_id must be 1..100 of A-Z a-z 0-9 . _ -")
        cfg = ebox(request).config
        letter = await read_deposit(request, letter_id, cfg.max_deposit_bytes, cfg.max_attachments)
        result = await ebox(request).store.letters.deposit(letter)
    except EboxProblem as exc:
        DEPOSITS.labels(exc.code).inc()
        raise
    if not result.created and result.content_sha256 != letter.content_sha256:
        DEPOSITS.labels("conflict").inc()
        raise EboxProblem("letter_conflict", "same letter_id, different content_sha256")
    DEPOSITS.labels("created" if result.created else "repeated").inc()
    if result.created:
        log.info("letter %s deposited (%d attachments)", letter_id, len(letter.attachments))
    body = {"letter_id": letter_id, "deposited_at": iso(result.deposited_at)}
    return _json(body, 201 if result.created else 200)


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process serves HTTP."""
    return _json({"status": "ok"}, 200)


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: the e-box database answers."""
    try:
        ok = await ebox(request).store.ping()
    except Exception as exc:
        log.warning("readiness check failed: %s", type(exc).__name__)
        ok = False
    return _json({"status": "ready" if ok else "unavailable"}, 200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: the e-box's own Prometheus registry."""
    resp = web.Response(body=generate_latest(REGISTRY))
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def register(app: web.Application) -> None:
    app.router.add_put("/api/v1/letters/{letter_id}", put_letter)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
