"""Harness for the reference e-box: its own real database, the service on a real loopback port,
and a stand-in gateway (a real aiohttp server) that records what the e-box sends it."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web

from adapters.kartpooshe.ebox.app import build_app, build_context
from adapters.kartpooshe.ebox.config import EboxConfig, load_ebox_config
from adapters.kartpooshe.ebox.context import Ebox
from adapters.kartpooshe.ebox.store import EboxStore
from adapters.kartpooshe.ebox.store.migrate import migrate
from gateway.identity import national_code_check_digit

G2E = "gateway-to-ebox-" + "g" * 32
E2G = "ebox-to-gateway-" + "e" * 32
_TABLES = (
    "boxes, letters, attachments, replies, events, attorneys, representatives, "
    "login_codes, sessions"
)


def national_code(n: int) -> str:
    first9 = f"{n:09d}"
    return first9 + national_code_check_digit(first9)


@pytest.fixture(scope="session")
def ebox_database_url(admin_url: str) -> Iterator[str]:
    name = f"payam_ebox_test_{secrets.token_hex(4)}"
    base = admin_url.rpartition("/")[0]

    async def create() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        conn = await asyncpg.connect(f"{base}/{name}")
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    yield f"{base}/{name}"
    asyncio.run(drop())


@dataclass
class StandInGateway:
    """Records OTP requests and events; ``fail_events`` first event POSTs answer 503."""

    fail_events: int = 0
    # When set, every event POST gets this status (a final refusal such as 422).
    refuse_with: int = 0
    # National codes the stand-in's "directory" has no number for (OTP answers 404).
    unknown: set[str] = field(default_factory=set)
    otps: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    event_posts: int = 0
    unauthorised: int = 0
    url: str = ""

    def app(self) -> web.Application:
        async def check(request: web.Request) -> dict[str, Any] | None:
            if request.headers.get("Authorization") != f"Bearer {E2G}":
                self.unauthorised += 1
                return None
            body: dict[str, Any] = orjson.loads(await request.read())
            return body

        async def otp(request: web.Request) -> web.Response:
            body = await check(request)
            if body is None:
                return web.Response(status=401)
            if body["national_code"] in self.unknown:
                return web.json_response({"code": "unknown_citizen"}, status=404)
            self.otps.append(body)
            return web.json_response({"status": "sent"}, status=202)

        async def events(request: web.Request) -> web.Response:
            self.event_posts += 1
            body = await check(request)
            if body is None:
                return web.Response(status=401)
            if self.refuse_with:
                return web.Response(status=self.refuse_with)
            if self.fail_events > 0:
                self.fail_events -= 1
                return web.Response(status=503)
            if all(e["event_id"] != body["event_id"] for e in self.events):
                self.events.append(body)
            return web.Response(status=204)

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/kartpooshe/v1/otp", otp)
        app.router.add_post("/kartpooshe/v1/events", events)
        return app

    def last_code(self, national_code: str) -> str:
        codes = [o["code"] for o in self.otps if o["national_code"] == national_code]
        assert codes, "the e-box asked for no code for this national code"
        return str(codes[-1])

    async def wait_events(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.events) < n:
            assert asyncio.get_running_loop().time() < deadline, f"events: {self.events}"
            await asyncio.sleep(0.05)
        return self.events


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def gateway_standin() -> AsyncIterator[StandInGateway]:
    stand_in = StandInGateway()
    runner, stand_in.url = await _serve(stand_in.app())
    yield stand_in
    await runner.cleanup()


@dataclass
class RunningEbox:
    url: str
    ctx: Ebox

    @property
    def store(self) -> EboxStore:
        return self.ctx.store


def ebox_config(database_url: str, gateway_url: str, **extra: str) -> EboxConfig:
    env = {
        "PAYAM_EBOX_DATABASE_URL": database_url,
        "PAYAM_EBOX_GATEWAY_URL": gateway_url,
        "PAYAM_EBOX_GATEWAY_TO_EBOX_TOKEN": G2E,
        "PAYAM_EBOX_EBOX_TO_GATEWAY_TOKEN": E2G,
        "PAYAM_EBOX_EVENT_RETRY_BASE_SECONDS": "0.2",
        "PAYAM_EBOX_EVENT_POLL_SECONDS": "0.1",
        **extra,
    }
    return load_ebox_config(None, env=env)


@pytest.fixture
async def ebox_pool(ebox_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(ebox_database_url, min_size=1, max_size=8)
    assert pool is not None
    await pool.execute(f"TRUNCATE {_TABLES} CASCADE")
    yield pool
    await pool.close()


@pytest.fixture
async def ebox(
    ebox_pool: asyncpg.Pool, ebox_database_url: str, gateway_standin: StandInGateway
) -> AsyncIterator[RunningEbox]:
    cfg = ebox_config(ebox_database_url, gateway_standin.url, PAYAM_EBOX_OTP_RESEND_SECONDS="0")
    ctx = build_context(cfg, EboxStore(ebox_pool))
    runner, url = await _serve(build_app(ctx))
    yield RunningEbox(url, ctx)
    await runner.cleanup()


def letter_metadata(
    recipient_id: str,
    *,
    kind: str = "person",
    attachments: list[tuple[str, str, bytes]] | None = None,
    **over: Any,
) -> dict[str, Any]:
    atts = attachments or []
    meta: dict[str, Any] = {
        "letter_id": str(uuid.uuid4()),
        "tracking_number": "1405-0912-" + str(secrets.randbelow(10**6)).zfill(6),
        "recipient": {"kind": kind, "id": recipient_id},
        "agency": {
            "id": str(uuid.uuid4()),
            "name_fa": "سازمان امور مالیاتی",
            "name_en": "Iranian National Tax Administration",
        },
        "subject": "ابلاغ برگ تشخیص مالیات",
        "body": "شهروند گرامی،\nبرگ تشخیص مالیات عملکرد سال ۱۴۰۴ پیوست است.",
        "reply_allowed": True,
        "accepted_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "content_sha256": hashlib.sha256(secrets.token_bytes(16)).hexdigest(),
        "attachments": [
            {
                "name": name,
                "content_type": ctype,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            for name, ctype, data in atts
        ],
    }
    meta.update(over)
    return meta


async def deposit(
    base_url: str,
    meta: dict[str, Any],
    files: list[tuple[str, str, bytes]] | None = None,
    *,
    token: str = G2E,
    letter_id: str | None = None,
) -> tuple[int, dict[str, Any]]:
    with aiohttp.MultipartWriter("form-data") as mp:
        part = mp.append(orjson.dumps(meta), {"Content-Type": "application/json"})
        part.set_content_disposition("form-data", name="metadata")
        for name, ctype, data in files or []:
            p = mp.append(data, {"Content-Type": ctype})
            p.set_content_disposition("form-data", name="attachment", filename=name)
    url = f"{base_url}/api/v1/letters/{letter_id or meta['letter_id']}"
    async with (
        aiohttp.ClientSession() as s,
        s.put(url, data=mp, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "no CSRF field on the page"
    return m.group(1)


async def http_login(
    session: aiohttp.ClientSession, base: str, code: str, gateway: StandInGateway
) -> str:
    """Log in through the real forms; returns the session's CSRF token."""
    async with session.get(f"{base}/login") as resp:
        token = csrf_of(await resp.text())
    async with session.post(
        f"{base}/login", data={"csrf": token, "national_code": code}, allow_redirects=False
    ) as resp:
        assert resp.status == 303, await resp.text()
    async with session.post(
        f"{base}/login/code",
        data={"csrf": token, "code": gateway.last_code(code)},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303, await resp.text()
    async with session.get(f"{base}/box/{code}") as resp:
        assert resp.status == 200
        return csrf_of(await resp.text())


def browser_session() -> aiohttp.ClientSession:
    # unsafe=True: the cookie jar must keep cookies for an IP address host (127.0.0.1).
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
