"""USSD over the SMPP front, table-driven: the SMSC simulator on real TCP, the gateway's SMPP
client, real PostgreSQL. Every ``ussd_service_op`` value (SMPP 3.4 §5.3.2.44) arriving from the
SMSC, the ``its_session_info`` bits (§5.3.2.43: session number, our sequence number, end of
session), the vendor codecs chosen in config, repeated answers, a dialog continued by another
gateway node over the same database, two dialogs of one number on two agencies, Persian text at
and one past the page limit, and the idle timeout."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.sms import pdu
from adapters.sms.simulator import SimulatorError, SmscSimulator
from adapters.ussd.codec import CODECS, UssdCodec
from adapters.ussd.menus import BACK_LINE, MORE_LINE
from adapters.ussd.sessions import TIMED_OUT, UNKNOWN_CODE
from adapters.ussd.smpp_front import screen_octets
from gateway.audit_chain import write_new_signing_key
from gateway.config import Config, load_config
from gateway.letters.evidence import write_new_evidence_key
from gateway.numbering import Request
from gateway.sealing import Sealer, write_new_key
from gateway.services import Services
from gateway.store import Store
from tests.conftest import ROOT, make_agency
from tests.sms_harness import agency, gateway, start_sim, wait_for

PHONE = "989121234567"
AT_LIMIT = " ".join(["پیام"] * 14) + " آب"  # exactly ussd.page_chars_ucs2 (72)
PAST_LIMIT = AT_LIMIT + "ی"  # one past: paged
MENU: dict[str, Any] = {
    "root": "main",
    "screens": {
        "main": {
            "kind": "menu",
            "text": "Tax office",
            "options": [
                {"label": "Hours", "next": "hours"},
                {"label": "Farsi", "next": "fa"},
                {"label": "Limit", "next": "limits"},
            ],
        },
        "hours": {"kind": "message", "text": "Sat-Wed 8-16"},
        "fa": {
            "kind": "menu",
            "text": "سازمان امور مالیاتی",
            "options": [
                {"label": "ساعات کاری", "next": "fa_hours"},
                {"label": "نشانی", "next": "fa_address"},
            ],
        },
        "fa_hours": {"kind": "message", "text": "شنبه تا چهارشنبه ۸ تا ۱۶"},
        "fa_address": {"kind": "message", "text": "تهران، خیابان داور"},
        "limits": {
            "kind": "menu",
            "text": "Limits",
            "options": [{"label": "at", "next": "at"}, {"label": "past", "next": "past"}],
        },
        "at": {"kind": "message", "text": AT_LIMIT},
        "past": {"kind": "message", "text": PAST_LIMIT},
    },
}
OTHER_MENU: dict[str, Any] = {
    "root": "m",
    "screens": {
        "m": {"kind": "menu", "text": "Health", "options": [{"label": "Clinic", "next": "c"}]},
        "c": {"kind": "message", "text": "Clinic 8-14"},
    },
}

Node = tuple[SmscSimulator, Services, Any]
MakeNode = Callable[..., Awaitable[Node]]


def node_config(base: Config, sim_port: int, **ussd: str) -> Config:
    op = {
        "name": "mci",
        "prefixes": ["9"],
        "port": sim_port,
        "system_id": "payam",
        "password": "secret",
        "response_timeout_seconds": 2.0,
        "enquire_link_seconds": 5.0,
    }
    env = {
        "PAYAM_DATABASE_URL": base.database.url,
        "PAYAM_SECURITY_MASTER_KEY_FILE": base.security.master_key_file,
        "PAYAM_OPERATORS": json.dumps([op]),
        "PAYAM_SMS_DISPATCH_WORKERS": "1",
        **{f"PAYAM_USSD_{k.upper()}": v for k, v in ussd.items()},
    }
    return load_config(None, env=env)


@pytest.fixture
async def ussd_node(
    config: Config, pool: asyncpg.Pool, database_url: str, sealer: Sealer, aiohttp_client: Any
) -> AsyncIterator[MakeNode]:
    """``make(sim=None, menus=True, **ussd)``: a gateway node (own pool, services, SMS runtime
    and SMPP USSD front) bound to ``sim`` (a new simulator by default); the first node also
    creates agency *412# with MENU and *413# with OTHER_MENU."""
    sims: list[SmscSimulator] = []
    pools: list[asyncpg.Pool] = []
    clients: list[Any] = []

    async def make(
        sim: SmscSimulator | None = None,
        sim_opts: dict[str, Any] | None = None,
        menus: bool = True,
        **ussd: str,
    ) -> Node:
        if sim is None:
            sim = await start_sim(**(sim_opts or {}))
            sims.append(sim)
        own = await asyncpg.create_pool(database_url, min_size=1, max_size=8)
        assert own is not None
        pools.append(own)
        cfg = node_config(config, sim.port, **ussd)
        services, client = await gateway(cfg, Store(own), sealer, aiohttp_client)
        clients.append(client)
        if menus:
            for code, menu in (("*412#", MENU), ("*413#", OTHER_MENU)):
                agency_id = await make_agency(services)
                a = await services.agencies.get(agency_id)
                await services.numbering.allocate(a, Request("ussd_code", code), actor="t")
                await services.store.ussd.put_menu(agency_id, menu, "t")
        return sim, services, client

    yield make
    for client in clients:  # the apps (and their SMPP runtimes) before their pools
        await client.close()
    for sim in sims:
        await sim.stop()
    for p in pools:
        await p.close()


async def _bound(sim: SmscSimulator, n: int = 1) -> None:
    async def check() -> bool:
        return sim.bound == n

    await wait_for(check)


# -- its_session_info bits (§5.3.2.43), no wire --------------------------------------------


@pytest.mark.parametrize(
    ("info", "session", "sequence", "end"),
    [
        (0x0000, 0, 0, False),
        (0x2A00, 0x2A, 0, False),
        (0x2A06, 0x2A, 3, False),
        (0x2A07, 0x2A, 3, True),
        (0xFFFF, 0xFF, 127, True),
        (0x01FE, 0x01, 127, False),
    ],
)
def test_session_info_fields(info: int, session: int, sequence: int, end: bool) -> None:
    c = UssdCodec("standard")
    assert (c.session_number(info), c.sequence(info), bool(info & 1)) == (session, sequence, end)


@pytest.mark.parametrize(
    ("received", "end", "sequence", "sent"),
    [
        (0x2A00, False, 0, 0x2A00),  # first screen: session echoed, sequence 0
        (0x2A00, False, 1, 0x2A02),  # our sequence in bits 7..1
        (0x2A02, True, 2, 0x2A05),  # end-of-session only on the final screen
        (0x2A07, False, 0, 0x2A00),  # the SMSC's end bit and sequence are never echoed
        (0x2A00, False, 128, 0x2A00),  # mod 128
    ],
)
def test_reply_info(received: int, end: bool, sequence: int, sent: int) -> None:
    assert UssdCodec("standard").reply_info(received, end, sequence) == sent


def test_limit_texts() -> None:
    assert (len(AT_LIMIT), len(PAST_LIMIT)) == (72, 73)


def test_screen_octets() -> None:
    assert screen_octets("abc") == (0, b"abc")
    assert screen_octets("سلام") == (8, "سلام".encode("utf-16-be"))
    assert screen_octets(AT_LIMIT) == (8, AT_LIMIT.encode("utf-16-be"))  # 144 octets, one PDU


# -- every op value arriving from the SMSC, per codec --------------------------------------

# What the front does with each ussd_service_op in a deliver_sm: "screen" = a dialog screen
# goes back; "ack" = acknowledged, nothing sent; "reject" = ESME_RX_R_APPN (not redelivered).
OPS_IN: list[tuple[str, int, str]] = [
    ("standard", 0, "reject"),  # PSSD indication: phase-1 USSD, not offered
    ("standard", 1, "screen"),  # PSSR indication: the user dialled
    ("standard", 2, "reject"),  # USSR request: ours to send
    ("standard", 3, "reject"),  # USSN request: ours to send
    ("standard", 16, "reject"),  # PSSD response
    ("standard", 17, "reject"),  # PSSR response: ours to send
    ("standard", 18, "screen"),  # USSR confirm: an answer (here to no dialog: timed out)
    ("standard", 19, "ack"),  # USSN confirm for no waiting push: taken and dropped
    ("standard", 32, "reject"),  # vendor range, not in this codec
    ("standard", 33, "reject"),
    ("standard", 34, "reject"),
    ("standard", 35, "reject"),
    ("vendor_ops", 1, "reject"),  # this vendor dials with 32
    ("vendor_ops", 18, "reject"),
    ("vendor_ops", 32, "screen"),
    ("vendor_ops", 35, "screen"),
    ("vendor_ops", 19, "ack"),
    ("vendor_session_tag", 1, "screen"),
    ("vendor_session_tag", 17, "reject"),
]


@pytest.mark.parametrize(("codec", "op", "outcome"), OPS_IN)
async def test_each_op_from_the_smsc(
    ussd_node: MakeNode, codec: str, op: int, outcome: str
) -> None:
    sim, _, _ = await ussd_node(
        sim_opts={"redeliver_attempts": 0, "ussd_codec": codec},
        menus=op in (1, 32),
        smpp_codecs=f"mci={codec}",
    )
    await _bound(sim)
    if outcome == "reject":
        with pytest.raises(SimulatorError):
            await sim.ussd.send(PHONE, "*412#", "*412#", op, 0x1100)
        assert sim.deliver_errors == [pdu.ESME_RX_R_APPN]
        await asyncio.sleep(0.2)
        assert sim.ussd.screens == []
        return
    await sim.ussd.send(PHONE, "*412#", "*412#", op, 0x1100)
    assert sim.deliver_errors == []
    if outcome == "ack":
        await asyncio.sleep(0.2)
        assert sim.ussd.screens == []
        return
    screen = await sim.ussd.next_screen(PHONE, 0)
    c = CODECS[codec]
    assert screen.its_session_info is not None
    assert c.session_number(screen.its_session_info) == 0x11
    if op == c.ussr_confirm:
        assert screen.op == c.pssr_response
        assert screen.text == TIMED_OUT
    else:
        assert screen.op == c.ussr_request
        assert screen.text.startswith("Tax office")


@pytest.mark.parametrize("codec", ["standard", "vendor_session_tag", "vendor_ops"])
@pytest.mark.parametrize("session", [0, 1, 0x2A, 255])
async def test_dialog_per_codec_and_session_number(
    ussd_node: MakeNode, codec: str, session: int
) -> None:
    """Dial, answer, end; the session number and our sequence numbers come back in the
    codec's place (its_session_info, or vendor TLV 0x1403), the end bit only at the end."""
    sim, _, _ = await ussd_node(sim_opts={"ussd_codec": codec}, smpp_codecs=f"mci={codec}")
    await _bound(sim)
    c = CODECS[codec]
    await sim.ussd.dial(PHONE, "*412#", session=session)
    first = await sim.ussd.next_screen(PHONE, 0)
    assert (first.op, first.end, first.its_session_info) == (c.ussr_request, False, session << 8)
    assert first.service == "*412#"
    assert first.data_coding == 0
    await sim.ussd.answer(PHONE, "2")
    fa = await sim.ussd.next_screen(PHONE, 1)
    assert (fa.op, fa.its_session_info, fa.data_coding) == (c.ussr_request, session << 8 | 2, 8)
    assert fa.text.startswith("سازمان امور مالیاتی")
    await sim.ussd.answer(PHONE, "۱")  # Persian digit
    end = await sim.ussd.next_screen(PHONE, 2)
    assert (end.op, end.end, end.its_session_info) == (c.pssr_response, True, session << 8 | 5)
    assert end.text == "شنبه تا چهارشنبه ۸ تا ۱۶"
    assert sim.received == []  # USSD screens are not SMS


# -- repeats, nodes, concurrency, limits, timeout -----------------------------------------


async def test_repeated_answer_is_not_a_new_answer(ussd_node: MakeNode, pool: asyncpg.Pool) -> None:
    sim, _, _ = await ussd_node()
    await _bound(sim)
    await sim.ussd.dial(PHONE, "*412#", session=5)
    await sim.ussd.next_screen(PHONE, 0)
    await sim.ussd.send(PHONE, "*412#", "2", 18, 0x0500)  # answers screen 0 with "2"
    fa = await sim.ussd.next_screen(PHONE, 1)
    assert fa.its_session_info == 0x0502
    # The SMSC redelivers the same answer (same session info, sequence of screen 0): the same
    # screen again, not option 2 of the Farsi menu.
    await sim.ussd.send(PHONE, "*412#", "2", 18, 0x0500)
    again = await sim.ussd.next_screen(PHONE, 2)
    assert (again.text, again.its_session_info, again.end) == (fa.text, 0x0502, False)
    row = await pool.fetchrow("SELECT history FROM ussd_sessions WHERE session_id = '5'")
    assert list(row["history"]) == ["2"]
    # The real next answer (to screen 1) moves on: option 2 there.
    await sim.ussd.send(PHONE, "*412#", "2", 18, 0x0502)
    end = await sim.ussd.next_screen(PHONE, 3)
    assert (end.text, end.end) == ("تهران، خیابان داور", True)
    # The same text to a *new* screen is an answer, not a repeat (sequence differs).
    await sim.ussd.dial(PHONE, "*412#", session=6)
    await sim.ussd.next_screen(PHONE, 4)
    await sim.ussd.send(PHONE, "*412#", "3", 18, 0x0600)
    await sim.ussd.next_screen(PHONE, 5)
    await sim.ussd.send(PHONE, "*412#", "1", 18, 0x0602)
    at = await sim.ussd.next_screen(PHONE, 6)
    assert at.text == AT_LIMIT


async def test_a_dialog_continues_on_another_gateway_node(ussd_node: MakeNode) -> None:
    sim, _, first = await ussd_node()
    await _bound(sim)
    await sim.ussd.dial(PHONE, "*412#", session=0x33)
    assert (await sim.ussd.next_screen(PHONE, 0)).text.startswith("Tax office")
    # A second node (own pool, engine and SMPP bind) over the same database; the first leaves,
    # so the SMSC can only deliver the answer to the second.
    await ussd_node(sim=sim, menus=False)
    await _bound(sim, 2)
    await first.close()
    await _bound(sim, 1)
    await sim.ussd.answer(PHONE, "2")
    fa = await sim.ussd.next_screen(PHONE, 1)
    assert fa.text.startswith("سازمان امور مالیاتی")
    assert fa.its_session_info == 0x3302
    await sim.ussd.answer(PHONE, "1")
    assert (await sim.ussd.next_screen(PHONE, 2)).text == "شنبه تا چهارشنبه ۸ تا ۱۶"


async def test_a_dialog_continues_in_another_gateway_process(
    ussd_node: MakeNode, config: Config, tmp_path: Path
) -> None:
    """The second node is a real ``payam serve`` process over the same database."""
    sim, _, first = await ussd_node()
    await _bound(sim)
    await sim.ussd.dial(PHONE, "*412#", session=0x44)
    assert (await sim.ussd.next_screen(PHONE, 0)).text.startswith("Tax office")
    write_new_key(str(tmp_path / "master.key"))
    write_new_evidence_key(tmp_path / "evidence.key")
    write_new_signing_key(tmp_path / "audit-signing.key")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    op = {"name": "mci", "prefixes": ["9"], "port": sim.port, "system_id": "payam"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYAM_")}
    env |= {
        "PAYAM_DATABASE_URL": config.database.url,
        "PAYAM_SECURITY_MASTER_KEY_FILE": str(tmp_path / "master.key"),
        "PAYAM_KARTPOOSHE_EVIDENCE_KEY_FILE": str(tmp_path / "evidence.key"),
        "PAYAM_SECURITY_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "audit-signing.key"),
        "PAYAM_OPERATORS": json.dumps([op | {"password": "secret"}]),
        "PAYAM_HTTP_PORT": str(port),
        "PAYAM_LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "serve", cwd=ROOT, env=env
    )
    try:
        await _bound(sim, 2)
        await first.close()  # the first node leaves: only the process can take the answer
        await _bound(sim, 1)
        await sim.ussd.answer(PHONE, "2")
        fa = await sim.ussd.next_screen(PHONE, 1)
        assert fa.text.startswith("سازمان امور مالیاتی")
        assert fa.its_session_info == 0x4402
        await sim.ussd.answer(PHONE, "2")
        end = await sim.ussd.next_screen(PHONE, 2)
        assert (end.text, end.end, end.its_session_info) == ("تهران، خیابان داور", True, 0x4405)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=30)


async def test_two_dialogs_of_one_number_on_two_agencies(ussd_node: MakeNode) -> None:
    sim, _, _ = await ussd_node()
    await _bound(sim)
    await asyncio.gather(
        sim.ussd.send(PHONE, "*412#", "*412#", 1, 0x0100),
        sim.ussd.send(PHONE, "*413#", "*413#", 1, 0x0200),
    )
    await sim.ussd.next_screen(PHONE, 1)
    by_service = {s.service: s for s in sim.ussd.screens}
    assert by_service["*412#"].text.startswith("Tax office")
    assert by_service["*413#"].text.startswith("Health")
    await asyncio.gather(
        sim.ussd.send(PHONE, "*413#", "1", 18, 0x0200),
        sim.ussd.send(PHONE, "*412#", "1", 18, 0x0100),
    )
    await sim.ussd.next_screen(PHONE, 3)
    ends = {s.service: s for s in sim.ussd.screens[2:]}
    assert (ends["*412#"].text, ends["*412#"].its_session_info) == ("Sat-Wed 8-16", 0x0103)
    assert (ends["*413#"].text, ends["*413#"].its_session_info) == ("Clinic 8-14", 0x0203)


async def test_persian_text_at_and_one_past_the_page_limit(ussd_node: MakeNode) -> None:
    sim, _, _ = await ussd_node()
    await _bound(sim)
    await sim.ussd.dial(PHONE, "*412#", session=1)
    await sim.ussd.next_screen(PHONE, 0)
    await sim.ussd.answer(PHONE, "3")
    await sim.ussd.next_screen(PHONE, 1)
    await sim.ussd.answer(PHONE, "1")
    at = await sim.ussd.next_screen(PHONE, 2)
    assert (at.text, at.end, at.data_coding) == (AT_LIMIT, True, 8)  # one screen, 144 octets
    await sim.ussd.dial(PHONE, "*412#", session=2)
    await sim.ussd.next_screen(PHONE, 3)
    await sim.ussd.answer(PHONE, "3")
    await sim.ussd.next_screen(PHONE, 4)
    await sim.ussd.answer(PHONE, "2")
    page1 = await sim.ussd.next_screen(PHONE, 5)
    assert not page1.end
    assert page1.text.endswith(MORE_LINE)
    assert len(page1.text) <= 72
    await sim.ussd.answer(PHONE, "98")
    page2 = await sim.ussd.next_screen(PHONE, 6)
    assert page2.end
    assert page2.text.endswith(BACK_LINE)
    assert len(page2.text) <= 72
    lines = page1.text.split("\n")[:-1] + page2.text.split("\n")[:-1]  # without nav lines
    assert " ".join(lines) == PAST_LIMIT


async def test_idle_timeout_over_smpp(ussd_node: MakeNode) -> None:
    sim, _, _ = await ussd_node(idle_timeout_seconds="1")
    await _bound(sim)
    await sim.ussd.dial(PHONE, "*412#", session=9)
    await sim.ussd.next_screen(PHONE, 0)
    await asyncio.sleep(1.6)
    await sim.ussd.answer(PHONE, "1")
    late = await sim.ussd.next_screen(PHONE, 1)
    assert (late.text, late.end, late.op) == (TIMED_OUT, True, 17)
    # Dialling again after the timeout, with the same session number, starts over.
    await sim.ussd.dial(PHONE, "*412#", session=9)
    assert (await sim.ussd.next_screen(PHONE, 2)).text.startswith("Tax office")


async def test_unknown_code_ends(ussd_node: MakeNode) -> None:
    sim, _, _ = await ussd_node()
    await _bound(sim)
    await sim.ussd.dial(PHONE, "*499#", session=3)
    screen = await sim.ussd.next_screen(PHONE, 0)
    assert (screen.end, screen.text, screen.its_session_info) == (True, UNKNOWN_CODE, 0x0301)


async def test_plain_sms_still_goes_to_replies(ussd_node: MakeNode, pool: asyncpg.Pool) -> None:
    sim, services, client = await ussd_node()
    await _bound(sim)
    await agency(services, client)
    await sim.inject_mo(PHONE, "404012", "salam")

    async def replies_in() -> bool:
        return await pool.fetchval("SELECT count(*) FROM replies") == 1

    await wait_for(replies_in)
    assert sim.ussd.screens == []


def test_codec_config_names_the_key() -> None:
    from gateway.config import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(None, env={"PAYAM_USSD_SMPP_CODECS": "mci=huawei"})
    assert info.value.key == "ussd.smpp_codecs"
    cfg = load_config(None, env={"PAYAM_USSD_SMPP_CODECS": "mci=vendor_ops,rightel=standard"})
    assert cfg.ussd.smpp_codec_map() == {"mci": "vendor_ops", "rightel": "standard"}
    assert replace(CODECS["vendor_ops"], name="x").pssr_indication == 32
