"""POST/GET/cancel /v1/batches and GET /v1/replies against the real database."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from gateway.persian import TEHRAN
from gateway.services import Services
from tests.sealed import opened
from tests.test_messages_api import Agency, _agency


async def _post(
    a: Agency,
    body: Any,
    content_type: str = "application/json",
    params: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else None
    resp = await a.client.post(
        "/v1/batches",
        params=params or {},
        **({"data": data} if data is not None else {"json": body}),
        headers=a.headers(**({"Content-Type": content_type} if data is not None else {})),
    )
    return resp.status, await resp.json(content_type=None)


async def test_json_batch_with_per_recipient_failures(services: Services, client: Any) -> None:
    a = await _agency(services, client, tps=10)
    await services.store.messages.put_citizens([("0076229645", "+989121111111")])
    body = {
        "template": "{name} عزیز، قبض شما {amount} ریال است",
        "priority": "normal",
        "recipients": [
            {"to": "09121234567", "params": {"name": "علی", "amount": "1000"}},
            {"to": "12345", "params": {"name": "x", "amount": "1"}},
            {"national_code": "0076229645", "params": {"name": "مریم", "amount": "2000"}},
            {"national_code": "0076229646", "params": {"name": "?", "amount": "3"}},
            {"to": "09121234568", "params": {"name": "رضا"}},
        ],
    }
    status, got = await _post(a, body)
    assert status == 202, got
    assert (got["total"], got["accepted"], got["rejected_count"]) == (5, 2, 3)
    assert [(r["index"], r["code"]) for r in got["rejected"]] == [
        (1, "invalid_recipient"),
        (3, "unknown_national_code"),
        (4, "missing_param"),
    ]
    rows = await opened(
        services.store,
        "SELECT m.id, m.data_key, m.body_sealed, m.recipient, m.body, q.vt "
        "FROM messages m JOIN queue q ON q.message_id = m.id "
        "WHERE m.batch_id = $1 ORDER BY q.vt",
        uuid.UUID(got["id"]),
    )
    assert rows[0]["body"].startswith("علی عزیز، قبض شما 1000 ریال است")
    assert rows[1]["recipient"] == "+989121111111"
    # Paced by the agency's TPS (10/s): 0.1 s of virtual time between messages.
    assert abs((rows[1]["vt"] - rows[0]["vt"]).total_seconds() - 0.1) < 1e-3

    resp = await a.client.get(f"/v1/batches/{got['id']}", headers=a.headers())
    view = await resp.json()
    assert view["counts"] == {"queued": 2}
    assert view["progress"] == 0.0
    resp = await a.client.post(f"/v1/batches/{got['id']}/cancel", headers=a.headers())
    assert (await resp.json())["cancelled"] == 2
    resp = await a.client.get(f"/v1/batches/{got['id']}", headers=a.headers())
    view = await resp.json()
    assert (view["counts"], view["progress"]) == ({"cancelled": 2}, 1.0)


async def test_csv_batch(services: Services, client: Any) -> None:
    a = await _agency(services, client)
    csv_body = b"to,name\n09121234567,Ali\n+989121234568,Sara\nbad,Nobody\n"
    status, got = await _post(
        a, csv_body, "text/csv", {"template": "Hello {name}", "priority": "high"}
    )
    assert status == 202, got
    assert (got["accepted"], got["rejected_count"]) == (2, 1)
    bodies = sorted(
        r["body"]
        for r in await opened(
            services.store, "SELECT id, data_key, body_sealed, body FROM messages"
        )
    )
    assert bodies[0].startswith("Hello Ali")
    status, got = await _post(a, b"name\nAli\n", "text/csv", {"template": "Hi {name}"})
    assert (status, got["code"]) == (422, "invalid_value")


async def test_batch_refusals(services: Services, client: Any) -> None:
    a = await _agency(services, client, daily_fragment_quota=2)
    status, got = await _post(a, {"template": "x", "recipients": []})
    assert (status, got["code"]) == (422, "invalid_value")
    status, got = await _post(a, {"template": "x {a b}", "recipients": [{"to": "09121234567"}]})
    assert (status, got["code"]) == (422, "invalid_value")
    many = [{"to": f"0912123{i:04d}"} for i in range(3)]
    status, got = await _post(a, {"template": "hi", "recipients": many})
    assert (status, got["code"]) == (429, "daily_quota_exceeded")
    assert await services.store.pool.fetchval("SELECT count(*) FROM messages") == 0
    status, got = await _post(a, b"not json", "application/json")
    assert (status, got["code"]) == (400, "malformed_json")


async def test_batches_are_private(services: Services, client: Any) -> None:
    a = await _agency(services, client, "404051")
    b = await _agency(services, client, "404052")
    _, got = await _post(a, {"template": "x", "recipients": [{"to": "09121234567"}]})
    resp = await b.client.get(f"/v1/batches/{got['id']}", headers=b.headers())
    assert resp.status == 404
    resp = await b.client.post(f"/v1/batches/{got['id']}/cancel", headers=b.headers())
    assert resp.status == 404


async def test_replies_listing_is_per_agency_with_cursor(services: Services, client: Any) -> None:
    a = await _agency(services, client, "404061")
    b = await _agency(services, client, "404062")
    replies = services.store  # the ReplyService is exercised end to end in the SMPP tests
    from gateway.replies import ReplyService

    svc = ReplyService(replies, services.config.sms)
    await svc.accept("mci", "+989121234567", "404061", "سلام")
    await svc.accept("mci", "+989121234567", "4040612", "بخش دوم")
    await svc.accept("mci", "+989121234567", "404062", "to b")
    resp = await a.client.get("/v1/replies", params={"limit": "1"}, headers=a.headers())
    page = await resp.json()
    assert [r["text"] for r in page["replies"]] == ["سلام"]
    resp = await a.client.get(
        "/v1/replies", params={"after": page["next_cursor"]}, headers=a.headers()
    )
    assert [r["text"] for r in (await resp.json())["replies"]] == ["بخش دوم"]
    resp = await b.client.get("/v1/replies", headers=b.headers())
    assert [r["text"] for r in (await resp.json())["replies"]] == ["to b"]


async def test_large_batch_in_overlapping_chunks(services: Services, client: Any) -> None:
    """More recipients than one chunk: all stored, paced without a gap between chunks."""
    from gateway.batches import CHUNK

    a = await _agency(services, client, tps=1000)
    n = CHUNK + 5
    recipients = [{"to": f"+98912{i:07d}"} for i in range(n)]
    recipients[CHUNK + 1] = {"to": "nope"}
    status, got = await _post(a, {"template": "اطلاعیه", "recipients": recipients})
    assert status == 202, got
    assert (got["accepted"], got["rejected"]) == (
        n - 1,
        [{"index": CHUNK + 1, "code": "invalid_recipient"}],
    )
    row = await services.store.pool.fetchrow(
        "SELECT count(*) AS n, extract(epoch FROM max(vt) - min(vt)) AS span FROM queue"
    )
    assert row["n"] == n - 1
    assert abs(float(row["span"]) - (n - 2) / 1000) < 0.01


async def test_batch_over_quota_writes_nothing(services: Services, client: Any) -> None:
    from gateway.batches import CHUNK

    a = await _agency(services, client, daily_fragment_quota=CHUNK)
    recipients = [{"to": f"+98912{i:07d}"} for i in range(CHUNK + 10)]
    status, got = await _post(a, {"template": "x", "recipients": recipients})
    assert (status, got["code"]) == (429, "daily_quota_exceeded")
    assert await services.store.pool.fetchval("SELECT count(*) FROM messages") == 0
    assert await services.store.pool.fetchval("SELECT count(*) FROM queue") == 0
    assert await services.store.pool.fetchval("SELECT count(*) FROM batches") == 0
    assert await services.store.messages.usage(a.id, datetime.now(TEHRAN).date()) == 0


async def test_concurrent_batches_on_a_small_pool_do_not_deadlock(
    config: Any, pool: Any, sealer: Any, database_url: str, aiohttp_client: Any
) -> None:
    """Each batch holds its transaction's connection and takes another for opt-outs and the
    quota: with as many batches as connections, every one waited for a second, for good."""
    import asyncio
    from dataclasses import replace

    import asyncpg

    from gateway.api.app import build_app
    from gateway.services import build_services
    from gateway.store import Store

    small = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert small is not None
    try:
        cfg = replace(config, database=replace(config.database, pool_max_size=4))
        services = build_services(cfg, Store(small), sealer)
        client = await aiohttp_client(build_app(services))
        a = await _agency(services, client)
        recipients = [{"to": f"+98912{i:07d}"} for i in range(200)]
        async with asyncio.timeout(60):
            results = await asyncio.gather(
                *(
                    _post(a, {"template": f"اطلاعیه {n}", "recipients": recipients})
                    for n in range(8)
                )
            )
        assert [r[0] for r in results] == [202] * 8, results
        assert {r[1]["accepted"] for r in results} == {200}
        assert await small.fetchval("SELECT count(*) FROM messages") == 1600
    finally:
        await small.close()
