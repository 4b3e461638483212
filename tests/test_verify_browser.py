"""The citizens' verification page in real headless Debian chromium (driven by Playwright, the
same library and version range as the e-box branch): RTL Persian form, genuine and forged
answers, phone-width layout, and not one request to anywhere but the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from gateway.services import Services
from gateway.verification import NOT_SENT_FA
from tests.debian import ensure_debian_package
from tests.test_messages_api import _agency
from tests.test_verification import _policy, _sent

PHONE = {"width": 360, "height": 740}
FA_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = ensure_debian_package("chromium")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        yield b
        await b.close()


async def test_verify_page_in_chromium(
    browser: Browser, services: Services, client: Any, admin_token: str
) -> None:
    a = await _agency(services, client, name_fa="سازمان تأمین اجتماعی")
    await _policy(client, admin_token, a, "always")
    code, _ = await _sent(a)
    base = str(client.make_url("")).rstrip("/")
    outside: list[str] = []
    ctx = await browser.new_context(viewport=PHONE)
    ctx.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base) else None)
    page = await ctx.new_page()

    await page.goto(f"{base}/verify")
    assert await page.get_attribute("html", "dir") == "rtl"
    assert await page.get_attribute("html", "lang") == "fa"
    widths = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    # A citizen types with a Persian keyboard.
    await page.fill("#msisdn", "09121234567".translate(FA_DIGITS))
    await page.fill("#code", code.translate(FA_DIGITS))
    await page.click("#check")
    await page.wait_for_selector("#result")
    assert await page.get_attribute("#result", "data-status") == "genuine"
    shown = await page.inner_text("#result")
    assert "سازمان تأمین اجتماعی" in shown
    assert "۴۰۴۰۱۲" in shown
    assert await page.input_value("#msisdn") == "09121234567".translate(FA_DIGITS)

    # The same code on another number, and a made-up code: not sent through Payam Iran.
    for number, guess in (("09351112233", code), ("09121234567", "111111")):
        await page.fill("#msisdn", number)
        await page.fill("#code", guess)
        await page.click("#check")
        await page.wait_for_selector("#result[data-status='not_genuine']")
        assert NOT_SENT_FA in await page.inner_text("#result")
    assert outside == []
    await ctx.close()
