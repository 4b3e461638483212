"""``payam phone`` as a real subprocess driven through stdin, against a real gateway on loopback
(HTTP front) and through the SMSC simulator's phones (real TCP SMPP), real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from adapters.sms.simulator import SimulatorSettings, SmscSimulator
from gateway.api.app import build_app
from gateway.config import Config
from gateway.numbering import Request
from gateway.runtime import sms_context
from gateway.sealing import Sealer
from gateway.services import Services, build_services
from gateway.store import Store
from tests.conftest import ROOT, make_agency
from tests.sms_harness import sms_config, wait_for

SECRET = "mci-shared-secret-0123456789"
MENU: dict[str, Any] = {
    "root": "main",
    "screens": {
        "main": {
            "kind": "menu",
            "text": "سازمان امور مالیاتی",
            "options": [
                {"label": "استعلام", "next": "nc"},
                {"label": "ساعات کاری", "next": "hours"},
            ],
        },
        "nc": {
            "kind": "input",
            "text": "کد ملی را وارد کنید:",
            "validate": "national_code",
            "next": "thanks",
            "error": "کد ملی نادرست است؛ دوباره:",
        },
        "thanks": {"kind": "message", "text": "درخواست ثبت شد."},
        "hours": {"kind": "message", "text": "شنبه تا چهارشنبه ۸ تا ۱۶"},
    },
}


async def _phone(*args: str, stdin: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYAM_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "phone",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _menu(services: Services) -> None:
    agency_id = await make_agency(services)
    a = await services.agencies.get(agency_id)
    await services.numbering.allocate(a, Request("ussd_code", "*412#"), actor="t")
    await services.store.ussd.put_menu(agency_id, MENU, "t")


async def test_phone_walks_a_menu_through_the_http_front(
    config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any
) -> None:
    cfg = replace(config, ussd=replace(config.ussd, http_secrets=(f"mci={SECRET}",)))
    services = build_services(cfg, Store(pool), sealer)
    client: TestClient[Any, Any] = await aiohttp_client(build_app(services))
    await _menu(services)
    url = f"http://127.0.0.1:{client.server.port}"
    # A wrong national code first, then a valid one (Persian digits).
    code, out, err = await _phone(
        "*412#", "--http", url, "--secret", SECRET, stdin="1\n0076229646\n۰۰۷۶۲۲۹۶۴۵\n"
    )
    assert (code, err) == (0, "")
    screens = out.split("─" * 24)
    assert "سازمان امور مالیاتی\n1. استعلام\n2. ساعات کاری" in out
    assert "کد ملی را وارد کنید:" in out
    assert "کد ملی نادرست است؛ دوباره:" in out
    assert "درخواست ثبت شد." in out
    assert out.rstrip().endswith("[پایان / end]")
    assert len([s for s in screens if s.strip() and not s.strip().startswith(">")]) >= 4
    # Dial-through, and hanging up (end of input) on an open screen.
    code, out, _ = await _phone("*412*2#", "--http", url, "--secret", SECRET, stdin="")
    assert code == 0
    assert "شنبه تا چهارشنبه ۸ تا ۱۶" in out
    code, out, _ = await _phone("*412#", "--http", url, "--secret", SECRET, stdin="")
    assert (code, out.rstrip().endswith("[قطع شد / hung up]")) == (0, True)
    # A wrong secret is a clear error, not a hang.
    code, _, err = await _phone("*412#", "--http", url, "--secret", "x" * 20, stdin="")
    assert code == 1
    assert "401" in err


async def test_phone_dials_over_smpp_through_the_simulator(
    config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any
) -> None:
    sim = SmscSimulator(SimulatorSettings(port=0, seed=3), http_port=0)
    await sim.start()
    try:
        services = build_services(sms_config(config, sim.port), Store(pool), sealer)
        app = build_app(services)
        app.cleanup_ctx.append(sms_context(services))
        await aiohttp_client(app)
        await _menu(services)

        async def bound() -> bool:
            return sim.bound > 0

        await wait_for(bound)
        code, out, err = await _phone(
            "*412#", "--sim", f"http://127.0.0.1:{sim.http_port}", stdin="2\n"
        )
        assert (code, err) == (0, "")
        assert "سازمان امور مالیاتی\n1. استعلام" in out
        assert "شنبه تا چهارشنبه ۸ تا ۱۶" in out
        assert [s.op for s in sim.ussd.screens] == [2, 17]  # USSR request, PSSR response
    finally:
        await sim.stop()
