"""POST/GET/cancel /v1/messages against the real database: sender binding, policy refusals,
idempotency, quota, scheduling, isolation between agencies."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from adapters.sms.encoding import plan
from gateway.api.app import build_app
from gateway.numbering import Request
from gateway.persian import TEHRAN
from gateway.services import Services, build_services
from gateway.store import Store
from tests.conftest import agency_jwt, clear_of_tehran_midnight, make_agency, make_key

MSISDN = "+989121234567"


class Agency:
    """An agency with a shortcode and a key, and a helper to call the API as it."""

    def __init__(self, services: Services, client: Any, agency_id: uuid.UUID, key: Any) -> None:
        self.services, self.client, self.id, self.key = services, client, agency_id, key

    def headers(self, **extra: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {agency_jwt(self.key.key.key_id, self.key.secret)}",
            **extra,
        }

    async def send(self, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, Any]]:
        resp = await self.client.post("/v1/messages", json=body, headers=self.headers(**headers))
        return resp.status, await resp.json(content_type=None)

    async def get(self, message_id: str) -> tuple[int, dict[str, Any]]:
        resp = await self.client.get(f"/v1/messages/{message_id}", headers=self.headers())
        return resp.status, await resp.json(content_type=None)

    async def messages(self) -> int:
        row = await self.services.store.pool.fetchval(
            "SELECT count(*) FROM messages WHERE agency_id = $1", self.id
        )
        return int(row)


async def _agency(
    services: Services, client: Any, shortcode: str = "404012", **agency_fields: Any
) -> Agency:
    agency_id = await make_agency(services, **agency_fields)
    agency = await services.agencies.get(agency_id)
    await services.numbering.allocate(agency, Request("shortcode", shortcode), actor="t")
    return Agency(services, client, agency_id, await make_key(services, agency_id))


@pytest.fixture
async def tax(services: Services, client: Any) -> Agency:
    return await _agency(services, client)


async def test_send_then_get_history(tax: Agency) -> None:
    status, body = await tax.send({"to": "09121234567", "text": "Your tax is due."})
    assert status == 202, body
    assert body["recipient"] == MSISDN
    assert body["sender"] == "404012"
    assert body["status"] == "queued"
    assert body["encoding"] == "ucs2"  # the Persian opt-out hint makes it UCS2
    assert body["parts"] == plan("Your tax is due.\nلغو۱۱")[1]
    status, got = await tax.get(body["id"])
    assert status == 200
    assert got["text"].endswith("لغو۱۱")
    assert [h["status"] for h in got["history"]] == ["accepted", "queued"]
    assert await tax.messages() == 1


async def test_persian_long_message_parts(tax: Agency) -> None:
    text = "مالیات " * 28  # 196 characters
    status, body = await tax.send({"to": MSISDN, "text": text.strip(), "mandatory": False})
    assert status == 202
    assert (body["encoding"], body["parts"]) == plan(text.strip() + "\nلغو۱۱")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"to": "02188123456", "text": "x"}, 422, "invalid_recipient"),
        ({"to": "+4915112345678", "text": "x"}, 422, "invalid_recipient"),
        ({"text": "x"}, 422, "invalid_value"),
        ({"to": MSISDN, "national_code": "0076229645", "text": "x"}, 422, "invalid_value"),
        ({"to": MSISDN, "text": "   "}, 422, "invalid_value"),
        ({"to": MSISDN, "text": "x", "priority": "urgent"}, 422, "invalid_value"),
        ({"to": MSISDN, "text": "x", "sender": "404099"}, 422, "sender_not_registered"),
        ({"to": MSISDN, "text": "x", "mandatory": True}, 403, "mandatory_not_allowed"),
        ({"to": MSISDN, "text": "x", "valid_until": "2020-01-01T00:00:00Z"}, 422, "invalid_value"),
        ({"to": MSISDN, "text": "x", "valid_until": "2030-01-01T00:00:00"}, 422, "invalid_value"),
        ({"to": MSISDN, "text": "ب" * 1001}, 422, "invalid_value"),
        ({"to": MSISDN, "text": "x", "colour": "red"}, 422, "unknown_field"),
        ({"to": MSISDN, "text": 5}, 422, "wrong_type"),
    ],
)
async def test_refusals_write_nothing(
    tax: Agency, body: dict[str, Any], status: int, code: str
) -> None:
    got_status, got = await tax.send(body)
    assert (got_status, got["code"]) == (status, code), got
    assert await tax.messages() == 0
    assert await tax.services.store.messages.usage(tax.id, datetime.now(TEHRAN).date()) == 0


async def test_too_many_parts(tax: Agency) -> None:
    status, body = await tax.send({"to": MSISDN, "text": "ب" * 1000})
    assert (status, body["code"]) == (422, "message_too_long")


async def test_national_code_through_directory(tax: Agency) -> None:
    await tax.services.store.messages.put_citizens([("0076229645", MSISDN)])
    status, body = await tax.send({"national_code": "۰۰۷۶۲۲۹۶۴۵", "text": "ابلاغیه"})
    assert (status, body["recipient"]) == (202, MSISDN)
    status, body = await tax.send({"national_code": "0076229646", "text": "ابلاغیه"})
    assert (status, body["code"]) == (422, "unknown_national_code")


async def test_sender_bound_to_registry(services: Services, client: Any) -> None:
    a = await _agency(services, client, "404031")
    b = await _agency(services, client, "404032")
    agency = await services.agencies.get(a.id)
    await services.numbering.allocate(agency, Request("mask", "SABTE"), actor="t")
    assert (await a.send({"to": MSISDN, "text": "x", "sender": "404032"}))[1]["code"] == (
        "sender_not_registered"
    )
    status, body = await a.send({"to": MSISDN, "text": "y", "sender": "sabte"})
    assert (status, body["sender"]) == (202, "SABTE")
    assert (await b.send({"to": MSISDN, "text": "z"}))[1]["sender"] == "404032"
    bare = await make_agency(services)
    key = await make_key(services, bare)
    nobody = Agency(services, client, bare, key)
    assert (await nobody.send({"to": MSISDN, "text": "x"}))[1]["code"] == "no_sender"


async def test_idempotency(tax: Agency) -> None:
    body = {"to": MSISDN, "text": "once"}
    first = await tax.send(body, **{"Idempotency-Key": "abc-1"})
    second = await tax.send(body, **{"Idempotency-Key": "abc-1"})
    assert first == second
    assert first[0] == 202
    other = await tax.send({"to": MSISDN, "text": "twice"}, **{"Idempotency-Key": "abc-1"})
    assert (other[0], other[1]["code"]) == (409, "idempotency_key_reused")
    assert await tax.messages() == 1


async def test_idempotency_under_concurrency(tax: Agency) -> None:
    body = {"to": MSISDN, "text": "race"}
    results = await asyncio.gather(
        *(tax.send(body, **{"Idempotency-Key": "same"}) for _ in range(12))
    )
    assert {r[0] for r in results} == {202}
    assert len({r[1]["id"] for r in results}) == 1
    assert await tax.messages() == 1


async def test_idempotency_race_on_a_small_pool_does_not_deadlock(
    config: Any, pool: asyncpg.Pool, sealer: Any, database_url: str, aiohttp_client: Any
) -> None:
    """Same-key requests wait, each in its own transaction, on the first one's key row; the
    first must then finish without another connection from the pool (a new agency's first
    message creates its data key). Found in CI: 12 requests on a pool of 12 hung for good."""
    small = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert small is not None
    try:
        services = build_services(config, Store(small), sealer)
        client = await aiohttp_client(build_app(services))
        agency = await _agency(services, client)
        body = {"to": MSISDN, "text": "race on a small pool"}
        async with asyncio.timeout(30):
            results = await asyncio.gather(
                *(agency.send(body, **{"Idempotency-Key": "k"}) for _ in range(10))
            )
        assert {r[0] for r in results} == {202}
        assert len({r[1]["id"] for r in results}) == 1
        assert await agency.messages() == 1
    finally:
        await small.close()


async def test_duplicate_suppressed(tax: Agency) -> None:
    assert (await tax.send({"to": MSISDN, "text": "hello"}))[0] == 202
    status, body = await tax.send({"to": "09121234567", "text": "hello"})
    assert (status, body["code"]) == (409, "duplicate_message")
    assert (await tax.send({"to": MSISDN, "text": "hello again"}))[0] == 202


async def test_opt_out_blocks_non_mandatory_only(services: Services, client: Any) -> None:
    a = await _agency(services, client, mandatory_allowed=True)
    await services.store.messages.set_opt_out(a.id, MSISDN, True)
    status, body = await a.send({"to": MSISDN, "text": "news"})
    assert (status, body["code"]) == (422, "recipient_opted_out")
    status, body = await a.send({"to": MSISDN, "text": "court notice", "mandatory": True})
    assert status == 202
    assert body["mandatory"] is True
    m = await services.store.messages.get(a.id, uuid.UUID(body["id"]))
    assert m is not None
    assert "لغو۱۱" not in m.body  # mandatory messages carry no opt-out hint


async def test_daily_quota_counts_fragments(services: Services, client: Any) -> None:
    await clear_of_tehran_midnight()
    a = await _agency(services, client, daily_fragment_quota=5)
    long_text = "ا" * 100  # with the hint: 2 UCS2 parts
    assert plan(long_text + "\nلغو۱۱")[1] == 2
    assert (await a.send({"to": MSISDN, "text": long_text}))[0] == 202
    assert (await a.send({"to": "+989121234568", "text": long_text}))[0] == 202
    status, body = await a.send({"to": "+989121234569", "text": long_text})
    assert (status, body["code"]) == (429, "daily_quota_exceeded")
    assert (await a.send({"to": "+989121234569", "text": "کوتاه"}))[0] == 202
    assert await services.store.messages.usage(a.id, datetime.now(TEHRAN).date()) == 5


async def test_quiet_hours_refuse_bulk(services: Services, aiohttp_client: Any) -> None:
    now = datetime.now(TEHRAN)
    start = (now - timedelta(minutes=30)).strftime("%H:%M")
    end = (now + timedelta(minutes=30)).strftime("%H:%M")
    cfg = replace(
        services.config,
        sms=replace(services.config.sms, quiet_hours_start=start, quiet_hours_end=end),
    )
    quiet = build_services(cfg, services.store, services.sealer)
    client: TestClient[Any, Any] = await aiohttp_client(build_app(quiet))
    a = await _agency(quiet, client)
    status, body = await a.send({"to": MSISDN, "text": "sale", "priority": "bulk"})
    assert (status, body["code"]) == (422, "quiet_hours")
    assert "quiet_hours_end" in body
    assert (await a.send({"to": MSISDN, "text": "notice", "priority": "normal"}))[0] == 202
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    status, body = await a.send(
        {"to": MSISDN, "text": "sale 2", "priority": "bulk", "send_at": later}
    )
    assert (status, body["status"]) == (202, "scheduled")


async def test_cancel(tax: Agency) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    _, body = await tax.send({"to": MSISDN, "text": "later", "send_at": later})
    assert body["status"] == "scheduled"
    resp = await tax.client.post(f"/v1/messages/{body['id']}/cancel", headers=tax.headers())
    assert (resp.status, (await resp.json())["status"]) == (200, "cancelled")
    # Cancelling again is harmless; the history shows one cancellation.
    resp = await tax.client.post(f"/v1/messages/{body['id']}/cancel", headers=tax.headers())
    assert (resp.status, (await resp.json())["status"]) == (200, "cancelled")
    _, got = await tax.get(body["id"])
    assert [h["status"] for h in got["history"]] == ["accepted", "scheduled", "cancelled"]
    assert await tax.services.store.pool.fetchval("SELECT count(*) FROM queue") == 0


async def test_agencies_cannot_see_each_other(services: Services, client: Any) -> None:
    a = await _agency(services, client, "404041")
    b = await _agency(services, client, "404042")
    _, body = await a.send({"to": MSISDN, "text": "private"})
    assert (await b.get(body["id"]))[0] == 404
    resp = await b.client.post(f"/v1/messages/{body['id']}/cancel", headers=b.headers())
    assert resp.status == 404
    assert (await a.get(body["id"]))[0] == 200


async def test_test_key_marks_messages(services: Services, client: Any) -> None:
    a = await _agency(services, client)
    test_key = await make_key(services, a.id, key_type="test")
    t = Agency(services, client, a.id, test_key)
    _, body = await t.send({"to": MSISDN, "text": "sandbox"})
    assert body["test"] is True


async def test_pipeline_rechecks_at_commit(services: Services, client: Any) -> None:
    """The send path caches keys, agencies and senders for speed; the committing transaction
    re-checks them, so a revocation, suspension or release takes effect at once."""
    a = await _agency(services, client)
    assert (await a.send({"to": MSISDN, "text": "warm the caches"}))[0] == 202
    token = agency_jwt(a.key.key.key_id, a.key.secret)
    results = await asyncio.gather(
        *(
            a.client.post(
                "/v1/messages",
                json={"to": MSISDN, "text": f"t{i}"},
                headers={"Authorization": f"Bearer {token}"},
            )
            for i in range(3)
        )
    )
    codes = sorted([r.status for r in results])
    assert codes == [202, 401, 401]  # one token, one message
    await services.agencies.set_status(a.id, "suspended", "", actor="t")
    status, body = await a.send({"to": MSISDN, "text": "while suspended"})
    assert (status, body["code"]) == (403, "agency_suspended")
    await services.agencies.set_status(a.id, "active", "", actor="t")
    held = await services.store.numbering.for_agency(a.id, include_released=False)
    await services.numbering.release(held[0].id, actor="t")
    status, body = await a.send({"to": MSISDN, "text": "after release"})
    assert (status, body["code"]) == (422, "sender_not_registered")
    await services.credentials.revoke_key(a.id, a.key.key.key_id, actor="t")
    status, body = await a.send({"to": MSISDN, "text": "after revoke"})
    assert (status, body["code"]) == (401, "key_revoked")
    assert await a.messages() == 2


async def test_concurrent_duplicates_accept_exactly_one(tax: Agency) -> None:
    """Two group-commit transactions may be in flight at once; the same text to the same
    recipient in both must still be caught (READ COMMITTED would not show the other's row)."""
    results = await asyncio.gather(
        *(tax.send({"to": MSISDN, "text": "once only"}) for _ in range(40))
    )
    statuses = sorted(r[0] for r in results)
    assert statuses == [202] + [409] * 39
    assert {r[1]["code"] for r in results if r[0] == 409} == {"duplicate_message"}
    assert await tax.messages() == 1


async def test_concurrent_sends_respect_quota_exactly(services: Services, client: Any) -> None:
    """Quota counted last, per group; a group that would go over is admitted one by one and
    the rest taken back out, so exactly the quota is accepted and counted."""
    await clear_of_tehran_midnight()
    a = await _agency(services, client, daily_fragment_quota=10)
    results = await asyncio.gather(
        *(a.send({"to": f"+98912000{i:04d}", "text": f"notice {i}"}) for i in range(30))
    )
    statuses = [r[0] for r in results]
    assert statuses.count(202) == 10
    assert {r[1]["code"] for r in results if r[0] != 202} == {"daily_quota_exceeded"}
    assert await a.messages() == 10
    assert await services.store.messages.usage(a.id, datetime.now(TEHRAN).date()) == 10


async def test_group_commit_batches_under_load_but_never_delays_a_lone_client(
    services: Services, client: Any
) -> None:
    """A client sending one request after another gets batches of one and no added wait;
    clients sending in waves (each wave sent as the last one is answered) are gathered into
    batches, not committed in ones and twos (gateway/send_pipeline.py)."""
    a = await _agency(services, client)
    pipeline = services.sending.pipeline
    assert pipeline is not None
    sizes: list[int] = []
    accept_many = services.store.messages.accept_many

    async def counting(rows: Any, **kw: Any) -> Any:
        sizes.append(len(rows))
        return await accept_many(rows, **kw)

    services.store.messages.accept_many = counting  # type: ignore[method-assign]
    for i in range(12):
        assert (await a.send({"to": f"+98912200{i:04d}", "text": f"one by one {i}"}))[0] == 202
    assert sizes == [1] * 12
    assert pipeline.lingered == 0
    sizes.clear()
    # This test's clients share the server's event loop, so a wave takes longer to arrive
    # than over a network; a longer linger tests the same mechanism.
    pipeline.LINGER = 0.05

    async def client_loop(c: int) -> None:
        for i in range(6):
            status, _ = await a.send({"to": f"+98912{c:03d}{i:04d}", "text": f"wave {c} {i}"})
            assert status == 202

    await asyncio.gather(*(client_loop(c) for c in range(32)))
    assert sum(sizes) == 32 * 6
    # Without the overlap threshold and the linger, the second transaction in flight took the
    # one or two requests that were back already (38 % of batches held one message).
    assert sizes.count(1) <= len(sizes) // 4, sizes
    assert sum(sizes) / len(sizes) >= 8, sizes
    assert await a.messages() == 12 + 32 * 6


async def test_concurrent_agencies_do_not_deadlock(services: Services, client: Any) -> None:
    """Batches holding several agencies lock their quota rows in one order."""
    a = await _agency(services, client, shortcode="404013")
    b = await _agency(services, client, shortcode="404014")
    sends = [
        (a if i % 2 else b).send({"to": f"+98912100{i:04d}", "text": f"n{i}"}) for i in range(80)
    ]
    results = await asyncio.gather(*sends)
    assert {r[0] for r in results} == {202}
    assert await a.messages() == 40
    assert await b.messages() == 40


async def test_duplicates_caught_across_gateway_processes(
    tax: Agency, config: Any, sealer: Any, aiohttp_client: Any, database_url: str
) -> None:
    """Two gateway processes (here: two apps with their own pools and pipelines) share one
    database; neither sees the other's batches in flight, so only the database can catch the
    same text to the same recipient sent to both at once (an advisory lock per text and
    recipient, migration accept_function)."""
    pool2 = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert pool2 is not None
    try:
        other = build_services(config, Store(pool2), sealer)
        client2 = await aiohttp_client(build_app(other))
        twin = Agency(other, client2, tax.id, tax.key)
        for round_ in range(5):
            text = f"once across nodes {round_}"
            results = await asyncio.gather(
                *((tax if i % 2 else twin).send({"to": MSISDN, "text": text}) for i in range(20))
            )
            assert sorted(r[0] for r in results) == [202] + [409] * 19, round_
        assert await tax.messages() == 5
    finally:
        await pool2.close()
