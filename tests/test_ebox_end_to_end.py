"""The real gateway and the real reference e-box together, with a citizen in headless chromium.

An agency sends a letter through the gateway's API; the gateway's Kartpooshe adapter deposits it
in `payam ebox` (the real process, its own database, configured by PAYAM_EBOX_*); the citizen
logs in with
the one-time code that the gateway texted through the SMSC simulator over real SMPP (the e-box
never saw the number), finds the letter, opens it, and the gateway's GET /v1/letters/{id} shows
the "opened" evidence that the e-box reported; then a reply with a file reaches the agency's
GET /v1/letters/replies.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, async_playwright

from adapters.sms.simulator import SmscSimulator
from gateway.api.app import build_app
from gateway.config import Config, load_config
from gateway.letters.runtime import letters_context
from gateway.numbering import Request
from gateway.persian import persian_digits
from gateway.runtime import sms_context
from gateway.sealing import Sealer
from gateway.services import build_services
from gateway.store import Store
from tests.conftest import make_agency, make_key
from tests.debian import ensure_debian_package
from tests.ebox_harness import ebox_database_url, ebox_pool  # noqa: F401  (fixtures)
from tests.letters_harness import (
    EBOX_TO_GW,
    GW_TO_EBOX,
    PDF,
    PERSON,
    LetterAgency,
    letters_env,
    metadata,
)
from tests.sms_harness import start_sim, wait_for

MSISDN = "+989121234567"
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = ensure_debian_package("chromium")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        yield b
        await b.close()


@pytest.fixture
async def sim() -> AsyncIterator[SmscSimulator]:
    # Requested before aiohttp_client, so it stops after the gateway's SMPP binds are closed.
    simulator = await start_sim()
    yield simulator
    await simulator.stop()


async def test_letter_from_agency_to_citizen_and_opened_back(
    sim: SmscSimulator,
    config: Config,
    pool: asyncpg.Pool,
    sealer: Sealer,
    aiohttp_client: Any,
    tmp_path: Path,
    ebox_pool: asyncpg.Pool,
    ebox_database_url: str,
    browser: Browser,
) -> None:
    ebox_port = _free_port()
    ebox_url = f"http://127.0.0.1:{ebox_port}"
    op = {
        "name": "mci",
        "prefixes": ["9"],
        "host": "127.0.0.1",
        "port": sim.port,
        "system_id": "payam",
        "password": "secret",
        "response_timeout_seconds": 2.0,
    }
    cfg = load_config(
        None,
        env=letters_env(
            tmp_path,
            {
                "PAYAM_DATABASE_URL": config.database.url,
                "PAYAM_SECURITY_MASTER_KEY_FILE": config.security.master_key_file,
                "PAYAM_OPERATORS": json.dumps([op]),
                "PAYAM_SMS_QUIET_HOURS_START": "00:00",
                "PAYAM_SMS_QUIET_HOURS_END": "00:00",
                "PAYAM_KARTPOOSHE_BASE_URL": ebox_url,
            },
        ),
    )
    svc = build_services(cfg, Store(pool), sealer)
    app = build_app(svc)
    app.cleanup_ctx.append(sms_context(svc))
    app.cleanup_ctx.append(letters_context(svc))
    client = await aiohttp_client(app)
    gateway_url = str(client.make_url("")).rstrip("/")
    await svc.store.messages.put_citizens([(PERSON, MSISDN)])

    # The real `payam ebox` process, configured only by its PAYAM_EBOX_* environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYAM_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PAYAM_EBOX_DATABASE_URL=ebox_database_url,
        PAYAM_EBOX_PORT=str(ebox_port),
        PAYAM_EBOX_GATEWAY_URL=gateway_url,
        PAYAM_EBOX_GATEWAY_TO_EBOX_TOKEN=GW_TO_EBOX,
        PAYAM_EBOX_EBOX_TO_GATEWAY_TOKEN=EBOX_TO_GW,
        PAYAM_EBOX_EVENT_RETRY_BASE_SECONDS="0.2",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "ebox",
        env=env,
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )

    async def ebox_ready() -> bool:
        assert proc.returncode is None, "payam ebox exited"
        try:
            async with aiohttp.ClientSession() as s, s.get(f"{ebox_url}/readyz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    try:
        await wait_for(ebox_ready, timeout=60, interval=0.2)
        agency_id = await make_agency(svc, name_fa="سازمان امور مالیاتی کشور")
        agency = await svc.agencies.get(agency_id)
        await svc.numbering.allocate(agency, Request("shortcode", "404012"), actor="t")
        tax = LetterAgency(client, agency_id, await make_key(svc, agency_id))
        status, letter = await tax.send(metadata(), [("برگ.pdf", "application/pdf", PDF)])
        assert status == 202, letter
        lid = letter["id"]

        async def deposited() -> bool:
            return bool(
                await ebox_pool.fetchval("SELECT count(*) FROM letters WHERE letter_id = $1", lid)
            )

        await wait_for(deposited, timeout=60)

        page = await (await browser.new_context(viewport={"width": 360, "height": 740})).new_page()
        await page.goto(f"{ebox_url}/login")
        await page.fill("#national_code", PERSON)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{ebox_url}/login/code")

        def code_sms() -> str | None:
            for m in reversed(sim.received):
                found = re.search(r"(?<!\d)(\d{6})(?!\d)", m.text)
                if found and m.destination.endswith(MSISDN[1:]):
                    return found.group(1)
            return None

        async def code_sent() -> bool:
            return code_sms() is not None

        await wait_for(code_sent, timeout=60)
        await page.fill("#code", code_sms() or "")
        await page.click("form[action='/login/code'] button[type=submit]")
        await page.wait_for_url(f"{ebox_url}/box/{PERSON}")
        listed = await page.inner_text("ul.letters")
        assert persian_digits(letter["tracking_number"]) in listed
        assert "سازمان امور مالیاتی کشور" in listed
        await page.locator("ul.letters li a").click()
        await page.wait_for_selector("article h1")

        async def opened() -> bool:
            _, got = await tax.get(f"/v1/letters/{lid}")
            return "opened" in [e["type"] for e in got["evidence"]]

        await wait_for(opened, timeout=60)
        _, got = await tax.get(f"/v1/letters/{lid}")
        assert got["status"] == "opened"

        # The citizen replies with a file; the agency lists it through the gateway's API.
        await page.fill("#text", "با سلام، مدارک پیوست است.")
        await page.set_input_files(
            "#attachment",
            files=[{"name": "madrak.pdf", "mimeType": "application/pdf", "buffer": PDF}],
        )
        await page.click("form[action$='/reply'] button[type=submit]")
        await page.wait_for_selector("text=پاسخ شما ثبت و فرستاده شد.")

        async def replied() -> bool:
            _, page_ = await tax.get("/v1/letters/replies")
            return bool(page_["replies"])

        await wait_for(replied, timeout=60)
        _, replies = await tax.get("/v1/letters/replies")
        (reply,) = replies["replies"]
        assert reply["tracking_number"] == letter["tracking_number"]
        assert reply["text"] == "با سلام، مدارک پیوست است."
        assert reply["attachments"][0]["content_type"] == "application/pdf"
        _, got = await tax.get(f"/v1/letters/{lid}")
        assert got["status"] == "replied"
        kinds = [e["type"] for e in got["evidence"]]
        assert kinds[:2] == ["accepted", "deposited"]
        assert kinds.index("opened") < kinds.index("replied")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    assert PERSON not in err.decode()  # no national code in the e-box's log
