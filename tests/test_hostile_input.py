"""Hostile input at the HTTP edge (issue 9, item 5): each case here was a 500 or an unbounded
wait before its fix, or is a limit that must hold (oversized and deeply nested bodies, slow
clients). The schemathesis run (tests/test_api_fuzz.py) found the first four."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import asyncpg

from gateway.services import Services
from tests.conftest import auth
from tests.gateway_process import GatewayProcess, free_port, gateway_env
from tests.reliability_setup import make_tenant
from tests.test_messages_api import _agency


async def test_empty_recipient_is_422_not_500(services: Services, client: Any) -> None:
    a = await _agency(services, client)
    status, body = await a.send({"to": "", "text": "x"})
    assert (status, body["code"]) == (422, "invalid_value")


async def test_nul_in_json_string_is_422_not_500(services: Services, client: Any) -> None:
    a = await _agency(services, client)
    status, body = await a.send({"to": "+989121234567", "text": "a\u0000b"})
    assert (status, body["code"]) == (422, "invalid_value")
    resp = await client.post(
        "/v1/messages",
        data=b'{"to": "+989121234567", "text": "ok", "client_ref": "\\u0000"}',
        headers={**a.headers(), "Content-Type": "application/json"},
    )
    assert resp.status == 422
    # A literal backslash-u in text is not a NUL and is accepted.
    assert (await a.send({"to": "+989121234567", "text": "see \\u0000 docs"}))[0] == 202


async def test_nul_in_query_is_400_not_500(client: Any, admin_token: str) -> None:
    resp = await client.get("/admin/v1/numbers/history?value=%00", headers=auth(admin_token))
    assert resp.status == 400
    assert (await resp.json(content_type=None))["code"] == "invalid_parameter"


async def test_malformed_csv_batch_is_422_not_500(services: Services, client: Any) -> None:
    a = await _agency(services, client)
    for csv_body in (
        "to,n\n+989121234567," + "x" * 200_000 + "\n",  # longer than the csv field limit
        "to,n\n+989121234567,a\x00b\n",
        '"to,n\n+989121234567,1\n',  # an unclosed quote
    ):
        resp = await client.post(
            "/v1/batches?template=hi%20{n}",
            data=csv_body.encode(),
            headers={**a.headers(), "Content-Type": "text/csv"},
        )
        assert resp.status in (400, 422), (resp.status, csv_body[:30])


async def test_oversized_and_deeply_nested_bodies(services: Services, client: Any) -> None:
    a = await _agency(services, client)
    limit = services.config.http.max_body_bytes
    big = io.BytesIO(b'{"to": "+989121234567", "text": "' + b"x" * (limit + 10) + b'"}')
    resp = await client.post(
        "/v1/messages", data=big, headers={**a.headers(), "Content-Type": "application/json"}
    )
    assert resp.status == 413
    assert (await resp.json(content_type=None))["code"] == "body_too_large"
    nested = b"[" * 100_000 + b"]" * 100_000  # 200 kB, under the size limit
    resp = await client.post(
        "/v1/messages", data=nested, headers={**a.headers(), "Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json(content_type=None))["code"] == "malformed_json"
    assert (await a.send({"to": "+989121234567", "text": "still fine"}))[0] == 202


async def test_slow_clients_are_cut_off(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """Slowloris: a request head dribbled out, or a body that never completes, must not hold a
    connection or a handler beyond http.client_timeout_seconds."""
    key_file = tmp_path / "master.key"
    tenant = await make_tenant(pool, database_url, key_file)
    env = gateway_env(
        database_url, str(key_file), free_port(), [], PAYAM_HTTP_CLIENT_TIMEOUT_SECONDS="2"
    )
    gw = GatewayProcess(env, tmp_path / "gateway.log")
    gw.start()
    try:
        await gw.wait_ready()
        # 1. A head that never ends.
        reader, writer = await asyncio.open_connection(gw.host, gw.port)
        writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        started = time.monotonic()
        async with asyncio.timeout(40):
            await reader.read()  # EOF when the server closes
        head_cut = time.monotonic() - started
        # aiohttp's keep-alive timer (2 s here); it took 12-13 s until gateway/server.py cut
        # aiohttp's 10 s lingering_time after an unfinished request.
        assert head_cut < 10, head_cut
        writer.close()
        # 2. A body that stops short of its Content-Length.
        reader, writer = await asyncio.open_connection(gw.host, gw.port)
        head = (
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: {tenant.headers()['Authorization']}\r\nContent-Length: 100\r\n\r\n"
        )
        writer.write(head.encode() + b'{"to": "+98')  # 11 of 100 bytes
        await writer.drain()
        started = time.monotonic()
        async with asyncio.timeout(15):
            answer = await reader.readuntil(b"\r\n\r\n")
        body_cut = time.monotonic() - started
        async with asyncio.timeout(15):
            answer += await reader.read()
        assert body_cut < 10, body_cut
        print(
            f"\nRELIABILITY slow-clients: head cut after {head_cut:.1f} s, body 408 after "
            f"{body_cut:.1f} s (client_timeout_seconds=2)"
        )
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request_timeout" in answer
        writer.close()
    finally:
        gw.stop()
