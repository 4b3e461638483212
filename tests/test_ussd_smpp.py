"""USSD over the SMPP front: the SMSC simulator on real TCP, the gateway's SMPP client, real
PostgreSQL. A phone dials through the simulator (deliver_sm, ussd_service_op 1), the gateway
answers with submit_sm op 2 / 17 (SMPP 3.4 §5.3.2.44) echoing its_session_info (§5.3.2.43)."""

from __future__ import annotations

from typing import Any

import asyncpg

from adapters.sms.simulator import SmscSimulator
from adapters.ussd.codec import UssdCodec
from adapters.ussd.sessions import UNKNOWN_CODE
from adapters.ussd.smpp_front import screen_octets
from gateway.numbering import Request
from gateway.services import Services
from tests.conftest import auth, make_agency
from tests.sms_harness import agency, sms, wait_for  # noqa: F401 (fixture)

PHONE = "989121234567"
MENU: dict[str, Any] = {
    "root": "main",
    "screens": {
        "main": {
            "kind": "menu",
            "text": "Tax office",
            "options": [
                {"label": "Hours", "next": "hours"},
                {"label": "Farsi", "next": "fa"},
            ],
        },
        "hours": {"kind": "message", "text": "Sat-Wed 8-16"},
        "fa": {
            "kind": "menu",
            "text": "سازمان امور مالیاتی",
            "options": [{"label": "ساعات کاری", "next": "fa_hours"}],
        },
        "fa_hours": {"kind": "message", "text": "شنبه تا چهارشنبه ۸ تا ۱۶"},
    },
}


async def _setup(sms: Any) -> tuple[SmscSimulator, Services, Any]:
    sim, services, client = await sms()
    agency_id = await make_agency(services)
    a = await services.agencies.get(agency_id)
    await services.numbering.allocate(a, Request("ussd_code", "*412#"), actor="t")
    issued = await services.credentials.create_admin_token(name="ops", role="admin", actor="t")
    resp = await client.put(
        f"/admin/v1/agencies/{agency_id}/ussd-menu", json=MENU, headers=auth(issued.value)
    )
    assert resp.status == 200, await resp.text()
    assert await services_bound(sim)
    return sim, services, client


async def services_bound(sim: SmscSimulator) -> bool:
    async def bound() -> bool:
        return sim.bound > 0

    await wait_for(bound)
    return True


def test_codec_session_info_bits() -> None:
    c = UssdCodec("standard")
    assert c.session_number(0x2A06) == 0x2A
    assert c.sequence(0x2A06) == 3
    assert c.reply_info(0x2A06, end=False, sequence=4) == 0x2A08
    assert c.reply_info(0x2A06, end=True, sequence=4) == 0x2A09
    assert c.reply_info(0x2A07, end=False) == 0x2A00
    assert screen_octets("abc") == (0, b"abc")
    assert screen_octets("سلام") == (8, "سلام".encode("utf-16-be"))


async def test_dial_answer_end(sms: Any) -> None:
    sim, _, _ = await _setup(sms)
    await sim.ussd.dial(PHONE, "*412#", session=0x2A)
    first = await sim.ussd.next_screen(PHONE, 0)
    assert first.op == 2
    assert not first.end
    assert first.its_session_info == 0x2A00
    assert first.text.startswith("Tax office")
    assert "1." in first.text
    assert first.data_coding == 0
    assert first.service == "*412#"
    await sim.ussd.answer(PHONE, "1")
    final = await sim.ussd.next_screen(PHONE, 1)
    assert final.op == 17
    assert final.end
    assert final.text == "Sat-Wed 8-16"
    assert final.its_session_info == 0x2A03  # sequence 1, end-of-session (SMPP 3.4 §5.3.2.43)
    assert sim.received == []  # USSD screens are not SMS


async def test_persian_screen_is_ucs2(sms: Any) -> None:
    sim, _, _ = await _setup(sms)
    await sim.ussd.dial(PHONE, "*412#", session=7)
    await sim.ussd.next_screen(PHONE, 0)
    await sim.ussd.answer(PHONE, "2")
    fa = await sim.ussd.next_screen(PHONE, 1)
    assert fa.op == 2
    assert fa.data_coding == 8
    assert fa.text.startswith("سازمان امور مالیاتی")
    await sim.ussd.answer(PHONE, "۱")  # Persian digit
    end = await sim.ussd.next_screen(PHONE, 2)
    assert end.end
    assert end.data_coding == 8
    assert end.text == "شنبه تا چهارشنبه ۸ تا ۱۶"
    assert end.its_session_info == 0x0705  # sequence 2, end bit


async def test_unknown_code_ends(sms: Any) -> None:
    sim, _, _ = await _setup(sms)
    await sim.ussd.dial(PHONE, "*499#", session=3)
    screen = await sim.ussd.next_screen(PHONE, 0)
    assert screen.end
    assert screen.text == UNKNOWN_CODE
    assert screen.its_session_info == 0x0301


async def test_plain_sms_still_goes_to_replies(sms: Any, pool: asyncpg.Pool) -> None:
    sim, services, client = await _setup(sms)
    await agency(services, client)
    await sim.inject_mo(PHONE, "404012", "salam")

    async def replies_in() -> bool:
        return await pool.fetchval("SELECT count(*) FROM replies") == 1

    await wait_for(replies_in)
    assert sim.ussd.screens == []
