"""Network-initiated USSD push (POST /v1/ussd/pushes) over real TCP SMPP to the SMSC simulator
and real PostgreSQL: USSN delivered, USSR answered, a phone busy in another USSD dialog (MAP
ussd-Busy in network_error_code) and a phone that never confirms both fall back to one SMS
through the agency's send path, exactly once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from adapters.sms.simulator import SmscSimulator
from adapters.ussd.push_worker import ANSWER_RECEIVED, PushWorker
from gateway.config import Config
from gateway.numbering import Request
from gateway.sealing import Sealer
from gateway.services import Services
from gateway.store import Store
from tests.conftest import make_agency, make_key
from tests.sms_harness import gateway, sms_config, start_sim, wait_for
from tests.test_messages_api import Agency

PHONE = "989121234567"
MENU: dict[str, Any] = {
    "root": "main",
    "screens": {
        "main": {
            "kind": "menu",
            "text": "سازمان امور مالیاتی",
            "options": [{"label": "ساعات کاری", "next": "hours"}],
        },
        "hours": {"kind": "message", "text": "شنبه تا چهارشنبه ۸ تا ۱۶"},
    },
}
NOTICE = "هشدار: سیلاب در راه است؛ از رودخانه دور شوید."

Make = Callable[..., Awaitable[tuple[SmscSimulator, Services, Agency]]]


@pytest.fixture
async def push_gw(
    config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any
) -> AsyncIterator[Make]:
    """A simulator and a gateway (SMS runtime, SMPP USSD front, push worker) with an agency
    holding 404012 and *412#; ``push_timeout`` shortens the wait for a confirmation."""
    sims: list[SmscSimulator] = []

    async def make(push_timeout: float = 30.0) -> tuple[SmscSimulator, Services, Agency]:
        sim = await start_sim()
        sims.append(sim)
        base = sms_config(config, sim.port)
        cfg = replace(base, ussd=replace(base.ussd, push_timeout_seconds=push_timeout))
        services, client = await gateway(cfg, Store(pool), sealer, aiohttp_client)
        agency_id = await make_agency(services)
        a = await services.agencies.get(agency_id)
        await services.numbering.allocate(a, Request("shortcode", "404012"), actor="t")
        await services.numbering.allocate(a, Request("ussd_code", "*412#"), actor="t")
        await services.store.ussd.put_menu(agency_id, MENU, "t")
        agency = Agency(services, client, agency_id, await make_key(services, agency_id))

        async def bound() -> bool:
            return sim.bound > 0

        await wait_for(bound)
        return sim, services, agency

    yield make
    for sim in sims:
        await sim.stop()


async def _push(agency: Agency, **body: Any) -> tuple[int, dict[str, Any]]:
    resp = await agency.client.post(
        "/v1/ussd/pushes", json={"to": "09121234567", **body}, headers=agency.headers()
    )
    return resp.status, await resp.json(content_type=None)


async def _get(agency: Agency, push_id: str) -> dict[str, Any]:
    resp = await agency.client.get(f"/v1/ussd/pushes/{push_id}", headers=agency.headers())
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _until(agency: Agency, push_id: str, check: Callable[[dict[str, Any]], bool]) -> Any:
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen.update(await _get(agency, push_id))
        return check(seen)

    await wait_for(reached, timeout=20.0)
    return seen


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_notify_push_is_delivered_as_ussn(push_gw: Make) -> None:
    sim, _, agency = await push_gw()
    before = _count("payam_ussd_pushes_total", operator="mci", outcome="delivered")
    status, body = await _push(agency, text=NOTICE, client_ref="flood-1")
    assert status == 202, body
    assert body["status"] == "pending"
    assert body["service_code"] == "*412#"
    screen = await sim.ussd.next_screen(PHONE, 0)
    assert screen.op == 3  # USSN request (SMPP 3.4 §5.3.2.44)
    assert screen.push
    assert screen.text == NOTICE
    assert screen.service == "*412#"
    assert screen.data_coding == 8
    assert screen.its_session_info is not None
    assert screen.its_session_info & 0xFF == 0
    done = await _until(agency, body["id"], lambda p: p["status"] == "delivered")
    assert done["fallback"] == {"status": "none", "message_id": None, "error_code": None}
    assert done["operator"] == "mci"
    assert done["final_at"] is not None
    assert sim.received == []  # no SMS
    assert _count("payam_ussd_pushes_total", operator="mci", outcome="delivered") == before + 1


async def test_push_busy_falls_back_to_one_sms(push_gw: Make, pool: asyncpg.Pool) -> None:
    sim, services, agency = await push_gw()
    fallbacks = _count("payam_ussd_push_fallbacks_total", operator="mci", outcome="sms_queued")
    busy = _count("payam_ussd_pushes_total", operator="mci", outcome="busy")
    # The citizen is in another USSD dialog: dialled *412#, menu shown, not answered yet.
    await sim.ussd.dial(PHONE, "*412#", session=9)
    menu = await sim.ussd.next_screen(PHONE, 0)
    assert menu.op == 2
    assert not menu.end
    status, body = await _push(agency, text=NOTICE, fallback_text="سیلاب: از رودخانه دور شوید")
    assert status == 202, body
    done = await _until(agency, body["id"], lambda p: p["fallback"]["status"] == "queued")
    assert done["status"] == "busy"
    assert done["error_code"] == "ussd_busy"
    message_id = done["fallback"]["message_id"]

    async def sms_arrived() -> bool:
        return len(sim.received) == 1

    await wait_for(sms_arrived)
    sms = sim.received[0]
    assert (sms.source, sms.destination) == ("404012", PHONE)  # the agency's bound sender
    assert sms.text.startswith("سیلاب: از رودخانه دور شوید")
    code, message = await agency.get(message_id)
    assert code == 200
    assert message["client_ref"] == f"ussd-push:{body['id']}"
    assert len([s for s in sim.ussd.screens if s.push]) == 0  # the push was never shown
    assert _count("payam_ussd_pushes_total", operator="mci", outcome="busy") == busy + 1
    assert (
        _count("payam_ussd_push_fallbacks_total", operator="mci", outcome="sms_queued")
        == fallbacks + 1
    )
    # Exactly once: another node retrying the fallback, and the SMSC redelivering the busy
    # confirmation, create no second SMS.
    row = await services.store.ussd_pushes.get(agency.id, uuid.UUID(body["id"]))
    assert row is not None
    await PushWorker(services, {}, {}).fallback(replace(row, fallback="pending"))
    await sim.ussd.send(
        PHONE, "*412#", "", 19, (row.session_number or 0) << 8, network_error=b"\x03\x00\x48"
    )
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    assert (await _get(agency, body["id"]))["fallback"]["message_id"] == message_id
    # The citizen's own dialog goes on undisturbed.
    await sim.ussd.answer(PHONE, "1")
    end = await sim.ussd.next_screen(PHONE, 1)
    assert end.end
    assert end.text == "شنبه تا چهارشنبه ۸ تا ۱۶"


async def test_request_push_gets_the_citizens_answer(push_gw: Make) -> None:
    sim, _, agency = await push_gw()
    text = "آیا در محل سکونت خود هستید؟ ۱ بله ۲ خیر"
    status, body = await _push(agency, text=text, mode="request")
    assert status == 202, body
    screen = await sim.ussd.next_screen(PHONE, 0)
    assert screen.op == 2
    assert screen.push
    assert not screen.end
    await sim.ussd.answer(PHONE, "۱")
    done = await _until(agency, body["id"], lambda p: p["status"] == "answered")
    assert done["answer"] == "1"  # Persian digits normalised
    assert done["fallback"]["status"] == "none"
    closing = await sim.ussd.next_screen(PHONE, 1)
    assert closing.op == 17
    assert closing.end
    assert closing.text == ANSWER_RECEIVED
    assert sim.received == []


async def test_unconfirmed_push_times_out_and_falls_back(push_gw: Make, pool: asyncpg.Pool) -> None:
    sim, _, agency = await push_gw(push_timeout=1.0)
    sim.ussd.unreachable.add(PHONE)
    status, body = await _push(agency, text="Flood warning: leave the river bank.")
    assert status == 202, body
    done = await _until(agency, body["id"], lambda p: p["fallback"]["status"] == "queued")
    assert done["status"] == "timeout"
    assert done["error_code"] == "no_confirmation"

    async def sms_arrived() -> bool:
        return len(sim.received) == 1

    await wait_for(sms_arrived)
    assert sim.received[0].text.startswith("Flood warning: leave the river bank.")
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1


async def test_push_without_fallback_and_refusals(push_gw: Make) -> None:
    sim, services, agency = await push_gw()
    sim.ussd.busy.add(PHONE)
    status, body = await _push(agency, text=NOTICE, fallback_sms=False)
    assert status == 202, body
    done = await _until(agency, body["id"], lambda p: p["status"] == "busy")
    assert done["fallback"]["status"] == "off"
    assert sim.received == []
    # One screen at most: 73 Persian characters is one past the limit.
    status, problem = await _push(agency, text="ب" * 73)
    assert (status, problem["code"]) == (422, "message_too_long")
    status, problem = await _push(agency, text=NOTICE, mode="broadcast")
    assert (status, problem["code"]) == (422, "invalid_value")
    # An agency without a *4 code cannot push; another agency cannot read this push.
    other_id = await make_agency(services)
    other = Agency(services, agency.client, other_id, await make_key(services, other_id))
    status, problem = await _push(other, text=NOTICE)
    assert (status, problem["code"]) == (409, "no_ussd_code")
    resp = await other.client.get(f"/v1/ussd/pushes/{body['id']}", headers=other.headers())
    assert resp.status == 404
    assert json.loads(await resp.text())["code"] == "not_found"


async def test_test_key_push_never_reaches_the_operator(push_gw: Make) -> None:
    sim, services, agency = await push_gw()
    test_key = await make_key(services, agency.id, key_type="test")
    tester = Agency(services, agency.client, agency.id, test_key)
    status, body = await _push(tester, text=NOTICE)
    assert status == 202, body
    assert body["test"] is True
    done = await _until(tester, body["id"], lambda p: p["status"] == "delivered")
    assert done["error_code"] == "test"
    await asyncio.sleep(0.3)
    assert sim.ussd.screens == []
    assert sim.received == []


async def test_idempotency_key_makes_a_retried_push_one_push(
    push_gw: Make, pool: asyncpg.Pool
) -> None:
    _, _, agency = await push_gw()
    body = {"to": "09121234567", "text": NOTICE}

    async def post(b: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
        resp = await agency.client.post(
            "/v1/ussd/pushes", json=b, headers=agency.headers(**{"Idempotency-Key": key})
        )
        return resp.status, await resp.json(content_type=None)

    first = await post(body, "flood-42")
    assert first[0] == 202
    assert await post(body, "flood-42") == first  # the agency retried: same answer
    again = await asyncio.gather(*(post(body, "flood-43") for _ in range(4)))
    assert len({a[1]["id"] for a in again}) == 1  # concurrent retries agree
    status, problem = await post({**body, "text": "دیگر"}, "flood-42")
    assert (status, problem["code"]) == (409, "idempotency_key_reused")
    assert await pool.fetchval("SELECT count(*) FROM ussd_pushes") == 2
    await _until(agency, first[1]["id"], lambda p: p["status"] == "delivered")
