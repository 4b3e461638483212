"""The citizen inbox end to end in real headless Debian chromium (driven by Playwright).

The e-box runs on a real loopback port with its real database; a stand-in gateway (a real HTTP
server) records the one-time codes the e-box asks it to text and the events it reports, so the
test logs in with the code "sent by SMS" and sees openings and replies reach the gateway.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from adapters.kartpooshe.ebox.web.html import fa_date
from tests.debian import ensure_debian_package
from tests.ebox_harness import (  # noqa: F401  (fixtures)
    RunningEbox,
    StandInGateway,
    deposit,
    ebox,
    ebox_database_url,
    ebox_pool,
    gateway_standin,
    letter_metadata,
    national_code,
)

PHONE = {"width": 360, "height": 740}
PDF = b"%PDF-1.4\n% test letter attachment\n" + bytes(range(256)) * 64


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = ensure_debian_package("chromium")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        yield b
        await b.close()


async def no_horizontal_overflow(page: Page) -> None:
    widths = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"horizontal overflow at 360 px: {widths}"


async def login(page: Page, base: str, code: str, gateway: StandInGateway) -> None:
    await page.goto(f"{base}/login")
    assert await page.get_attribute("html", "dir") == "rtl"
    assert await page.get_attribute("html", "lang") == "fa"
    await no_horizontal_overflow(page)
    # Persian digits, as a phone keyboard types them, are accepted.
    await page.fill("#national_code", code.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")))
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/login/code")
    await page.fill("#code", gateway.last_code(code))
    await page.click("form[action='/login/code'] button[type=submit]")
    await page.wait_for_url(f"{base}/box/{code}")


async def test_inbox_login_open_download_reply_attorney(
    browser: Browser, ebox: RunningEbox, gateway_standin: StandInGateway, tmp_path: Path
) -> None:
    owner, attorney = national_code(76229), national_code(4815162)
    files = [("برگ تشخیص.pdf", "application/pdf", PDF)]
    meta = letter_metadata(owner, attachments=files)
    assert (await deposit(ebox.url, meta, files))[0] == 201
    stored = await ebox.store.letters.get(owner, meta["letter_id"])
    assert stored is not None

    external: list[str] = []
    ctx = await browser.new_context(viewport=PHONE, accept_downloads=True)
    ctx.on("request", lambda r: external.append(r.url) if not r.url.startswith(ebox.url) else None)
    page = await ctx.new_page()

    # 1. Login with the code the e-box asked the gateway to text (it never saw a phone number).
    await login(page, ebox.url, owner, gateway_standin)
    assert set(gateway_standin.otps[-1]) == {"national_code", "code"}
    assert len(gateway_standin.otps[-1]["code"]) == 6

    # 2. The list shows the letter with its Jalali date in Persian digits, as unread.
    item = page.locator("ul.letters li")
    assert await item.count() == 1
    text = await item.inner_text()
    assert meta["subject"] in text
    jalali = fa_date(stored.deposited_at)
    assert jalali[:4] in ("۱۴۰۵", "۱۴۰۶")
    assert jalali in text
    assert "خوانده‌نشده" in text
    await no_horizontal_overflow(page)
    await page.screenshot(path=str(tmp_path / "list.png"), full_page=True)

    # 3. Opening it sends "opened" (first opening only) to the gateway.
    await item.locator("a").click()
    await page.wait_for_selector("article h1")
    assert meta["subject"] in await page.inner_text("article")
    await no_horizontal_overflow(page)
    await page.screenshot(path=str(tmp_path / "letter.png"), full_page=True)
    (opened,) = await gateway_standin.wait_events(1)
    assert (opened["type"], opened["letter_id"], opened["actor"]) == (
        "opened",
        meta["letter_id"],
        {"kind": "owner"},
    )

    # 4. The attachment downloads with the same bytes and its Persian name.
    async with page.expect_download() as info:
        await page.click("text=برگ تشخیص.pdf")
    download = await info.value
    assert download.suggested_filename == "برگ تشخیص.pdf"
    saved = tmp_path / "download.pdf"
    await download.save_as(saved)
    assert saved.read_bytes() == PDF

    # 5. Reply with text and one attachment: the "replied" event carries it to the gateway.
    reply_bytes = b"%PDF-1.4\n% my answer\n" + bytes(range(200))
    await page.fill("#text", "با سلام، اعتراض من به برگ تشخیص پیوست است.")
    await page.set_input_files(
        "#attachment",
        files=[{"name": "اعتراض.pdf", "mimeType": "application/pdf", "buffer": reply_bytes}],
    )
    await page.click("form[action$='/reply'] button[type=submit]")
    await page.wait_for_selector("text=پاسخ شما ثبت و فرستاده شد.")
    events = await gateway_standin.wait_events(2)
    replied = events[1]
    assert replied["type"] == "replied"
    assert replied["reply"]["text"] == "با سلام، اعتراض من به برگ تشخیص پیوست است."
    (att,) = replied["reply"]["attachments"]
    assert att["name"] == "اعتراض.pdf"
    assert base64.b64decode(att["data_base64"]) == reply_bytes
    await no_horizontal_overflow(page)

    # 6. Grant an attorney.
    await page.goto(f"{ebox.url}/box/{owner}/attorneys")
    await page.fill("#national_code", attorney)
    await page.click("form:has(input[value=grant]) button[type=submit]")
    await page.wait_for_selector("text=وکالت ثبت شد.")
    await no_horizontal_overflow(page)

    # 7. The attorney logs in with their own code and reads the principal's letter.
    actx = await browser.new_context(viewport=PHONE)
    apage = await actx.new_page()
    await login(apage, ebox.url, attorney, gateway_standin)
    await apage.click(f"nav.boxes a[href='/box/{owner}']")
    await apage.wait_for_url(f"{ebox.url}/box/{owner}")
    await apage.locator("ul.letters li a").click()
    await apage.wait_for_selector("article h1")
    assert "برگ تشخیص مالیات" in await apage.inner_text("article")
    assert await apage.locator("form[action$='/reply']").count() == 0  # attorneys read only
    assert len(gateway_standin.events) == 2  # a later opening sends nothing

    # 8. Revoke: the attorney's next click is refused, and the box leaves their list.
    await page.click(f"form:has(input[value='{attorney}']) button[type=submit]")
    await page.wait_for_selector("text=وکالت لغو شد.")
    response = await apage.goto(f"{ebox.url}/box/{owner}")
    assert response is not None
    assert response.status == 403
    assert "دسترسی ندارید" in await apage.inner_text("body")
    await apage.goto(f"{ebox.url}/inbox")
    assert await apage.locator(f"nav.boxes a[href='/box/{owner}']").count() == 0

    assert external == [], f"the inbox loaded something from elsewhere: {external}"
    await page.screenshot(path=str(tmp_path / "inbox.png"), full_page=True)
    await actx.close()
    await ctx.close()
