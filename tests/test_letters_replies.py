"""Citizens' replies reach the agency's office automation: by signed webhook to a real local
HTTP receiver and by SMTP to a real local aiosmtpd server, threaded to the original letter
(In-Reply-To/References = the letter's Message-ID, subject tag [PAYAM-<tracking>])."""

from __future__ import annotations

import asyncio
import base64
import email
import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from email import policy
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from prometheus_client import REGISTRY

from gateway.callbacks import SIGNATURE_HEADER, verify
from gateway.letters.service import Draft
from tests.conftest import auth
from tests.letters_harness import PDF, PERSON, PNG, metadata
from tests.sms_harness import wait_for
from tests.test_letters_delivery import World, event, world  # noqa: F401


class Sink:
    """An office-automation mailbox: a real SMTP server that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = email.message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        return "250 OK"


class Receiver:
    def __init__(self) -> None:
        self.posts: list[tuple[bytes, str]] = []
        self.fail_first = 0
        self.url = ""
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)

        async def hook(request: web.Request) -> web.Response:
            if self.fail_first > 0:
                self.fail_first -= 1
                return web.Response(status=503)
            self.posts.append((await request.read(), request.headers.get(SIGNATURE_HEADER, "")))
            return web.Response(status=204)

        app.router.add_post("/oa/replies", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/oa/replies"


@pytest.fixture
async def office() -> AsyncIterator[tuple[Sink, Controller, Receiver]]:
    sink = Sink()
    with socket.socket() as probe:  # Controller cannot take port 0: find a free one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    receiver = Receiver()
    await receiver.start()
    yield sink, controller, receiver
    controller.stop()
    assert receiver.runner is not None
    await receiver.runner.cleanup()


def deliveries(way: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "payam_letters_reply_deliveries_total", {"channel": way, "outcome": outcome}
        )
        or 0.0
    )


async def test_reply_reaches_office_automation_by_webhook_and_mail(
    world: Callable[..., Awaitable[World]],
    office: tuple[Sink, Controller, Receiver],
    admin_token: str,
) -> None:
    sink, controller, receiver = office
    w = await world(
        PAYAM_KARTPOOSHE_REPLY_SMTP_HOST="127.0.0.1",
        PAYAM_KARTPOOSHE_REPLY_SMTP_PORT=str(controller.port),
        PAYAM_KARTPOOSHE_REPLY_FROM="replies@ebox.test.ir",
    )
    tax = await w.agency()
    resp = await w.client.patch(
        f"/admin/v1/agencies/{tax.id}/letters/settings",
        json={"office_mailbox": "inbox@tax.gov.ir", "reply_webhook_url": receiver.url},
        headers=auth(admin_token),
    )
    assert resp.status == 200, await resp.text()
    receiver.fail_first = 1  # the webhook is retried after a 503
    webhook_retried = deliveries("webhook", "retried")
    # One letter as office automation sends it by mail (its own Message-ID), one by the API.
    agency = await w.svc.agencies.get(tax.id)
    by_mail, _ = await w.svc.letters.accept(
        agency,
        Draft("person", PERSON, "ابلاغیه ۱۲", "متن", True, None, False, ""),
        [],
        source="smtp",
        mail_message_id="<oa-4711@tax.gov.ir>",
    )
    _, by_api = await tax.send(metadata(notify_sms=False), [("a.pdf", "application/pdf", PDF)])
    for lid in (str(by_mail.id), by_api["id"]):
        await wait_for(lambda lid=lid: _deposited(w, lid))
        assert await w.peer.send_event(event(lid, "opened")) == 204
        reply = event(
            lid,
            "replied",
            reply={
                "reply_id": f"r-{lid[:8]}",
                "text": "پاسخ شهروند به نامه",
                "attachments": [
                    {
                        "name": "madrak.png",
                        "content_type": "image/png",
                        "data_base64": base64.b64encode(PNG).decode(),
                    }
                ],
            },
            actor={"kind": "attorney"},
        )
        assert await w.peer.send_event(reply) == 204

    await wait_for(lambda: _true(len(sink.messages) == 2 and len(receiver.posts) == 2), 30)
    trackings = {by_mail.tracking_number: "<oa-4711@tax.gov.ir>", by_api["tracking_number"]: None}
    for msg in sink.messages:
        tracking = msg["X-Payam-Tracking-Number"]
        assert msg["Subject"].startswith(f"[PAYAM-{tracking}] Re: ")
        expected = trackings[tracking] or f"<{by_api['id']}@ebox.test.ir>"
        assert msg["In-Reply-To"] == expected
        assert msg["References"] == expected
        assert msg["To"] == "inbox@tax.gov.ir"
        assert msg["From"] == "replies@ebox.test.ir"
        assert "پاسخ شهروند به نامه" in msg.get_body(preferencelist=("plain",)).get_content()
        files = [(p.get_filename(), p.get_content()) for p in msg.iter_attachments()]
        assert files == [("madrak.png", PNG)]
    secret = w.svc.agencies.webhook_secret(agency)
    for body, signature in receiver.posts:
        assert verify(secret, body, signature)
        assert not verify(secret + "x", body, signature)
        doc = json.loads(body)
        assert doc["type"] == "letter.reply"
        assert doc["tracking_number"] in trackings
        assert doc["reply"]["actor"] == {"kind": "attorney"}
        assert base64.b64decode(doc["reply"]["attachments"][0]["data_base64"]) == PNG
    assert deliveries("webhook", "retried") >= webhook_retried + 1
    rows = await w.svc.store.pool.fetch("SELECT way, state FROM letter_reply_deliveries")
    assert sorted((r["way"], r["state"]) for r in rows) == [
        ("smtp", "delivered"),
        ("smtp", "delivered"),
        ("webhook", "delivered"),
        ("webhook", "delivered"),
    ]


async def _deposited(w: World, lid: str) -> bool:
    return (await w.letter(lid))["status"] == "deposited"


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value


async def test_refused_webhook_is_final(
    world: Callable[..., Awaitable[World]],
    admin_token: str,
) -> None:
    w = await world()
    tax = await w.agency()
    await w.client.patch(
        f"/admin/v1/agencies/{tax.id}/letters/settings",
        json={"reply_webhook_url": "http://127.0.0.1:9/nothing-listens"},
        headers=auth(admin_token),
    )
    # Port 9 refuses connections: retried; give_up_at is 24 h away, so it stays pending.
    _, letter = await tax.send(metadata(notify_sms=False))
    await wait_for(lambda: _deposited(w, letter["id"]))
    reply = event(letter["id"], "replied", reply={"reply_id": "x", "text": "سلام"})
    assert await w.peer.send_event(reply) == 204
    await wait_for(lambda: _attempted(w), 15)
    row = await w.svc.store.pool.fetchrow("SELECT state, last_error FROM letter_reply_deliveries")
    assert row["state"] == "pending"
    assert row["last_error"] == "ClientConnectorError"
    assert uuid.UUID(
        str(await w.svc.store.pool.fetchval("SELECT reply_id FROM letter_reply_deliveries"))
    )


async def _attempted(w: World) -> bool:
    n = await w.svc.store.pool.fetchval("SELECT attempts FROM letter_reply_deliveries")
    return bool(n and n >= 1)
