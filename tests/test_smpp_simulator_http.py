"""The SMSC simulator's HTTP control endpoint, with a real SMPP client bound over TCP."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.sms import errors
from adapters.sms.esme import BindSettings, Deliver, OperatorClient, OperatorSettings, Submit
from adapters.sms.simulator import SimulatorSettings, SmscSimulator, main

CITIZEN = "989121234567"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def sim() -> AsyncIterator[SmscSimulator]:
    s = SmscSimulator(SimulatorSettings(port=0, dlr_delay_seconds=0.0, seed=3), http_port=0)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def http(sim: SmscSimulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{sim.http_port}") as session:
        yield session


@pytest.fixture
async def delivered() -> asyncio.Queue[Deliver]:
    return asyncio.Queue()


@pytest.fixture
async def client(
    sim: SmscSimulator, delivered: asyncio.Queue[Deliver]
) -> AsyncIterator[OperatorClient]:
    settings = BindSettings("127.0.0.1", sim.port, "payam", "secret", reconnect_min_seconds=0.05)
    c = OperatorClient(OperatorSettings("irancell", (settings,)), delivered.put)
    await c.start()
    assert await c.wait_bound(2.0)
    yield c
    await c.stop()


def sms(text: str) -> Submit:
    return Submit(
        source_addr="4040",
        source_addr_ton=0,
        source_addr_npi=1,
        destination_addr=CITIZEN,
        short_message=text.encode("ascii"),
        registered_delivery=0,
    )


async def post(http: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, Any]:
    async with http.post(path, json=body) as resp:
        data = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, data


async def test_post_mo_reaches_the_client(
    http: aiohttp.ClientSession, client: OperatorClient, delivered: asyncio.Queue[Deliver]
) -> None:
    status, body = await post(http, "/mo", {"from": CITIZEN, "to": "40401", "text": "salam {1}"})
    assert (status, body) == (200, {"ok": True})
    mo = delivered.get_nowait()  # acknowledged before the HTTP answer
    assert (mo.source_addr, mo.destination_addr, mo.esm_class) == (CITIZEN, "40401", 0)
    assert mo.short_message == b"salam \x1b(1\x1b)"  # GSM 03.38 escapes for { and }
    assert mo.operator == "irancell"


async def test_post_mo_without_a_receiver_is_refused(http: aiohttp.ClientSession) -> None:
    status, body = await post(http, "/mo", {"from": CITIZEN, "to": "4040", "text": "x"})
    assert status == 409
    assert "no receiver" in body["error"]
    status, _ = await post(http, "/mo", {"from": CITIZEN})
    assert status == 400


async def test_post_faults_changes_behaviour(
    http: aiohttp.ClientSession, client: OperatorClient
) -> None:
    status, faults = await post(http, "/faults", {"nack_pct": 100, "dlr_early": True})
    assert status == 200
    assert faults["nack_pct"] == 100
    assert faults["dlr_early"] is True
    assert (await client.submit(sms("one"))).error == errors.GENERIC_NACK
    status, faults = await post(http, "/faults", {"nack_pct": 0})
    assert status == 200
    assert (await client.submit(sms("two"))).ok
    for bad in ({"password": "x"}, {"nack_pct": "all"}, {"id_format": "oct"}, {"drop_after": True}):
        status, _ = await post(http, "/faults", bad)
        assert status == 400, bad


async def test_get_messages_and_stats(
    http: aiohttp.ClientSession, sim: SmscSimulator, client: OperatorClient
) -> None:
    result = await client.submit(sms("hello"))
    async with http.get("/messages") as resp:
        messages = await resp.json()
    assert messages == [
        {
            "source": "4040",
            "destination": CITIZEN,
            "text": "hello",
            "parts": 1,
            "data_coding": 0,
            "message_ids": [result.message_id],
        }
    ]
    async with http.get("/stats") as resp:
        stats = await resp.json()
    assert stats["submits"] == 1
    assert stats["bound"] == 1
    assert stats["received"] == 1
    assert stats["receipts"] == 0  # registered_delivery 0 asks for none


def test_command_line_parses_into_settings() -> None:
    from adapters.sms.simulator import build_arg_parser, settings_from_args

    ns = build_arg_parser().parse_args(
        ["--port", "0", "--id-format", "dec", "--outcome", "UNDELIV=2", "--outcome", "DELIVRD"]
    )
    settings = settings_from_args(ns)
    assert settings.id_format == "dec"
    assert settings.port == 0
    assert settings.outcomes == {"UNDELIV": 2.0, "DELIVRD": 1.0}
    with pytest.raises(SystemExit):
        main(["--outcome", "LOST=1"])


async def test_simulator_command_runs_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapters.sms.simulator",
        "--port",
        "0",
        "--id-format",
        "dec",
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(proc.stderr.readline(), 10.0)
        match = re.search(rb"listening on 127.0.0.1:(\d+)", line)
        assert match, line
        settings = BindSettings("127.0.0.1", int(match[1]), "payam", "secret")
        client = OperatorClient(
            OperatorSettings("rightel", (settings,)), lambda d: asyncio.sleep(0)
        )
        await client.start()
        try:
            assert await client.wait_bound(5.0)
            result = await client.submit(sms("hi"))
            assert result.ok
            assert result.message_id.isdigit()
        finally:
            await client.stop()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10.0) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
