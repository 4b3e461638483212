"""``payam app-sim``: a small app provider, so tests and the demo exercise the app channel.

It plays a provider such as Dowlat Hamrah: receives the gateway's signed pushes on ``POST
/push`` (checks ``Payam-Signature`` with the push secret), acknowledges them, or fails on
demand; and calls the gateway's provider API with its own JWT (register and sign out citizens,
pull the inbox, mark read, reply). Everything is driven over an HTTP control endpoint on the
same port, like the SMSC simulator's (adapters/sms/simulator.py):

| route | what |
|---|---|
| ``GET /control/pushes`` | the pushes received (newest last) |
| ``POST /control/mode {"mode": …}`` | how pushes are answered (``MODES`` below) |
| ``POST /control/register {"national_code", "citizen_ref"?}`` | sign a citizen in |
| ``POST /control/sign-out {"national_code"}`` | sign them out |
| ``POST /control/inbox {"national_code", "cursor"?, "limit"?}`` | the gateway's answer |
| ``POST /control/read {"national_code", "id"}`` | the read receipt |
| ``POST /control/reply {"national_code", "in_reply_to", "text"}`` | a reply |
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import orjson
from aiohttp import web

from gateway.callbacks import SIGNATURE_HEADER, verify

log = logging.getLogger(__name__)

# ack: 200 (confirmed at once); accept: 202, then the delivery receipt a moment later;
# accept_only: 202 and never a receipt; fail: 503; hang: no answer.
MODES = ("ack", "accept", "accept_only", "fail", "hang")


@dataclass
class AppSimSettings:
    gateway_url: str
    key_id: str
    key_secret: str
    push_secret: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    mode: str = "ack"


@dataclass
class AppSimulator:
    settings: AppSimSettings
    pushes: list[dict[str, Any]] = field(default_factory=list)
    refused_signatures: int = 0

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = self.settings.port
        self.pushed = asyncio.Event()
        # citizen_ref → national code of the citizens this simulator signed in (a real app
        # knows its own users; the gateway's push names only the ref).
        self.codes: dict[str, str] = {}
        self._acks: set[asyncio.Task[Any]] = set()

    @property
    def push_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}/push"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/push", self._push)
        app.router.add_get("/control/pushes", self._http_pushes)
        app.router.add_post("/control/mode", self._http_mode)
        for name in ("register", "sign-out", "inbox", "read", "reply"):
            app.router.add_post(f"/control/{name}", self._http_call)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        for task in self._acks:
            task.cancel()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- pushes from the gateway --------------------------------------------------------------
    async def _push(self, request: web.Request) -> web.Response:
        body = await request.read()
        secret = self.settings.push_secret
        if secret and not verify(secret, body, request.headers.get(SIGNATURE_HEADER, "")):
            self.refused_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        if self.settings.mode == "hang":
            await asyncio.sleep(3600)
        if self.settings.mode == "fail":
            return web.json_response({"error": "down for maintenance"}, status=503)
        notice = orjson.loads(body)
        if not any(p["id"] == notice["id"] for p in self.pushes):
            self.pushes.append(notice)
        self.pushed.set()
        if self.settings.mode in ("accept", "accept_only"):
            if self.settings.mode == "accept":
                task = asyncio.create_task(self._ack_later(notice))
                self._acks.add(task)
                task.add_done_callback(self._acks.discard)
            return web.json_response({"status": "accepted"}, status=202)
        return web.json_response({"status": "delivered"})

    async def _ack_later(self, notice: dict[str, Any]) -> None:
        """The app on the phone got the notice: the delivery receipt."""
        await asyncio.sleep(0.1)
        code = self.codes.get(str(notice.get("citizen_ref")), "")
        status, _ = await self.delivered(code, str(notice["id"]))
        log.info("delivery receipt for a notice: HTTP %d", status)

    async def _http_pushes(self, request: web.Request) -> web.Response:
        return web.json_response(self.pushes)

    async def _http_mode(self, request: web.Request) -> web.Response:
        data = await request.json()
        mode = data.get("mode") if isinstance(data, dict) else None
        if mode not in MODES:
            raise web.HTTPBadRequest(text=f"mode must be one of {', '.join(MODES)}")
        self.settings.mode = mode
        return web.json_response({"mode": mode})

    async def _http_call(self, request: web.Request) -> web.Response:
        data = await request.json()
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        action = request.path.rsplit("/", 1)[1]
        try:
            if action == "read":
                status, answer = await self.read(data.pop("national_code", ""), data.get("id", ""))
            elif action == "register":
                status, answer = await self.register(
                    data["national_code"], data.get("citizen_ref", "")
                )
            else:
                status, answer = await self.call(_PATHS[action], data)
        except KeyError as exc:
            raise web.HTTPBadRequest(text=f"missing {exc}") from None
        return web.json_response(answer, status=status)

    # -- calls to the gateway ------------------------------------------------------------------
    def token(self) -> str:
        claims = {
            "iss": self.settings.key_id,
            "iat": int(time.time()),
            "jti": secrets.token_hex(16),
        }
        return jwt.encode(claims, self.settings.key_secret, algorithm="HS256")

    async def call(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        assert self._session is not None
        url = self.settings.gateway_url.rstrip("/") + path
        headers = {"Authorization": f"Bearer {self.token()}"}
        async with self._session.post(url, json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def register(self, national_code: str, citizen_ref: str = "") -> tuple[int, Any]:
        ref = citizen_ref or f"acct-{secrets.token_hex(6)}"
        self.codes[ref] = national_code
        return await self.call(
            "/app/v1/registrations", {"national_code": national_code, "citizen_ref": ref}
        )

    async def sign_out(self, national_code: str) -> tuple[int, Any]:
        return await self.call("/app/v1/registrations/sign-out", {"national_code": national_code})

    async def inbox(self, national_code: str, **page: Any) -> tuple[int, Any]:
        return await self.call("/app/v1/inbox", {"national_code": national_code, **page})

    async def delivered(self, national_code: str, message_id: str) -> tuple[int, Any]:
        return await self.call(
            f"/app/v1/notices/{message_id}/delivered", {"national_code": national_code}
        )

    async def read(self, national_code: str, message_id: str) -> tuple[int, Any]:
        return await self.call(
            f"/app/v1/notices/{message_id}/read", {"national_code": national_code}
        )

    async def reply(self, national_code: str, in_reply_to: str, text: str) -> tuple[int, Any]:
        return await self.call(
            "/app/v1/replies",
            {"national_code": national_code, "in_reply_to": in_reply_to, "text": text},
        )


_PATHS = {
    "register": "/app/v1/registrations",
    "sign-out": "/app/v1/registrations/sign-out",
    "inbox": "/app/v1/inbox",
    "reply": "/app/v1/replies",
}


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="payam app-sim", description="app provider simulator")
    add = p.add_argument
    add("--gateway", default="http://127.0.0.1:8040", help="the gateway's base URL")
    add("--key-id", required=True, help="the provider's app_… key id")
    add("--secret", required=True, help="that key's secret")
    add("--push-secret", default="", help="the provider's push secret (checks signatures)")
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8050, help="push and control port")
    add("--mode", choices=MODES, default="ack")
    add("--log-level", default="INFO")
    return p


async def run_forever(settings: AppSimSettings) -> None:
    sim = AppSimulator(settings)
    await sim.start()
    log.info("app provider simulator on %s (control: /control/...)", sim.push_url)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    ns = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=ns.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    settings = AppSimSettings(
        gateway_url=ns.gateway,
        key_id=ns.key_id,
        key_secret=ns.secret,
        push_secret=ns.push_secret,
        host=ns.host,
        port=ns.port,
        mode=ns.mode,
    )
    asyncio.run(run_forever(settings))
    return 0
