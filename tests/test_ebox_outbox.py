"""The e-box's event outbox against a real HTTP receiver standing in for the gateway."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime

import aiohttp
import asyncpg

from adapters.kartpooshe.ebox.app import build_app, build_context
from adapters.kartpooshe.ebox.store import EboxStore
from tests.ebox_harness import (  # noqa: F401  (fixtures)
    RunningEbox,
    StandInGateway,
    _serve,
    deposit,
    ebox,
    ebox_config,
    ebox_database_url,
    ebox_pool,
    gateway_standin,
    letter_metadata,
    national_code,
)


async def _letter(ebox: RunningEbox, **over: object) -> str:
    meta = letter_metadata(national_code(9191), **over)
    status, _ = await deposit(ebox.url, meta)
    assert status == 201
    return str(meta["letter_id"])


async def _wait_status(ebox: RunningEbox, event_id: uuid.UUID, want: tuple[str, int]) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    while (got := await ebox.store.outbox.status(event_id)) != want:
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.05)


async def test_opened_retried_until_accepted_and_delivered_once(
    ebox: RunningEbox, gateway_standin: StandInGateway
) -> None:
    gateway_standin.fail_events = 2  # two 503s, then 204
    letter_id = await _letter(ebox)
    event_id = await ebox.store.letters.mark_opened(letter_id, "owner", datetime.now(UTC))
    assert event_id is not None
    # A second opening changes nothing and queues nothing (protocol: first opening only).
    assert await ebox.store.letters.mark_opened(letter_id, "owner", datetime.now(UTC)) is None
    ebox.ctx.outbox.wake()
    events = await gateway_standin.wait_events(1)
    assert gateway_standin.event_posts == 3
    assert events[0]["event_id"] == str(event_id)
    assert events[0]["letter_id"] == letter_id
    assert events[0]["type"] == "opened"
    assert events[0]["actor"] == {"kind": "owner"}
    assert events[0]["at"].endswith("Z")
    assert "reply" not in events[0]
    # The stand-in has answered; the e-box records the delivery just after.
    await _wait_status(ebox, event_id, ("delivered", 3))
    await asyncio.sleep(1.0)  # several poll rounds: nothing is sent again
    assert gateway_standin.event_posts == 3
    assert gateway_standin.unauthorised == 0
    async with aiohttp.ClientSession() as s, s.get(f"{ebox.url}/metrics") as resp:
        text = await resp.text()
    assert 'payam_ebox_event_deliveries_total{outcome="retry",type="opened"}' in text


async def test_replied_carries_attachment_base64(
    ebox: RunningEbox, gateway_standin: StandInGateway
) -> None:
    letter_id = await _letter(ebox)
    data = bytes(range(256)) * 10
    reply_id = await ebox.store.letters.add_reply(
        letter_id, "owner", "پاسخ من", ("پاسخ.pdf", "application/pdf", data), datetime.now(UTC)
    )
    ebox.ctx.outbox.wake()
    (event,) = await gateway_standin.wait_events(1)
    assert event["type"] == "replied"
    assert event["reply"]["reply_id"] == str(reply_id)
    assert event["reply"]["text"] == "پاسخ من"
    (att,) = event["reply"]["attachments"]
    assert att["name"] == "پاسخ.pdf"
    assert att["content_type"] == "application/pdf"
    assert base64.b64decode(att["data_base64"]) == data


async def test_final_refusal_is_kept_as_failed_not_retried(
    ebox: RunningEbox, gateway_standin: StandInGateway
) -> None:
    gateway_standin.refuse_with = 422
    letter_id = await _letter(ebox)
    event_id = await ebox.store.letters.mark_opened(letter_id, "owner", datetime.now(UTC))
    assert event_id is not None
    ebox.ctx.outbox.wake()
    await _wait_status(ebox, event_id, ("failed", 1))
    await asyncio.sleep(1.0)
    assert gateway_standin.event_posts == 1


async def test_gateway_down_keeps_event_pending_with_backoff(
    ebox: RunningEbox, gateway_standin: StandInGateway
) -> None:
    gateway_standin.fail_events = 10**6
    letter_id = await _letter(ebox)
    event_id = await ebox.store.letters.mark_opened(letter_id, "owner", datetime.now(UTC))
    assert event_id is not None
    ebox.ctx.outbox.wake()
    await asyncio.sleep(2.0)
    status = await ebox.store.outbox.status(event_id)
    assert status is not None
    assert status[0] == "pending"
    # Backoff 0.2·2^n s: within 2 s at most about 4 tries, never a tight loop.
    assert 1 <= status[1] <= 5
    assert ebox.ctx.outbox.backoff(0) == 0.2
    assert ebox.ctx.outbox.backoff(3) == 1.6
    assert ebox.ctx.outbox.backoff(40) == ebox.ctx.config.event_retry_max_seconds


async def test_events_of_one_letter_arrive_in_order(
    ebox: RunningEbox, gateway_standin: StandInGateway
) -> None:
    gateway_standin.fail_events = 1  # the opening's first try fails; the reply must wait
    letter_id = await _letter(ebox)
    now = datetime.now(UTC)
    await ebox.store.letters.mark_opened(letter_id, "owner", now)
    ebox.ctx.outbox.wake()
    await asyncio.sleep(0.05)
    await ebox.store.letters.add_reply(letter_id, "owner", "پاسخ", None, datetime.now(UTC))
    ebox.ctx.outbox.wake()
    events = await gateway_standin.wait_events(2)
    assert [e["type"] for e in events] == ["opened", "replied"]
    assert events[1]["reply"]["attachments"] == []


async def test_undelivered_events_survive_a_restart(
    ebox_pool: asyncpg.Pool, ebox_database_url: str, gateway_standin: StandInGateway
) -> None:
    cfg = ebox_config(ebox_database_url, gateway_standin.url, PAYAM_EBOX_EVENT_TIMEOUT_SECONDS="2")
    gateway_standin.fail_events = 10**6  # the gateway is down while the first e-box runs
    first = build_context(cfg, EboxStore(ebox_pool))
    runner, url = await _serve(build_app(first))
    meta = letter_metadata(national_code(9292))
    assert (await deposit(url, meta))[0] == 201
    event_id = await first.store.letters.mark_opened(meta["letter_id"], "owner", datetime.now(UTC))
    assert event_id is not None
    first.outbox.wake()
    await asyncio.sleep(0.5)
    await runner.cleanup()  # the e-box stops with the event undelivered
    status = await first.store.outbox.status(event_id)
    assert status is not None
    assert status[0] == "pending"
    assert gateway_standin.events == []

    gateway_standin.fail_events = 0
    second = build_context(cfg, EboxStore(ebox_pool))
    runner, _ = await _serve(build_app(second))
    try:
        # Within the backoff, or the claim lease if the stop cut a try short.
        (event,) = await gateway_standin.wait_events(1, timeout=60)
        assert event["event_id"] == str(event_id)
    finally:
        await runner.cleanup()
