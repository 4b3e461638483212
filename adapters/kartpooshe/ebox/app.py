"""The e-box's aiohttp application: gateway API, citizen inbox, health and metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from adapters.kartpooshe.ebox import api
from adapters.kartpooshe.ebox.config import EboxConfig
from adapters.kartpooshe.ebox.context import EBOX, Ebox
from adapters.kartpooshe.ebox.errors import EboxProblem
from adapters.kartpooshe.ebox.gateway_client import GatewayClient
from adapters.kartpooshe.ebox.metrics import HTTP_REQUESTS
from adapters.kartpooshe.ebox.outbox import EventOutbox
from adapters.kartpooshe.ebox.store import EboxStore
from adapters.kartpooshe.ebox.web import delegation, inbox, login
from adapters.kartpooshe.ebox.web.security import PageError, error_page, harden
from gateway.api.http import periodic

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API errors leave as problem+json, page errors as Persian pages; all counted by route."""
    is_api = request.path.startswith("/api/")
    try:
        resp = await handler(request)
    except EboxProblem as exc:
        resp = exc.response(request.path)
    except PageError as exc:
        resp = error_page(exc)
    except web.HTTPException as exc:
        if exc.status in (404, 405) and is_api:
            resp = EboxProblem("not_found" if exc.status == 404 else "method_not_allowed").response(
                request.path
            )
        elif exc.status == 404:
            resp = error_page(PageError(404, "چنین صفحه‌ای نیست.", "No such page."))
        elif exc.status == 413:
            resp = (
                EboxProblem("too_large").response(request.path)
                if is_api
                else error_page(PageError(413, "فایل بیش از حد بزرگ است.", "Too large."))
            )
        else:
            resp = exc
    except Exception:
        log.exception("unhandled error on %s %s", request.method, _route(request))
        resp = (
            EboxProblem("internal_error").response(request.path)
            if is_api
            else error_page(PageError(500, "خطای داخلی؛ دوباره تلاش کنید.", "Internal error."))
        )
    if not is_api:
        harden(resp)
    HTTP_REQUESTS.labels(_route(request), request.method, str(resp.status)).inc()
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


def build_app(ctx: Ebox) -> web.Application:
    # Form posts carry one reply attachment at most; deposits are streamed (not bound by this).
    max_form = ctx.config.reply_max_attachment_bytes + ctx.config.reply_max_chars * 4 + 65536
    app = web.Application(middlewares=[errors_middleware], client_max_size=max_form)
    app[EBOX] = ctx
    api.register(app)
    login.register(app)
    inbox.register(app)
    delegation.register(app)

    async def background(_: web.Application) -> AsyncIterator[None]:
        await ctx.gateway.start()
        try:
            async with (
                ctx.outbox.running(),
                periodic(300, lambda: ctx.store.logins.purge(ctx.clock()), "session purge"),
            ):
                yield
        finally:
            await ctx.gateway.close()

    app.cleanup_ctx.append(background)
    return app


def build_context(cfg: EboxConfig, store: EboxStore) -> Ebox:
    client = GatewayClient(cfg.gateway_url, cfg.ebox_to_gateway_token, cfg.event_timeout_seconds)
    outbox = EventOutbox(
        store,
        client,
        retry_base_seconds=cfg.event_retry_base_seconds,
        retry_max_seconds=cfg.event_retry_max_seconds,
        poll_seconds=cfg.event_poll_seconds,
        # A claimed event returns to the queue after this if its node dies mid-try.
        lease_seconds=cfg.event_timeout_seconds * 2 + 5,
    )
    return Ebox(cfg, store, client, outbox)
