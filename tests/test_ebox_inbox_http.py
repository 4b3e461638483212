"""The inbox's security rules over real HTTP: codes, sessions, CSRF, downloads, company boxes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp

from tests.conftest import legal_id
from tests.ebox_harness import (  # noqa: F401  (fixtures)
    RunningEbox,
    StandInGateway,
    browser_session,
    csrf_of,
    deposit,
    ebox,
    ebox_database_url,
    ebox_pool,
    gateway_standin,
    http_login,
    letter_metadata,
    national_code,
)


async def _ask_code(s: aiohttp.ClientSession, base: str, code: str) -> str:
    async with s.get(f"{base}/login") as resp:
        token = csrf_of(await resp.text())
    async with s.post(
        f"{base}/login", data={"csrf": token, "national_code": code}, allow_redirects=False
    ) as resp:
        assert resp.status == 303
    return token


async def _enter(s: aiohttp.ClientSession, base: str, token: str, code: str) -> int:
    async with s.post(
        f"{base}/login/code", data={"csrf": token, "code": code}, allow_redirects=False
    ) as resp:
        return resp.status


async def test_session_cookie_flags_and_code_single_use(
    ebox: RunningEbox, gateway_standin: StandInGateway
) -> None:
    code = national_code(1001)
    async with browser_session() as s:
        token = await _ask_code(s, ebox.url, code)
        otp = gateway_standin.last_code(code)
        async with s.post(
            f"{ebox.url}/login/code", data={"csrf": token, "code": otp}, allow_redirects=False
        ) as resp:
            assert resp.status == 303
            cookie = next(
                v for v in resp.headers.getall("Set-Cookie") if v.startswith("ebox_session=")
            )
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # cookie_secure is off in this plain-HTTP test
        # The same code cannot open a second session.
        assert await _enter(s, ebox.url, token, otp) == 400
    rows = await ebox.store.pool.fetch("SELECT code_hash FROM login_codes")
    assert all(otp.encode() not in bytes(r["code_hash"]) for r in rows)


async def test_wrong_codes_are_limited(ebox: RunningEbox, gateway_standin: StandInGateway) -> None:
    code = national_code(1002)
    async with browser_session() as s:
        token = await _ask_code(s, ebox.url, code)
        otp = gateway_standin.last_code(code)
        wrong = f"{(int(otp) + 1) % 10**6:06d}"
        for _ in range(ebox.ctx.config.otp_max_attempts):
            assert await _enter(s, ebox.url, token, wrong) == 422
        # Out of tries: even the right code is refused now.
        assert await _enter(s, ebox.url, token, otp) == 429
        async with s.get(f"{ebox.url}/inbox", allow_redirects=False) as resp:
            assert resp.headers["Location"] == "/login"


async def test_expired_code(ebox: RunningEbox, gateway_standin: StandInGateway) -> None:
    code = national_code(1003)
    async with browser_session() as s:
        token = await _ask_code(s, ebox.url, code)
        later = datetime.now(UTC) + timedelta(seconds=ebox.ctx.config.otp_ttl_seconds + 1)
        ebox.ctx.clock = lambda: later
        assert await _enter(s, ebox.url, token, gateway_standin.last_code(code)) == 400


async def test_unknown_citizen_and_bad_code_get_persian_errors(
    ebox: RunningEbox, gateway_standin: StandInGateway
) -> None:
    code = national_code(1004)
    gateway_standin.unknown.add(code)
    async with browser_session() as s:
        async with s.get(f"{ebox.url}/login") as resp:
            token = csrf_of(await resp.text())
        async with s.post(f"{ebox.url}/login", data={"csrf": token, "national_code": code}) as resp:
            assert resp.status == 422
            assert "شماره همراهی ثبت نشده" in await resp.text()
        async with s.post(
            f"{ebox.url}/login", data={"csrf": token, "national_code": "0076229646"}
        ) as resp:
            assert resp.status == 422
            assert "کد ملی نامعتبر است" in await resp.text()
    assert gateway_standin.otps == []
    assert await ebox.store.pool.fetchval("SELECT count(*) FROM login_codes") == 0


async def test_post_without_csrf_is_refused(
    ebox: RunningEbox, gateway_standin: StandInGateway
) -> None:
    owner = national_code(1005)
    meta = letter_metadata(owner)
    await deposit(ebox.url, meta)
    async with browser_session() as s:
        async with s.post(f"{ebox.url}/login", data={"national_code": owner}) as resp:
            assert resp.status == 403
        assert gateway_standin.otps == []
        await http_login(s, ebox.url, owner, gateway_standin)
        url = f"{ebox.url}/box/{owner}/letter/{meta['letter_id']}/reply"
        async with s.post(url, data={"text": "x", "csrf": "forged"}) as resp:
            assert resp.status == 403
        async with s.post(
            f"{ebox.url}/box/{owner}/attorneys",
            data={"action": "grant", "national_code": national_code(7)},
        ) as resp:
            assert resp.status == 403
    assert await ebox.store.letters.replies(meta["letter_id"]) == []
    assert await ebox.store.access.attorneys_of(owner) == []


async def test_download_name_cannot_traverse_or_inject_headers(
    ebox: RunningEbox, gateway_standin: StandInGateway
) -> None:
    owner = national_code(1006)
    evil = '..\\../etc/passwd"\r\nX-Injected: 1.html'
    files = [(evil, "text/html", b"<script>alert(1)</script>")]
    meta = letter_metadata(owner, attachments=files)
    assert (await deposit(ebox.url, meta, files))[0] == 201
    async with browser_session() as s:
        await http_login(s, ebox.url, owner, gateway_standin)
        url = f"{ebox.url}/box/{owner}/letter/{meta['letter_id']}/attachment/0"
        async with s.get(url) as resp:
            assert resp.status == 200
            assert "X-Injected" not in resp.headers
            disposition = resp.headers["Content-Disposition"]
            assert disposition.startswith("attachment;")
            assert "/" not in disposition.split("filename*=")[0]
            assert "\r" not in disposition
            assert "\n" not in disposition
            assert 'filename="passwd_' in disposition
            # Never served as HTML from the inbox's origin.
            assert resp.content_type == "application/octet-stream"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_other_peoples_boxes_are_closed(
    ebox: RunningEbox, gateway_standin: StandInGateway
) -> None:
    owner, stranger = national_code(1007), national_code(1008)
    meta = letter_metadata(owner)
    await deposit(ebox.url, meta)
    async with browser_session() as s:
        await http_login(s, ebox.url, stranger, gateway_standin)
        for path in (
            f"/box/{owner}",
            f"/box/{owner}/letter/{meta['letter_id']}",
            f"/box/{owner}/attorneys",
        ):
            async with s.get(f"{ebox.url}{path}") as resp:
                assert resp.status == 403, path
        # Even a letter id of another box through one's own box: not found.
        async with s.get(f"{ebox.url}/box/{stranger}/letter/{meta['letter_id']}") as resp:
            assert resp.status == 404
    letter = await ebox.store.letters.get(owner, meta["letter_id"])
    assert letter is not None
    assert letter.first_opened_at is None


async def test_company_representatives(ebox: RunningEbox, gateway_standin: StandInGateway) -> None:
    company, first, second = legal_id(), national_code(2001), national_code(2002)
    meta = letter_metadata(company, kind="company")
    await deposit(ebox.url, meta)
    await ebox.store.access.add_representative(company, first, "cli:test")
    async with browser_session() as s:
        csrf = await http_login(s, ebox.url, first, gateway_standin)
        async with s.get(f"{ebox.url}/box/{company}") as resp:
            assert resp.status == 200
            assert meta["subject"] in await resp.text()
        path = f"{ebox.url}/box/{company}/representatives"
        # The last representative cannot remove themself.
        async with s.post(
            path, data={"csrf": csrf, "action": "remove", "national_code": first}
        ) as resp:
            assert resp.status == 409
        async with s.post(
            path, data={"csrf": csrf, "action": "add", "national_code": second}
        ) as resp:
            assert resp.status == 200
            assert second in await resp.text()
    async with browser_session() as s2:
        csrf2 = await http_login(s2, ebox.url, second, gateway_standin)
        async with s2.get(f"{ebox.url}/box/{company}/letter/{meta['letter_id']}") as resp:
            assert resp.status == 200
        (opened,) = await gateway_standin.wait_events(1)
        assert opened["actor"] == {"kind": "representative"}
        async with s2.post(
            f"{ebox.url}/box/{company}/representatives",
            data={"csrf": csrf2, "action": "remove", "national_code": first},
        ) as resp:
            assert resp.status == 200
    reps = await ebox.store.access.representatives_of(company)
    assert [r.national_code for r in reps] == [second]


async def test_login_metrics(ebox: RunningEbox, gateway_standin: StandInGateway) -> None:
    async with browser_session() as s:
        await http_login(s, ebox.url, national_code(3001), gateway_standin)
    async with aiohttp.ClientSession() as s, s.get(f"{ebox.url}/metrics") as resp:
        text = await resp.text()
    assert 'payam_ebox_logins_total{outcome="success"}' in text
    assert 'payam_ebox_logins_total{outcome="code_sent"}' in text


async def test_no_reply_when_the_letter_takes_none(
    ebox: RunningEbox, gateway_standin: StandInGateway
) -> None:
    owner = national_code(3002)
    meta = letter_metadata(owner, reply_allowed=False)
    await deposit(ebox.url, meta)
    async with browser_session() as s:
        csrf = await http_login(s, ebox.url, owner, gateway_standin)
        url = f"{ebox.url}/box/{owner}/letter/{meta['letter_id']}"
        async with s.get(url) as resp:
            page = await resp.text()
        assert "این نامه پاسخ نمی‌پذیرد" in page
        assert "/reply" not in page
        async with s.post(f"{url}/reply", data={"csrf": csrf, "text": "سلام"}) as resp:
            assert resp.status == 403
    assert await ebox.store.letters.replies(meta["letter_id"]) == []
    (opened,) = await gateway_standin.wait_events(1)
    assert opened["type"] == "opened"
    await asyncio.sleep(0.5)
    assert len(gateway_standin.events) == 1  # no replied event


async def test_cookies_are_secure_behind_https(
    ebox_database_url: str, ebox_pool: object, gateway_standin: StandInGateway
) -> None:
    from adapters.kartpooshe.ebox.app import build_app, build_context
    from adapters.kartpooshe.ebox.store import EboxStore
    from tests.ebox_harness import _serve, ebox_config

    cfg = ebox_config(ebox_database_url, gateway_standin.url, PAYAM_EBOX_COOKIE_SECURE="true")
    runner, url = await _serve(build_app(build_context(cfg, EboxStore(ebox_pool))))  # type: ignore[arg-type]
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{url}/login") as resp:
            cookie = resp.headers["Set-Cookie"]
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
    finally:
        await runner.cleanup()


def test_ascii_fallback_of_download_names() -> None:
    from adapters.kartpooshe.ebox.web.inbox import content_disposition

    assert content_disposition("برگ تشخیص.pdf").startswith('attachment; filename="attachment.pdf"')
    assert content_disposition("scan 1.png").startswith('attachment; filename="scan 1.png"')
    assert "filename*=UTF-8''%D8%A8" in content_disposition("برگ.pdf")


async def test_reply_attachment_must_be_pdf_or_image(
    ebox: RunningEbox, gateway_standin: StandInGateway
) -> None:
    owner = national_code(3003)
    meta = letter_metadata(owner)
    await deposit(ebox.url, meta)
    async with browser_session() as s:
        csrf = await http_login(s, ebox.url, owner, gateway_standin)
        url = f"{ebox.url}/box/{owner}/letter/{meta['letter_id']}/reply"

        def form(name: str, ctype: str, data: bytes) -> aiohttp.FormData:
            f = aiohttp.FormData()
            f.add_field("csrf", csrf)
            f.add_field("text", "پاسخ")
            f.add_field("attachment", data, filename=name, content_type=ctype)
            return f

        async with s.post(url, data=form("a.pdf", "application/pdf", b"MZ\x90\x00" * 8)) as resp:
            assert resp.status == 415
            assert "PDF یا تصویر" in await resp.text()
        assert await ebox.store.letters.replies(meta["letter_id"]) == []
        # The type comes from the bytes, not from the browser's claim.
        pdf = b"%PDF-1.4\n%%EOF\n"
        async with s.post(url, data=form("x.png", "image/png", pdf)) as resp:
            assert resp.status == 200
    (reply,) = await ebox.store.letters.replies(meta["letter_id"])
    assert (reply.attachment_type, reply.attachment_data) == ("application/pdf", pdf)
