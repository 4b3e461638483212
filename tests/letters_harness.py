"""Shared pieces of the letter tests: config with an evidence key, agencies that send letters
as multipart, sample PDF/PNG bytes, and a small e-box peer on real HTTP (the protocol's deposit
endpoint, minimally; it sends events back to the gateway over real HTTP)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.letters.evidence import write_new_evidence_key
from tests.conftest import agency_jwt

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
EXE = b"MZ\x90\x00" + b"\x00" * 64
PERSON = "0076229645"
COMPANY = "10380284790"
GW_TO_EBOX = "gw-to-ebox-token-0123456789abcdef"
EBOX_TO_GW = "ebox-to-gw-token-0123456789abcdef"


def letters_env(tmp_path: Path, base: dict[str, str], **extra: str) -> dict[str, str]:
    key = tmp_path / "evidence.key"
    write_new_evidence_key(key)
    return {
        **base,
        "PAYAM_KARTPOOSHE_EVIDENCE_KEY_FILE": str(key),
        "PAYAM_KARTPOOSHE_GATEWAY_TO_EBOX_TOKEN": GW_TO_EBOX,
        "PAYAM_KARTPOOSHE_EBOX_TO_GATEWAY_TOKEN": EBOX_TO_GW,
        "PAYAM_KARTPOOSHE_MAIL_DOMAIN": "ebox.test.ir",
        "PAYAM_KARTPOOSHE_RETRY_BASE_SECONDS": "0.05",
        "PAYAM_KARTPOOSHE_RETRY_MAX_SECONDS": "0.2",
        "PAYAM_KARTPOOSHE_MAX_ATTACHMENT_BYTES": "4096",
        "PAYAM_KARTPOOSHE_MAX_TOTAL_BYTES": "8192",
        **extra,
    }


def letter_form(
    metadata: dict[str, Any], files: list[tuple[str, str, bytes]] | None = None
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(
        "metadata", json.dumps(metadata, ensure_ascii=False), content_type="application/json"
    )
    for name, ctype, data in files or []:
        form.add_field("attachment", data, filename=name, content_type=ctype)
    return form


def metadata(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "recipient": {"kind": "person", "id": PERSON},
        "subject": "ابلاغ برگ تشخیص مالیات",
        "body": "برگ تشخیص مالیات عملکرد ۱۴۰۴ پیوست است.",
        "reply_allowed": True,
    }
    body.update(overrides)
    return body


class LetterAgency:
    def __init__(self, client: Any, agency_id: uuid.UUID, key: Any) -> None:
        self.client, self.id, self.key = client, agency_id, key

    def headers(self, **extra: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {agency_jwt(self.key.key.key_id, self.key.secret)}",
            **extra,
        }

    async def send(
        self,
        meta: dict[str, Any],
        files: list[tuple[str, str, bytes]] | None = None,
        **headers: str,
    ) -> tuple[int, dict[str, Any]]:
        resp = await self.client.post(
            "/v1/letters", data=letter_form(meta, files), headers=self.headers(**headers)
        )
        return resp.status, await resp.json(content_type=None)

    async def get(self, path: str) -> tuple[int, Any]:
        resp = await self.client.get(path, headers=self.headers())
        return resp.status, await resp.json(content_type=None)


@dataclass
class EboxPeer:
    """The e-box side of docs/KARTPOOSHE_PROTOCOL.md §1, minimally, on a real port; and a
    sender of §2 events to the gateway."""

    gateway_url: str = ""
    # Answer the next N deposits with this status first (to prove retries and final states).
    fail_next: list[int] = field(default_factory=list)
    deposits: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    calls: int = 0
    auth_seen: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_put("/api/v1/letters/{letter_id}", self._deposit)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _deposit(self, request: web.Request) -> web.Response:
        self.calls += 1
        self.auth_seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != f"Bearer {GW_TO_EBOX}":
            return web.json_response({"code": "unauthorised"}, status=401)
        if self.fail_next:
            status = self.fail_next.pop(0)
            return web.json_response({"code": "test_failure"}, status=status)
        letter_id = request.match_info["letter_id"]
        reader = await request.multipart()
        meta: dict[str, Any] | None = None
        files: list[tuple[str, bytes]] = []
        while (part := await reader.next()) is not None:
            assert isinstance(part, aiohttp.BodyPartReader)
            if part.name == "metadata":
                meta = json.loads(await part.read())
            elif part.name == "attachment":
                files.append((part.filename or "", bytes(await part.read())))
        assert meta is not None
        if [hashlib.sha256(d).hexdigest() for _, d in files] != [
            a["sha256"] for a in meta["attachments"]
        ]:
            return web.json_response({"code": "invalid_letter"}, status=422)
        old = self.deposits.get(letter_id)
        if old is not None:
            if old["content_sha256"] != meta["content_sha256"]:
                return web.json_response({"code": "letter_conflict"}, status=409)
            return web.json_response(
                {"letter_id": letter_id, "deposited_at": old["deposited_at"]}, status=200
            )
        meta["deposited_at"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.deposits[letter_id] = meta
        self.files[letter_id] = files
        return web.json_response(
            {"letter_id": letter_id, "deposited_at": meta["deposited_at"]}, status=201
        )

    async def send_event(self, event: dict[str, Any], token: str = EBOX_TO_GW) -> int:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{self.gateway_url}/kartpooshe/v1/events",
                json=event,
                headers={"Authorization": f"Bearer {token}"},
            ) as resp,
        ):
            return resp.status

    async def ask_otp(
        self, national_code: str, code: str, token: str = EBOX_TO_GW
    ) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{self.gateway_url}/kartpooshe/v1/otp",
                json={"national_code": national_code, "code": code},
                headers={"Authorization": f"Bearer {token}"},
            ) as resp,
        ):
            return resp.status, await resp.json(content_type=None)


def ensure_swaks_with_tls() -> str:
    """swaks and the Perl TLS module it needs for --tls (Debian's swaks only suggests it)."""
    import fcntl
    import os
    import subprocess

    from tests.debian import _LOCK, ensure_debian_package

    swaks = ensure_debian_package("swaks")
    probe = ["perl", "-MNet::SSLeay", "-e", "1"]
    if subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return swaks
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(
                [
                    "apt-get",
                    "install",
                    "-y",
                    "-qq",
                    "--no-install-recommends",
                    "libnet-ssleay-perl",
                ],
                check=True,
                env=env,
            )
    return swaks
