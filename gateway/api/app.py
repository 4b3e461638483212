"""The aiohttp application: routes from every API module, middleware, lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from adapters.ussd import http_front as ussd_http
from gateway.api import (
    admin_agencies,
    admin_letters,
    admin_numbering,
    admin_routing,
    admin_ussd,
    batches,
    health,
    kartpooshe,
    letters,
    me,
    messages,
    openapi,
)
from gateway.api.http import BACKGROUND, DRAINING, SERVICES, periodic, problem_middleware
from gateway.services import Services

log = logging.getLogger(__name__)

_PURGE_INTERVAL = 60.0


async def _purge_seen_tokens(app: web.Application) -> AsyncIterator[None]:
    """Background: forget JWT ids once their tokens could no longer pass the iat window."""
    async with periodic(
        _PURGE_INTERVAL, app[SERVICES].auth.purge_seen_tokens, "purging seen token ids"
    ):
        yield


async def _start_draining(app: web.Application) -> None:
    # /readyz turns 503 first, so a load balancer stops sending before connections close.
    app[DRAINING][0] = True


def build_app(services: Services, *, background: bool = True) -> web.Application:
    """``background``: also run this process's share of periodic jobs (False in HTTP-only
    worker processes, gateway/workers.py)."""
    app = web.Application(
        middlewares=[problem_middleware],
        # Batches may be larger; every other route checks http.max_body_bytes itself.
        client_max_size=max(
            services.config.http.max_body_bytes, services.config.http.max_batch_bytes
        ),
    )
    app[SERVICES] = services
    app[DRAINING] = [False]
    app[BACKGROUND] = background
    for module in (
        health,
        me,
        messages,
        batches,
        letters,
        kartpooshe,
        admin_agencies,
        admin_letters,
        admin_numbering,
        admin_routing,
        admin_ussd,
        ussd_http,
        openapi,
    ):
        module.register(app)
    if background:
        app.cleanup_ctx.append(_purge_seen_tokens)
    app.on_shutdown.append(_start_draining)
    return app
