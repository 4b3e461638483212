"""USSD over the HTTP operator front: real HTTP, real PostgreSQL, agency endpoints on loopback."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from adapters.ussd.http_front import SECRET_HEADER
from adapters.ussd.sessions import TIMED_OUT, UNKNOWN_CODE
from gateway.api.app import build_app
from gateway.callbacks import SIGNATURE_HEADER, verify
from gateway.config import Config
from gateway.numbering import Request
from gateway.sealing import Sealer
from gateway.services import Services, build_services
from gateway.store import Store
from tests.conftest import auth, make_agency

SECRET = "mci-shared-secret-0123456789"
VALID_NC = "0076229645"

MENU: dict[str, Any] = {
    "root": "main",
    "screens": {
        "main": {
            "kind": "menu",
            "text": "سازمان امور مالیاتی",
            "options": [
                {"label": "استعلام بدهی", "next": "nc"},
                {"label": "ساعات کاری", "next": "hours"},
                {"label": "راهنما", "next": "help"},
            ],
        },
        "nc": {
            "kind": "input",
            "text": "کد ملی را وارد کنید:",
            "validate": "national_code",
            "next": "debt",
            "error": "کد ملی نادرست است؛ دوباره:",
        },
        "debt": {"kind": "remote", "url": "", "fallback": "فعلاً پاسخی نیست؛ بعداً بکوشید."},
        "hours": {"kind": "message", "text": "شنبه تا چهارشنبه ۸ تا ۱۶"},
        "help": {
            "kind": "menu",
            "text": "راهنما",
            "options": [
                {"label": "تماس", "next": "hours"},
                {"label": "نشانی", "next": "hours"},
                {"label": "سامانه", "next": "site"},
            ],
        },
        "site": {"kind": "message", "text": "tax.gov.ir"},
    },
}


@pytest.fixture
def ussd_config(config: Config) -> Config:
    ussd = replace(config.ussd, http_secrets=(f"mci={SECRET}",), remote_timeout_seconds=0.5)
    return replace(config, ussd=ussd)


async def _node(
    cfg: Config, database_url: str, sealer: Sealer, aiohttp_client: Any
) -> tuple[TestClient[Any, Any], Services, asyncpg.Pool]:
    """One gateway node: its own pool, services and app over the shared database."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert pool is not None
    services = build_services(cfg, Store(pool), sealer)
    client: TestClient[Any, Any] = await aiohttp_client(build_app(services))
    return client, services, pool


@pytest.fixture
async def node(
    ussd_config: Config, pool: asyncpg.Pool, database_url: str, sealer: Sealer, aiohttp_client: Any
) -> Any:
    client, services, own = await _node(ussd_config, database_url, sealer, aiohttp_client)
    yield client, services
    await own.close()


@pytest.fixture
async def agency(node: Any) -> uuid.UUID:
    _, services = node
    agency_id = await make_agency(services)
    a = await services.agencies.get(agency_id)
    await services.numbering.allocate(a, Request("ussd_code", "*412#"), actor="test")
    return agency_id


async def _upload(client: TestClient[Any, Any], token: str, agency_id: uuid.UUID, menu: Any) -> Any:
    resp = await client.put(
        f"/admin/v1/agencies/{agency_id}/ussd-menu", json=menu, headers=auth(token)
    )
    return resp.status, await resp.json()


async def _ussd(
    client: TestClient[Any, Any],
    text: str = "",
    *,
    session: str = "s1",
    code: str = "*412#",
    phone: str = "09121234567",
    secret: str = SECRET,
    operator: str = "mci",
) -> tuple[int, str]:
    resp = await client.post(
        f"/ussd/{operator}",
        data={"sessionId": session, "serviceCode": code, "phoneNumber": phone, "text": text},
        headers={SECRET_HEADER: secret},
    )
    return resp.status, await resp.text()


@pytest.fixture
async def admin(node: Any) -> str:
    _, services = node
    issued = await services.credentials.create_admin_token(name="ops", role="admin", actor="t")
    return issued.value


@pytest.fixture
async def menu_up(node: Any, agency: uuid.UUID, admin: str) -> uuid.UUID:
    status, body = await _upload(
        node[0],
        admin,
        agency,
        MENU
        | {
            "screens": {
                **MENU["screens"],
                "debt": {**MENU["screens"]["debt"], "url": "https://127.0.0.1:1/unused"},
            }
        },
    )
    assert status == 200, body
    return agency


async def test_admin_upload_get_and_validation_error(
    node: Any, agency: uuid.UUID, admin: str
) -> None:
    client, _ = node
    bad = {
        "root": "main",
        "screens": {
            "main": {"kind": "menu", "text": "x", "options": [{"label": "a", "next": "gone"}]}
        },
    }
    status, body = await _upload(client, admin, agency, bad)
    assert status == 422
    assert body["code"] == "invalid_ussd_menu"
    assert body["screen"] == "main"
    assert body["errors"] == [{"screen": "main", "message": "target 'gone' does not exist"}]
    resp = await client.get(f"/admin/v1/agencies/{agency}/ussd-menu", headers=auth(admin))
    assert resp.status == 404
    menu = {"root": "m", "screens": {"m": {"kind": "message", "text": "سلام"}}}
    status, body = await _upload(client, admin, agency, menu)
    assert (status, body["version"], body["menu"]) == (200, 1, menu)
    status, body = await _upload(client, admin, agency, menu)
    assert body["version"] == 2
    resp = await client.get(f"/admin/v1/agencies/{agency}/ussd-menu", headers=auth(admin))
    assert resp.status == 200
    assert (await resp.json())["menu"] == menu
    resp = await client.get(f"/admin/v1/agencies/{agency}/ussd-menu")
    assert resp.status == 401


async def test_walk_a_menu_with_paging_input_and_end(node: Any, menu_up: uuid.UUID) -> None:
    client, _ = node
    status, body = await _ussd(client)
    assert status == 200
    assert body.startswith("CON سازمان امور مالیاتی\n1. استعلام بدهی")
    assert (await _ussd(client, "1"))[1] == "CON کد ملی را وارد کنید:"
    # Persian digits are normalised; an invalid code asks again.
    assert (await _ussd(client, "1*۰۰۷۶۲۲۹۶۴۶"))[1] == "CON کد ملی نادرست است؛ دوباره:"
    # The agency endpoint (port 1) refuses: the fallback ends the session.
    assert (await _ussd(client, "1*۰۰۷۶۲۲۹۶۴۶*" + VALID_NC))[1] == (
        "END فعلاً پاسخی نیست؛ بعداً بکوشید."
    )


async def test_dial_through_and_unknown_codes(node: Any, menu_up: uuid.UUID) -> None:
    client, _ = node
    assert (await _ussd(client, session="d1", code="*412*2#"))[1] == "END شنبه تا چهارشنبه ۸ تا ۱۶"
    assert (await _ussd(client, session="d2", code="*412*3*3#"))[1] == "END tax.gov.ir"
    # Persian digits in the dialled code too.
    assert (await _ussd(client, session="d3", code="*۴۱۲*۳#"))[1].startswith("CON راهنما")
    # Dial-through given by the operator as text on the first request (aggregator style).
    assert (await _ussd(client, "3*3", session="d4"))[1] == "END tax.gov.ir"
    for session, code in (("u1", "*499#"), ("u2", "*4#"), ("u3", "hello")):
        status, body = await _ussd(client, session=session, code=code)
        assert (status, body) == (200, "END " + UNKNOWN_CODE)
    assert "Unknown" in UNKNOWN_CODE
    assert "تعریف نشده" in UNKNOWN_CODE


async def test_repeated_request_returns_the_same_screen(node: Any, menu_up: uuid.UUID) -> None:
    client, _services = node
    first = await _ussd(client)
    assert await _ussd(client) == first
    second = await _ussd(client, "3")
    assert second[1].startswith("CON راهنما")
    # The operator retries "3": same screen, not option 3 of the help menu.
    assert await _ussd(client, "3") == second
    # A late retry of an earlier step does not move the dialog back or sideways.
    assert await _ussd(client, "") == second
    assert (await _ussd(client, "3*3"))[1] == "END tax.gov.ir"
    assert (await _ussd(client, "3*3"))[1] == "END tax.gov.ir"
    # Repeats under load from many concurrent retries still agree.
    results = await asyncio.gather(*(_ussd(client, "3", session="race") for _ in range(8)))
    assert len(set(results)) == 1


async def test_idle_timeout(node: Any, menu_up: uuid.UUID, pool: asyncpg.Pool) -> None:
    client, _ = node
    await _ussd(client, session="t1")
    await _ussd(client, "3", session="t1")
    await pool.execute(
        "UPDATE ussd_sessions SET updated_at = updated_at - interval '181 seconds' "
        "WHERE session_id = 't1'"
    )
    assert (await _ussd(client, "3*1", session="t1"))[1] == "END " + TIMED_OUT
    # A fresh dial that reuses the id after the timeout starts over.
    await pool.execute(
        "UPDATE ussd_sessions SET updated_at = updated_at - interval '181 seconds' "
        "WHERE session_id = 't1'"
    )
    assert (await _ussd(client, session="t1"))[1].startswith("CON سازمان")


async def test_a_session_continues_on_another_node(
    node: Any,
    menu_up: uuid.UUID,
    ussd_config: Config,
    database_url: str,
    sealer: Sealer,
    aiohttp_client: Any,
) -> None:
    first, _ = node
    second, _, own = await _node(ussd_config, database_url, sealer, aiohttp_client)
    try:
        assert (await _ussd(first, session="n1"))[1].startswith("CON سازمان")
        assert (await _ussd(second, "3", session="n1"))[1].startswith("CON راهنما")
        # Both nodes get the same retry at once: one answer, and the dialog moves on once.
        got = await asyncio.gather(
            _ussd(first, "3*3", session="n1"), _ussd(second, "3*3", session="n1")
        )
        assert got[0] == got[1] == (200, "END tax.gov.ir")
        # Two dialogs of one number on two nodes at once do not mix.
        a, b = await asyncio.gather(
            _ussd(first, "2", session="p1"), _ussd(second, "3", session="p2")
        )
        assert a[1].startswith("END شنبه")
        assert b[1].startswith("CON راهنما")
    finally:
        await own.close()


@pytest.mark.parametrize(
    ("operator", "secret"),
    [("mci", "wrong-secret-0123456789"), ("mci", ""), ("irancell", SECRET)],
)
async def test_callers_without_the_operator_secret_are_refused(
    node: Any, menu_up: uuid.UUID, operator: str, secret: str, pool: asyncpg.Pool
) -> None:
    client, _ = node
    resp = await client.post(
        f"/ussd/{operator}",
        data={"sessionId": "x", "serviceCode": "*412#", "phoneNumber": "09121234567"},
        headers={SECRET_HEADER: secret} if secret else {},
    )
    assert resp.status == 401
    assert (await resp.json())["code"] == "ussd_unauthorised"
    assert await pool.fetchval("SELECT count(*) FROM ussd_sessions") == 0


async def test_missing_fields_are_422(node: Any, menu_up: uuid.UUID) -> None:
    client, _ = node
    resp = await client.post("/ussd/mci", data={"sessionId": "x"}, headers={SECRET_HEADER: SECRET})
    assert resp.status == 422
    assert (await resp.json())["code"] == "missing_field"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("ok", "END بدهی شما صفر است"),
        ("slow", "END فعلاً پاسخی نیست؛ بعداً بکوشید."),
        ("fail", "END فعلاً پاسخی نیست؛ بعداً بکوشید."),
        ("garbage", "END فعلاً پاسخی نیست؛ بعداً بکوشید."),
    ],
)
async def test_remote_screen_signed_slow_and_failing(
    node: Any, agency: uuid.UUID, admin: str, aiohttp_server: Any, mode: str, expected: str
) -> None:
    client, services = node
    secret = services.agencies.webhook_secret(await services.agencies.get(agency))
    seen: list[Any] = []

    async def endpoint(request: web.Request) -> web.Response:
        raw = await request.read()
        assert verify(secret, raw, request.headers[SIGNATURE_HEADER])
        seen.append(await request.json())
        if mode == "slow":
            await asyncio.sleep(2)
        if mode == "fail":
            return web.Response(status=503)
        if mode == "garbage":
            return web.Response(text="<html>")
        return web.json_response({"text": "بدهی شما صفر است"})

    app = web.Application()
    app.router.add_post("/ussd", endpoint)
    server = await aiohttp_server(app)
    menu = {
        **MENU,
        "screens": {
            **MENU["screens"],
            "debt": {**MENU["screens"]["debt"], "url": f"http://127.0.0.1:{server.port}/ussd"},
        },
    }
    status, _ = await _upload(client, admin, agency, menu)
    assert status == 200
    assert (await _ussd(client, "1*" + VALID_NC, session=mode))[1] == expected
    assert seen[0]["inputs"] == {"nc": VALID_NC}
    assert seen[0]["screen"] == "debt"
    assert "msisdn" not in seen[0], "the number goes only to screens that ask for it"


async def test_paging_over_http_with_more_and_back(
    node: Any, agency: uuid.UUID, admin: str
) -> None:
    client, _ = node
    labels = [f"خدمت شماره {n} دستگاه" for n in range(1, 10)]
    menu = {
        "root": "main",
        "screens": {
            "main": {
                "kind": "menu",
                "text": "خدمات",
                "options": [{"label": label, "next": "done"} for label in labels],
            },
            "done": {"kind": "message", "text": "ثبت شد"},
        },
    }
    assert (await _upload(client, admin, agency, menu))[0] == 200
    _, page1 = await _ussd(client, session="pg")
    assert page1.startswith("CON خدمات\n1. ")
    assert page1.endswith("\n۹۸ بیشتر")
    assert "۰ بازگشت" not in page1
    _, page2 = await _ussd(client, "98", session="pg")
    assert page2 != page1
    assert page2.endswith("۹۸ بیشتر\n۰ بازگشت")
    _, back = await _ussd(client, "98*0", session="pg")
    assert back == page1
    # An option shown on another page still works; a number not on offer re-shows the page.
    assert (await _ussd(client, "98*0*42", session="pg"))[1] == page1
    assert (await _ussd(client, "98*0*42*9", session="pg"))[1] == "END ثبت شد"
    for page in (page1, page2):
        assert len(page[4:]) <= 72


async def test_no_number_or_input_reaches_the_logs(
    node: Any, menu_up: uuid.UUID, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = node
    caplog.set_level("DEBUG")
    await _ussd(client, session="log", phone="09127654321")
    await _ussd(client, "1*" + VALID_NC, session="log", phone="09127654321")
    await _ussd(client, session="bad", secret="nope-nope-nope-nope")
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("9127654321", VALID_NC, "nope-nope"):
        assert secret not in text


async def test_viewers_may_read_but_not_upload_menus(
    node: Any, agency: uuid.UUID, menu_up: uuid.UUID
) -> None:
    client, services = node
    viewer = await services.credentials.create_admin_token(name="v", role="viewer", actor="t")
    status, body = await _upload(client, viewer.value, agency, MENU)
    assert (status, body["code"]) == (403, "insufficient_role")
    resp = await client.get(f"/admin/v1/agencies/{agency}/ussd-menu", headers=auth(viewer.value))
    assert resp.status == 200


async def test_back_on_a_first_page_is_the_previous_screen(
    node: Any, agency: uuid.UUID, admin: str
) -> None:
    """«۰ بازگشت» goes back a page on pages after the first, and back a screen (to its first
    page) on the first page of a menu below the root; on the root it shows the root again."""
    client, _ = node
    labels = [f"خدمت شماره {n} دستگاه" for n in range(1, 10)]
    menu = {
        "root": "main",
        "screens": {
            "main": {
                "kind": "menu",
                "text": "خدمات",
                "options": [
                    {"label": "فهرست بلند", "next": "long"},
                    {"label": "کوتاه", "next": "sub"},
                ],
            },
            "long": {
                "kind": "menu",
                "text": "فهرست",
                "options": [{"label": label, "next": "sub"} for label in labels],
            },
            "sub": {
                "kind": "menu",
                "text": "زیرمنو",
                "options": [{"label": "پایان", "next": "done"}],
            },
            "done": {"kind": "message", "text": "ثبت شد"},
        },
    }
    assert (await _upload(client, admin, agency, menu))[0] == 200
    _, root = await _ussd(client, session="bk")
    assert "۰ بازگشت" not in root  # nothing behind the root
    assert (await _ussd(client, "0", session="bk"))[1] == root
    _, long1 = await _ussd(client, "1", session="bk")
    assert long1.endswith("۹۸ بیشتر\n۰ بازگشت")  # the first page of a sub-menu offers back
    _, long2 = await _ussd(client, "1*98", session="bk")
    assert long2 != long1
    assert (await _ussd(client, "1*98*0", session="bk"))[1] == long1  # back a page
    assert (await _ussd(client, "1*98*0*0", session="bk"))[1] == root  # back a screen
    # Forward again, deeper, then back two screens.
    _, sub = await _ussd(client, "1*98*0*0*1*3", session="bk")
    assert sub == "CON زیرمنو\n1. پایان\n۰ بازگشت"
    assert (await _ussd(client, "1*98*0*0*1*3*0", session="bk"))[1] == long1
    assert (await _ussd(client, "1*98*0*0*1*3*0*0", session="bk"))[1] == root
    assert (await _ussd(client, "1*98*0*0*1*3*0*0*2*1", session="bk"))[1] == "END ثبت شد"
    for page in (root, long1, long2, sub):
        assert len(page[4:]) <= 72


async def test_each_step_is_timed_per_operator(node: Any, menu_up: uuid.UUID) -> None:
    from prometheus_client import REGISTRY

    def count() -> float:
        name = "payam_ussd_step_duration_seconds_count"
        return REGISTRY.get_sample_value(name, {"operator": "mci"}) or 0.0

    client, _ = node
    before = count()
    await _ussd(client, session="lat")
    await _ussd(client, "2", session="lat")
    assert count() == before + 2


async def test_sessions_are_counted_per_agency_including_abandoned(
    node: Any, menu_up: uuid.UUID, pool: asyncpg.Pool
) -> None:
    from prometheus_client import REGISTRY

    from adapters.ussd.http_front import purge_idle_sessions

    def count(outcome: str) -> float:
        labels = {"agency": str(menu_up), "outcome": outcome}
        return REGISTRY.get_sample_value("payam_ussd_agency_sessions_total", labels) or 0.0

    client, services = node
    before = {o: count(o) for o in ("started", "completed", "abandoned")}
    await _ussd(client, session="ag1")
    await _ussd(client, "2", session="ag1")  # hours: the dialog completes
    await _ussd(client, session="ag2")  # left open
    await pool.execute(
        "UPDATE ussd_sessions SET updated_at = updated_at - interval '1 hour' "
        "WHERE session_id IN ('ag1', 'ag2')"
    )
    await purge_idle_sessions(services.store, 180)
    assert count("started") == before["started"] + 2
    assert count("completed") == before["completed"] + 1
    assert count("abandoned") == before["abandoned"] + 1  # ag2 only: ag1 had ended
    assert await pool.fetchval("SELECT count(*) FROM ussd_sessions") == 0
