"""End to end over real TCP SMPP: HTTP accept → queue → dispatcher → SMSC simulator →
receipts → status, callbacks and replies. Each test starts its own simulator and gateway."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from adapters.sms.encoding import plan
from gateway.callbacks import SIGNATURE_HEADER, verify
from tests.sms_harness import agency, all_final, sms, statuses, wait_for  # noqa: F401 (fixture)

MSISDN = "+989121234567"


async def test_persian_message_three_parts_delivered(sms: Any) -> None:
    sim, services, client = await sms()
    a = await agency(services, client)
    text = ("سلام، " * 34)[:200]
    assert len(text) == 200
    status, body = await a.send({"to": MSISDN, "text": text, "mandatory": False})
    assert status == 202
    expected_parts = plan(text.strip() + "\nلغو۱۱")[1]
    assert body["parts"] == expected_parts == 4 or body["parts"] == expected_parts
    await wait_for(lambda: all_final(services, 1))
    got = sim.received[-1]
    assert got.text == text.strip() + "\nلغو۱۱"
    assert got.parts == expected_parts
    assert got.data_coding == 8
    assert got.source == "404012"
    assert got.destination == "989121234567"
    _, view = await a.get(body["id"])
    history = [h["status"] for h in view["history"]]
    assert history == ["accepted", "queued", "submitted", "delivered"]
    assert view["operator"] == "mci"
    metrics = await (await client.get("/metrics")).text()
    for needle in (
        f'payam_sms_accepted_total{{agency="{a.id}",priority="normal"}}',
        'payam_sms_submitted_total{operator="mci",priority="normal"}',
        'payam_sms_final_total{operator="mci",outcome="delivered"}',
        'payam_smpp_submit_duration_seconds_bucket{le="0.001",operator="mci"}',
        'payam_sms_receipts_total{operator="mci",outcome="delivered"}',
        'payam_sms_receipt_latency_seconds_count{operator="mci"}',
        'payam_sms_queue_depth{lane="bulk"}',
        'payam_sms_queue_oldest_age_seconds{lane="crisis"}',
        'payam_smpp_binds_up{operator="mci"}',
        'payam_smpp_window_in_use{operator="mci"}',
    ):
        assert needle in metrics, needle


async def test_exactly_three_ucs2_parts_with_udh(sms: Any, pool: asyncpg.Pool) -> None:
    """A mandatory 200-character Persian text (no hint) is exactly 3 UCS2 parts."""
    sim, services, client = await sms()
    a = await agency(services, client, mandatory_allowed=True)
    text = "ا" * 200
    status, body = await a.send({"to": MSISDN, "text": text, "mandatory": True})
    assert (status, body["parts"], body["encoding"]) == (202, 3, "ucs2")
    await wait_for(lambda: all_final(services, 1))
    assert (sim.received[-1].text, sim.received[-1].parts) == (text, 3)
    parts = await services.store.pool.fetchval(
        "SELECT count(*) FROM message_parts WHERE state = 'delivered'"
    )
    assert parts == 3


async def test_gsm_escape_and_emoji_at_boundaries(sms: Any) -> None:
    sim, services, client = await sms()
    a = await agency(services, client, mandatory_allowed=True)
    gsm = "a" * 152 + "€" + "b" * 20  # the escape pair would straddle septet 153
    emoji = "ب" * 66 + "😀" + "پ" * 10  # the surrogate pair would straddle unit 67
    for text in (gsm, emoji):
        assert (await a.send({"to": MSISDN, "text": text, "mandatory": True}))[0] == 202
    await wait_for(lambda: all_final(services, 2))
    assert sorted(m.text for m in sim.received) == sorted([gsm, emoji])


@pytest.mark.parametrize(
    ("sim_opts", "op_opts"),
    [
        (
            {"id_format": "hex", "dlr_id_format": "dec", "dlr_id_zero_pad": 12},
            {"resp_id_format": "hex", "dlr_id_format": "dec"},
        ),
        (
            {"id_format": "dec", "dlr_id_format": "hex", "dlr_id_uppercase": True},
            {"resp_id_format": "dec", "dlr_id_format": "hex"},
        ),
    ],
    ids=["hex-resp-decimal-receipt-zero-padded", "decimal-resp-hex-receipt-upper-case"],
)
async def test_receipt_ids_hex_decimal_case_and_zeros(
    sms: Any, pool: asyncpg.Pool, sim_opts: dict[str, Any], op_opts: dict[str, Any]
) -> None:
    _, services, client = await sms(sim_opts=sim_opts, op_opts=op_opts)
    a = await agency(services, client)
    for i in range(5):
        assert (await a.send({"to": f"+98912123456{i}", "text": f"n{i}"}))[0] == 202
    await wait_for(lambda: all_final(services, 5))
    assert await pool.fetchval("SELECT count(*) FROM receipts_inbox") == 0


async def test_duplicate_and_early_receipts(sms: Any, pool: asyncpg.Pool) -> None:
    sim, services, client = await sms(sim_opts={"dlr_duplicate_pct": 100.0, "dlr_early": True})
    a = await agency(services, client)
    ids = []
    for i in range(10):
        _status, body = await a.send({"to": f"+98912000000{i}", "text": "x"})
        ids.append(body["id"])
    await wait_for(lambda: all_final(services, 10))
    assert sim.receipts >= 20  # every receipt twice, each before its submit_sm_resp
    delivered_events = await pool.fetchval(
        "SELECT count(*) FROM message_events WHERE status = 'delivered'"
    )
    assert delivered_events == 10
    await wait_for(lambda: _inbox_empty(pool))


async def _inbox_empty(pool: asyncpg.Pool) -> bool:
    return await pool.fetchval("SELECT count(*) FROM receipts_inbox") == 0


async def test_throttling_retried_none_lost_none_doubled(sms: Any, pool: asyncpg.Pool) -> None:
    sim, services, client = await sms(sim_opts={"throttle_pct": 30.0, "nack_pct": 5.0})
    a = await agency(services, client)
    n = 40
    for i in range(n):
        assert (await a.send({"to": f"+9891200{i:05d}", "text": f"t{i}"}))[0] == 202
    await wait_for(lambda: all_final(services, n), timeout=30)
    assert sim.throttled > 0
    got = sorted(m.destination for m in sim.received)
    assert got == sorted(f"9891200{i:05d}" for i in range(n))  # each exactly once
    retries = await pool.fetchval("SELECT sum(attempts) FROM messages")
    assert retries > n


async def test_bind_dropped_mid_window_in_flight_retried(sms: Any) -> None:
    sim, services, client = await sms(sim_opts={"drop_after": 7, "response_delay_seconds": 0.01})
    a = await agency(services, client)
    n = 30
    for i in range(n):
        assert (await a.send({"to": f"+9891211{i:05d}", "text": f"d{i}"}))[0] == 202

    async def dropped() -> bool:
        return sim.drops >= 1

    await wait_for(dropped)
    sim.settings.drop_after = None  # one drop mid-window; the SMSC is healthy again
    await wait_for(lambda: all_final(services, n), timeout=30)
    dests = [m.destination for m in sim.received]
    assert sorted(set(dests)) == sorted(f"9891211{i:05d}" for i in range(n))


async def test_operator_down_messages_wait_then_expire(sms: Any) -> None:
    sim, services, client = await sms()
    await sim.stop()  # nothing listens any more: every bind attempt fails
    a = await agency(services, client)
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    _, body = await a.send({"to": MSISDN, "text": "short-lived", "valid_until": soon})
    await asyncio.sleep(1.0)
    assert (await statuses(services)) == {"queued": 1}  # waiting, not failed
    await wait_for(lambda: all_final(services, 1, "expired"), timeout=15)
    _, view = await a.get(body["id"])
    assert view["error_code"] == "valid_until_passed"


async def test_crisis_overtakes_bulk_backlog(sms: Any, pool: asyncpg.Pool) -> None:
    _, services, client = await sms(op_opts={"tps": 100.0})
    a = await agency(services, client, tps=100_000, mandatory_allowed=True)
    recipients = [{"to": f"+98912{i:07d}"} for i in range(400)]
    resp = await client.post(
        "/v1/batches",
        json={"template": "bulk", "priority": "bulk", "recipients": recipients},
        headers=a.headers(),
    )
    assert resp.status == 202
    await asyncio.sleep(0.5)  # the bulk backlog is draining at 100/s
    status, body = await a.send(
        {
            "to": "+989351234567",
            "text": "flood warning",
            "priority": "crisis",
            "mandatory": True,
        }
    )
    assert status == 202
    await wait_for(lambda: _status_of(pool, body["id"], "delivered"), timeout=10)
    waiting = await pool.fetchval("SELECT count(*) FROM queue")
    assert waiting > 200, "crisis must not wait behind the bulk backlog"


async def _status_of(pool: asyncpg.Pool, message_id: str, status: str) -> bool:
    got = await pool.fetchval("SELECT status FROM messages WHERE id = $1", uuid.UUID(message_id))
    return bool(got == status)


async def test_callbacks_signed_and_retried(
    sms: Any, pool: asyncpg.Pool, aiohttp_server: Any
) -> None:
    received: list[tuple[bytes, str]] = []
    calls = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return web.Response(status=503)  # first try fails: must be retried
        received.append((await request.read(), request.headers[SIGNATURE_HEADER]))
        return web.Response(status=204)

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = await aiohttp_server(receiver_app)
    _, services, client = await sms()
    url = f"http://127.0.0.1:{receiver.port}/hook"
    a = await agency(services, client, callback_url=url)
    _, body = await a.send({"to": MSISDN, "text": "with callback", "client_ref": "r-1"})

    async def got_callback() -> bool:
        return bool(received)

    await wait_for(got_callback, timeout=20)
    raw, signature = received[0]
    agency_row = await services.agencies.get(a.id)
    assert verify(services.agencies.webhook_secret(agency_row), raw, signature)
    assert not verify("whsec_wrong", raw, signature)
    payload = json.loads(raw)
    assert (payload["id"], payload["status"], payload["client_ref"]) == (
        body["id"],
        "delivered",
        "r-1",
    )
    assert calls["n"] == 2
    row = await pool.fetchrow("SELECT attempts, outcome FROM callbacks")
    assert (row["attempts"], row["outcome"]) == (2, "delivered")


async def test_replies_opt_out_end_to_end(sms: Any, pool: asyncpg.Pool) -> None:
    sim, services, client = await sms()
    a = await agency(services, client)
    b = await agency(services, client, "404013")
    _, first = await a.send({"to": MSISDN, "text": "your appointment is tomorrow"})
    await wait_for(lambda: all_final(services, 1))
    await sim.inject_mo("989121234567", "4040121", "ممنون، " * 30)  # long: 3+ parts
    await sim.inject_mo("989121234567", "404012", "۱۱")  # opt out, Persian digits

    async def replies_in() -> bool:
        return await pool.fetchval("SELECT count(*) FROM replies") == 2

    await wait_for(replies_in)
    resp = await client.get("/v1/replies", headers=a.headers())
    replies = (await resp.json())["replies"]
    assert replies[0]["text"] == ("ممنون، " * 30)
    assert replies[0]["in_reply_to"] == first["id"]
    assert replies[0]["to"] == "4040121"
    assert replies[1]["keyword"] == "opt_out"
    resp = await client.get("/v1/replies", headers=b.headers())
    assert (await resp.json())["replies"] == []  # B sees none of A's replies

    async def confirmed() -> bool:
        return any(m.source == "404012" and "متوقف" in m.text for m in sim.received)

    await wait_for(confirmed)
    status, body = await a.send({"to": MSISDN, "text": "sale!", "priority": "bulk"})
    assert (status, body["code"]) == (422, "recipient_opted_out")
    assert (await b.send({"to": MSISDN, "text": "from b"}))[0] == 202  # only A is blocked
    await sim.inject_mo("989121234567", "404012", "12")

    async def opted_in() -> bool:
        return await pool.fetchval("SELECT count(*) FROM opt_outs") == 0

    await wait_for(opted_in)
    assert (await a.send({"to": MSISDN, "text": "welcome back"}))[0] == 202
