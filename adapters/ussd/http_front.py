"""The HTTP operator front: ``POST /ussd/{operator}``, the style many USSD aggregators use.

The operator posts form fields ``sessionId, serviceCode, phoneNumber, text`` where ``text`` is
every input of the dialog so far joined by ``*`` (empty on the first request); we answer
``text/plain`` starting ``CON `` (show and wait for input) or ``END `` (show and close). Callers
prove who they are with the per-operator secret of ``ussd.http_secrets`` in the
``X-Payam-Ussd-Secret`` header.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import web

from adapters.ussd.menu_files import PLATFORM, load_menu_dir, store_agency_menus
from adapters.ussd.menus import Limits
from adapters.ussd.remote import RemoteCaller
from adapters.ussd.sessions import Reply, SessionEngine, count_session
from gateway.api.http import BACKGROUND, SERVICES, periodic
from gateway.errors import Problem
from gateway.recipients import normalize_msisdn
from gateway.store import Store
from gateway.store.ussd import SessionKey

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Payam-Ussd-Secret"
ENGINE = web.AppKey("ussd_engine", SessionEngine)
_MAX_FORM_BYTES = 4096
_PURGE_INTERVAL = 60.0
_FIELD_LIMITS = {"sessionId": 128, "serviceCode": 64, "phoneNumber": 32, "text": 1024}


async def _engine_ctx(app: web.Application) -> AsyncIterator[None]:
    """The engine and its HTTP client for remote screens live as long as the app; a background
    loop forgets idle sessions."""
    svc = app[SERVICES]
    cfg = svc.config.ussd
    limits = Limits(cfg.page_chars_ucs2, cfg.page_chars_gsm7)
    # Menu files are validated before anything is served: a bad one stops the start, naming the
    # file and the screen (MenuFileError).
    files = load_menu_dir(cfg.menus_dir, limits)
    await store_agency_menus(svc.store, files)
    platform = files.get(PLATFORM)

    async def verifier(code: str, msisdn: str) -> str:
        return (await svc.verification.verify(code, msisdn)).text_fa()

    async with aiohttp.ClientSession() as client:
        engine = SessionEngine(
            svc.store,
            cfg,
            RemoteCaller(client, cfg.remote_timeout_seconds, limits),
            svc.agencies.webhook_secret,
            platform=platform.menu if platform else None,
            platform_code=svc.config.numbering.ussd_prefix + "#",
            verifier=verifier,
        )
        app[ENGINE] = engine

        async def purge() -> None:
            await purge_idle_sessions(svc.store, cfg.idle_timeout_seconds)

        if not app[BACKGROUND]:
            yield
            return
        async with periodic(_PURGE_INTERVAL, purge, "purging idle USSD sessions"):
            yield


async def purge_idle_sessions(store: Store, idle_timeout_seconds: int) -> None:
    """Forget idle dialogs, counting those the citizen left open as abandoned. Rows are kept
    twice the timeout so that a late operator retry still gets its reply."""
    before = datetime.now(UTC) - timedelta(seconds=2 * idle_timeout_seconds)
    for operator, agency_id in await store.ussd.purge_idle(before):
        count_session(operator, agency_id, "abandoned")


def _authenticate(request: web.Request, operator: str) -> None:
    secrets = request.app[SERVICES].config.ussd.http_secret_map()
    expected = secrets.get(operator)
    given = request.headers.get(SECRET_HEADER, "")
    # Unknown operator and wrong secret look the same from outside.
    if expected is None or not hmac.compare_digest(expected.encode(), given.encode()):
        log.warning("ussd request refused for operator %r", operator[:32])
        raise Problem("ussd_unauthorised", f"{SECRET_HEADER} does not match")


def render(reply: Reply) -> web.Response:
    prefix = "END " if reply.end else "CON "
    return web.Response(text=prefix + reply.text, content_type="text/plain", charset="utf-8")


async def ussd_request(request: web.Request) -> web.Response:
    """POST /ussd/{operator}: one step of a dialog."""
    operator = request.match_info["operator"]
    _authenticate(request, operator)
    if (request.content_length or 0) > _MAX_FORM_BYTES:
        raise Problem("body_too_large", f"at most {_MAX_FORM_BYTES} bytes")
    if request.content_type != "application/x-www-form-urlencoded":
        raise Problem("unsupported_media_type", "send application/x-www-form-urlencoded")
    form = await request.post()
    values: dict[str, str] = {}
    for name, limit in _FIELD_LIMITS.items():
        raw = form.get(name)
        if raw is None and name != "text":
            raise Problem("missing_field", name)
        value = raw if isinstance(raw, str) else ""
        if len(value) > limit:
            raise Problem("invalid_value", f"{name}: at most {limit} characters")
        values[name] = value.strip()
    msisdn = normalize_msisdn(values["phoneNumber"]) or values["phoneNumber"]
    if not values["sessionId"] or not msisdn:
        raise Problem("invalid_value", "sessionId and phoneNumber must not be empty")
    text = values["text"]
    history = tuple(text.split("*")) if text else ()
    key = SessionKey(operator, msisdn, values["sessionId"])
    reply = await request.app[ENGINE].handle(key, values["serviceCode"], history)
    return render(reply)


def register(app: web.Application) -> None:
    app.router.add_post("/ussd/{operator}", ussd_request)
    app.cleanup_ctx.append(_engine_ctx)
