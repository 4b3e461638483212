"""Letters end to end over real HTTP, SMPP and PostgreSQL: deposit in an e-box peer (retries,
permanent failures, attempts used up), the SMS notice from the agency's 4040 number through
the SMSC simulator (no link) and the "notified" event, opened/replied events from the e-box
(idempotent, refused when wrong), replies listed per agency, deemed delivery with an injected
clock, one-time codes, and the whole chain verified."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from adapters.sms.simulator import SmscSimulator
from gateway.api.app import build_app
from gateway.config import Config, load_config
from gateway.letters.evidence import verify_receipt
from gateway.letters.runtime import letters_context, sample_letter_states
from gateway.numbering import Request
from gateway.runtime import sms_context
from gateway.sealing import Sealer
from gateway.services import Services, build_services
from gateway.store import Store
from tests.conftest import make_agency, make_key
from tests.letters_harness import (
    EBOX_TO_GW,
    PDF,
    PERSON,
    PNG,
    EboxPeer,
    LetterAgency,
    letters_env,
    metadata,
)
from tests.sealed import opened, opened_one
from tests.sms_harness import start_sim, wait_for

MSISDN = "+989121234567"


class World:
    def __init__(self, sim: SmscSimulator, svc: Services, client: Any, peer: EboxPeer) -> None:
        self.sim, self.svc, self.client, self.peer = sim, svc, client, peer

    async def agency(self, shortcode: str = "404012", **fields: Any) -> LetterAgency:
        agency_id = await make_agency(self.svc, **fields)
        a = await self.svc.agencies.get(agency_id)
        await self.svc.numbering.allocate(a, Request("shortcode", shortcode), actor="t")
        return LetterAgency(self.client, agency_id, await make_key(self.svc, agency_id))

    async def letter(self, letter_id: str) -> dict[str, Any]:
        row = await self.svc.store.pool.fetchrow(
            "SELECT status, notice_state, attempts, last_error FROM letters WHERE id = $1",
            uuid.UUID(letter_id),
        )
        assert row is not None
        return dict(row)

    async def event_types(self, letter_id: str) -> list[str]:
        rows = await self.svc.store.pool.fetch(
            "SELECT type FROM letter_events WHERE letter_id = $1 ORDER BY seq", uuid.UUID(letter_id)
        )
        return [r["type"] for r in rows]


@pytest.fixture
async def world(
    config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[World]]]:
    sims: list[SmscSimulator] = []
    peers: list[EboxPeer] = []

    async def make(**env: str) -> World:
        sim = await start_sim()
        sims.append(sim)
        peer = EboxPeer()
        peers.append(peer)
        base = await peer.start()
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
                    "PAYAM_KARTPOOSHE_BASE_URL": base,
                },
                **env,
            ),
        )
        svc = build_services(cfg, Store(pool), sealer)
        app = build_app(svc)
        app.cleanup_ctx.append(sms_context(svc))
        app.cleanup_ctx.append(letters_context(svc))
        client = await aiohttp_client(app)
        peer.gateway_url = str(client.make_url("")).rstrip("/")
        await svc.store.messages.put_citizens([(PERSON, MSISDN)])
        return World(sim, svc, client, peer)

    yield make
    for sim in sims:
        await sim.stop()
    for peer in peers:
        await peer.stop()


def event(letter_id: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "letter_id": letter_id,
        "type": kind,
        "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "actor": {"kind": "owner"},
        **extra,
    }


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_deposit_notice_open_reply_and_the_whole_chain(
    world: Callable[..., Awaitable[World]],
) -> None:
    w = await world()
    tax = await w.agency(name_fa="سازمان امور مالیاتی کشور")
    other = await w.agency("404013")
    opened_before = metric("payam_letters_time_to_open_seconds_count")
    status, letter = await tax.send(
        metadata(), [("برگ.pdf", "application/pdf", PDF), ("scan.png", "image/png", PNG)]
    )
    assert status == 202, letter
    lid, tracking = letter["id"], letter["tracking_number"]

    # Deposited in the e-box with the protocol's metadata and the files in order.
    await wait_for(lambda: _status_in(w, lid, {"deposited", "notified"}))
    meta = w.peer.deposits[lid]
    assert meta["tracking_number"] == tracking
    assert meta["recipient"] == {"kind": "person", "id": PERSON}
    assert meta["agency"]["name_fa"] == "سازمان امور مالیاتی کشور"
    assert meta["content_sha256"] == letter["content_sha256"]
    assert [d for _, d in w.peer.files[lid]] == [PDF, PNG]

    # The SMS notice: from the agency's own 4040 number, Persian, tracking number, no link.
    await wait_for(lambda: _status_in(w, lid, {"notified"}))
    notice = await opened_one(
        w.svc.store,
        "SELECT m.id, m.data_key, m.body_sealed, m.sender, m.recipient, m.body, m.status "
        "FROM messages m "
        "JOIN letters l ON l.notice_message_id = m.id WHERE l.id = $1",
        uuid.UUID(lid),
    )
    assert notice["sender"] == "404012"
    assert notice["recipient"] == MSISDN
    assert notice["status"] == "delivered"
    assert tracking in notice["body"]
    assert "سازمان امور مالیاتی کشور" in notice["body"]
    assert not re.search(r"https?://|www\.|\b[\w-]+\.(ir|com|org|net)\b", notice["body"])
    received = [m for m in w.sim.received if tracking in m.text]
    assert received, "the notice went out over SMPP"
    assert received[0].source == "404012"

    # Opened, then the same event again (idempotent), then a new event id (first opening only).
    opened = event(lid, "opened")
    assert await w.peer.send_event(opened) == 204
    assert await w.peer.send_event(opened) == 204
    assert await w.peer.send_event(event(lid, "opened")) == 204
    assert (await w.event_types(lid)).count("opened") == 1
    assert metric("payam_letters_time_to_open_seconds_count") == opened_before + 1

    # A reply with text and a PNG; listed for the agency, not for another agency.
    reply = event(
        lid,
        "replied",
        reply={
            "reply_id": "r-1",
            "text": "اعتراض دارم؛ مدارک پیوست است.",
            "attachments": [
                {
                    "name": "madrak.png",
                    "content_type": "image/png",
                    "data_base64": base64.b64encode(PNG).decode(),
                }
            ],
        },
    )
    assert await w.peer.send_event(reply) == 204
    assert await w.peer.send_event(reply) == 204
    status, page = await tax.get("/v1/letters/replies")
    assert status == 200
    assert [r["reply_id"] for r in page["replies"]] == ["r-1"]
    assert page["replies"][0]["tracking_number"] == tracking
    assert page["replies"][0]["attachments"][0]["content_type"] == "image/png"
    status, page2 = await tax.get(f"/v1/letters/replies?after={page['next_cursor']}")
    assert page2["replies"] == []
    assert (await other.get("/v1/letters/replies"))[1]["replies"] == []

    status, got = await tax.get(f"/v1/letters/{lid}")
    assert got["status"] == "replied"
    assert [e["type"] for e in got["evidence"]] == [
        "accepted",
        "deposited",
        "notified",
        "opened",
        "replied",
    ]
    chain = got["evidence"]
    for prev, nxt in itertools.pairwise(chain):
        assert nxt["prev_sha256"] == prev["event_sha256"]
    _, receipt = await tax.get(f"/v1/letters/{lid}/receipt")
    assert verify_receipt(receipt) == [e["type"] for e in chain]


async def _status_in(w: World, lid: str, states: set[str]) -> bool:
    return (await w.letter(lid))["status"] in states


async def test_retries_then_deposits_and_the_e_box_sees_one_letter(
    world: Callable[..., Awaitable[World]],
) -> None:
    w = await world()
    w.peer.fail_next = [503, 500, 429]
    tax = await w.agency()
    _, letter = await tax.send(metadata(notify_sms=False))
    await wait_for(lambda: _status_in(w, letter["id"], {"deposited"}))
    row = await w.letter(letter["id"])
    assert row["attempts"] == 3
    assert w.peer.calls == 4
    assert list(w.peer.deposits) == [letter["id"]]
    assert await w.event_types(letter["id"]) == ["accepted", "deposited"]
    await sample_letter_states(w.svc)
    assert metric("payam_letters", agency=str(tax.id), outcome="deposited") == 1


async def test_permanent_refusal_and_attempts_used_up_are_final(
    world: Callable[..., Awaitable[World]],
) -> None:
    w = await world(PAYAM_KARTPOOSHE_MAX_ATTEMPTS="3")
    tax = await w.agency()
    w.peer.fail_next = [422]
    _, refused = await tax.send(metadata(notify_sms=False))
    await wait_for(lambda: _status_in(w, refused["id"], {"failed"}))
    w.peer.fail_next = [503] * 10
    _, gave_up = await tax.send(metadata(notify_sms=False, subject="دوم"))
    await wait_for(lambda: _status_in(w, gave_up["id"], {"failed"}))
    assert (await w.letter(gave_up["id"]))["attempts"] == 3
    _, got = await tax.get(f"/v1/letters/{refused['id']}")
    assert got["status"] == "failed"
    assert got["failed_at"] is not None
    assert [e["type"] for e in got["evidence"]] == ["accepted", "failed"]
    assert got["evidence"][1]["detail"]["ebox_status"] == 422
    _, got = await tax.get(f"/v1/letters/{gave_up['id']}")
    assert got["evidence"][1]["detail"]["reason"].startswith("gave_up")
    await asyncio.sleep(1.0)  # nothing more happens to a final letter
    assert (await w.letter(gave_up["id"]))["attempts"] == 3


async def test_events_are_checked(world: Callable[..., Awaitable[World]]) -> None:
    w = await world()
    tax = await w.agency()
    _, no_reply = await tax.send(metadata(reply_allowed=False, notify_sms=False))
    await wait_for(lambda: _status_in(w, no_reply["id"], {"deposited"}))
    lid = no_reply["id"]
    assert await w.peer.send_event(event(lid, "opened"), token="wrong") == 401
    assert await w.peer.send_event(event(str(uuid.uuid4()), "opened")) == 404
    assert await w.peer.send_event(event(lid, "closed")) == 422
    assert await w.peer.send_event({**event(lid, "opened"), "actor": {"kind": "x"}}) == 422
    replied = event(lid, "replied", reply={"reply_id": "r", "text": "سلام"})
    assert await w.peer.send_event(replied) == 422  # reply_not_allowed
    # A refused event is not remembered: the e-box may not resend it, but nothing was applied.
    assert await w.event_types(lid) == ["accepted", "deposited"]
    bad_file = event(
        lid,
        "replied",
        reply={
            "reply_id": "r2",
            "text": "x",
            "attachments": [
                {
                    "name": "a.exe",
                    "content_type": "application/pdf",
                    "data_base64": base64.b64encode(b"MZ..").decode(),
                }
            ],
        },
    )
    assert await w.peer.send_event(bad_file) == 422


async def test_deemed_delivery_after_days_with_an_injected_clock_and_on_open(
    world: Callable[..., Awaitable[World]],
) -> None:
    w = await world()
    tax = await w.agency()
    _, after = await tax.send(metadata(notify_sms=False, deemed_delivery={"after_days": 3}))
    _, on_open = await tax.send(metadata(notify_sms=False, deemed_delivery="on_open", subject="۲"))
    await wait_for(lambda: _status_in(w, after["id"], {"deposited"}))
    await wait_for(lambda: _status_in(w, on_open["id"], {"deposited"}))
    deposited = await w.svc.store.pool.fetchval(
        "SELECT deposited_at FROM letters WHERE id = $1", uuid.UUID(after["id"])
    )
    life = w.svc.letters.lifecycle
    life.clock = lambda: deposited + timedelta(days=3) - timedelta(seconds=1)
    await life.deem_due()
    assert "deemed_delivered" not in await w.event_types(after["id"])
    life.clock = lambda: deposited + timedelta(days=3, seconds=1)
    await life.deem_due()
    await life.deem_due()  # a second run adds nothing
    assert await w.event_types(after["id"]) == ["accepted", "deposited", "deemed_delivered"]
    assert "deemed_delivered" not in await w.event_types(on_open["id"])  # waits for opening
    _, got = await tax.get(f"/v1/letters/{after['id']}")
    assert got["deemed_delivered_at"] is not None
    assert got["evidence"][2]["detail"]["days"] == 3
    assert await w.peer.send_event(event(on_open["id"], "opened")) == 204
    assert await w.event_types(on_open["id"]) == [
        "accepted",
        "deposited",
        "opened",
        "deemed_delivered",
    ]


async def test_one_time_codes(world: Callable[..., Awaitable[World]]) -> None:
    w = await world(PAYAM_KARTPOOSHE_OTP_MAX_PER_HOUR="2")
    status, body = await w.peer.ask_otp(PERSON, "482913")
    assert (status, body) == (202, {"status": "sent"})
    assert MSISDN not in json.dumps(body)
    await wait_for(lambda: _otp_delivered(w, "482913"))
    (row,) = [
        r
        for r in await opened(
            w.svc.store,
            "SELECT id, data_key, body_sealed, sender, recipient, body, priority FROM messages",
        )
        if "482913" in r["body"]
    ]
    assert row["sender"] == "404000"
    assert row["recipient"] == MSISDN
    assert "کارپوشه" in row["body"]
    assert "Kartpooshe" in row["body"]
    assert "http" not in row["body"]
    assert (await w.peer.ask_otp(PERSON, "111111"))[0] == 202
    status, body = await w.peer.ask_otp(PERSON, "222222")
    assert (status, body["code"]) == (429, "too_many_codes")
    status, body = await w.peer.ask_otp("0076229646", "123456")
    assert (status, body["code"]) == (422, "invalid_national_code")
    status, body = await w.peer.ask_otp("1234567891", "123456")
    assert (status, body["code"]) == (404, "unknown_citizen")
    status, body = await w.peer.ask_otp(PERSON, "123456", token=EBOX_TO_GW + "x")
    assert (status, body["code"]) == (401, "unauthorised")


async def _otp_delivered(w: World, code: str) -> bool:
    return any(code in m.text for m in w.sim.received)


async def test_a_letter_by_mail_travels_to_the_e_box(
    world: Callable[..., Awaitable[World]], admin_token: str
) -> None:
    """The runtime serves SMTP ingestion when kartpooshe.smtp_port is set; a mailed letter is
    deposited like any other."""
    import smtplib
    import socket
    import ssl
    from email import policy as email_policy
    from email.message import EmailMessage

    from tests.conftest import auth

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    w = await world(PAYAM_KARTPOOSHE_SMTP_PORT=str(port))
    tax = await w.agency()
    await w.client.patch(
        f"/admin/v1/agencies/{tax.id}/letters/settings",
        json={"from_addresses": ["oa@tax.gov.ir"]},
        headers=auth(admin_token),
    )
    resp = await w.client.post(
        f"/admin/v1/agencies/{tax.id}/letters/smtp-credentials", headers=auth(admin_token)
    )
    cred = await resp.json()
    msg = EmailMessage()
    msg["From"] = "oa@tax.gov.ir"
    msg["To"] = f"{PERSON}@ebox.test.ir"
    msg["Subject"] = "ابلاغیه"
    msg.set_content("متن نامه")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="n.pdf")

    def send() -> tuple[int, bytes]:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.starttls(context=ctx)
            s.login(cred["username"], cred["password"])
            s.mail("oa@tax.gov.ir")
            s.rcpt(f"{PERSON}@ebox.test.ir")
            return s.data(msg.as_bytes(policy=email_policy.SMTP))

    code, text = await asyncio.to_thread(send)
    assert code == 250, text
    tracking = re.search(rb"KP-\d{4}-\d{4}-\d{4}", text)
    assert tracking is not None
    lid = str(
        await w.svc.store.pool.fetchval(
            "SELECT id FROM letters WHERE tracking_number = $1", tracking.group().decode()
        )
    )
    await wait_for(lambda: _status_in(w, lid, {"deposited", "notified"}))
    assert w.peer.deposits[lid]["subject"] == "ابلاغیه"
    assert [d for _, d in w.peer.files[lid]] == [PDF]


async def test_test_keys_never_reach_the_e_box_or_a_phone(
    world: Callable[..., Awaitable[World]],
) -> None:
    w = await world()
    live = await w.agency()
    test = LetterAgency(w.client, live.id, await make_key(w.svc, live.id, key_type="test"))
    status, letter = await test.send(metadata())
    assert status == 202
    assert letter["test"] is True
    await wait_for(lambda: _status_in(w, letter["id"], {"deposited"}))
    assert w.peer.calls == 0
    row = await w.letter(letter["id"])
    assert row["notice_state"] == "test"
    _, got = await test.get(f"/v1/letters/{letter['id']}")
    assert [e["detail"].get("test") for e in got["evidence"]] == [True, True]
    assert await w.svc.store.pool.fetchval("SELECT count(*) FROM messages") == 0
