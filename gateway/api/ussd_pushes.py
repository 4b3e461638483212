"""Agency routes for network-initiated USSD pushes (``/v1/ussd/pushes``, docs/USSD.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from adapters.ussd.menus import Limits
from adapters.ussd.push import PushService, push_view
from gateway.api.http import SERVICES, agency_auth, json_response, read_raw_json, services
from gateway.errors import Problem

PUSHES = web.AppKey("ussd_pushes", PushService)
# Set when a push is stored, so this node's push worker (gateway/runtime.py) sends it at once
# instead of at its next poll.
PUSH_WAKE = web.AppKey("ussd_push_wake", asyncio.Event)


async def _ctx(app: web.Application) -> AsyncIterator[None]:
    svc = app[SERVICES]
    cfg = svc.config.ussd
    app[PUSHES] = PushService(
        svc.store, svc.sending, Limits(cfg.page_chars_ucs2, cfg.page_chars_gsm7)
    )
    yield


async def create_push(request: web.Request) -> web.Response:
    """POST /v1/ussd/pushes: store a push (USSN or USSR); 202, sent in the background."""
    principal = await agency_auth(request)
    raw, body = await read_raw_json(request)
    key = request.headers.get("Idempotency-Key")
    status, response = await request.app[PUSHES].create(principal, raw, body, key)
    request.app[PUSH_WAKE].set()
    return web.Response(body=response, status=status, content_type="application/json")


async def get_push(request: web.Request) -> web.Response:
    """GET /v1/ussd/pushes/{push_id}: status, answer and fallback; only the owner sees it."""
    principal = await agency_auth(request)
    try:
        push_id = uuid.UUID(request.match_info["push_id"])
    except ValueError:
        raise Problem("not_found", "no such push") from None
    push = await services(request).store.ussd_pushes.get(principal.agency.id, push_id)
    if push is None:
        raise Problem("not_found", "no such push")
    return json_response(push_view(push))


def register(app: web.Application) -> None:
    app[PUSH_WAKE] = asyncio.Event()
    app.router.add_post("/v1/ussd/pushes", create_push)
    app.router.add_get("/v1/ussd/pushes/{push_id}", get_push)
    app.cleanup_ctx.append(_ctx)
