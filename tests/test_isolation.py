"""Isolation and auth (issue 9, item 6): agency B cannot read, cancel or list agency A's
messages, batches or replies by guessing or knowing their ids (the answer is the same 404 as
for an id that does not exist, so ids cannot be probed); per-key rate limits hold. Replayed,
expired and revoked credentials and admin/agency interchange are tested in tests/test_auth.py.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from gateway.api.app import build_app
from gateway.api.ratelimit import KeyRateLimiter
from gateway.config import Config
from gateway.errors import Problem
from gateway.sealing import Sealer
from gateway.services import build_services
from gateway.store import Store
from tests.test_messages_api import Agency, _agency


async def test_agency_b_cannot_touch_a_s_messages_batches_replies(
    services: Any, client: Any
) -> None:
    a = await _agency(services, client, "404012")
    b = await _agency(services, client, "404013")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    status, msg = await a.send({"to": "+989121234567", "text": "A's secret", "send_at": later})
    assert status == 202
    resp = await client.post(
        "/v1/batches",
        json={"template": "A {n}", "send_at": later, "recipients": [{"to": "+989121234568"}]},
        headers=a.headers(),
    )
    assert resp.status == 202
    batch = await resp.json()
    replies_a = await services.store.pool.execute(
        """INSERT INTO replies (id, agency_id, number, msisdn, body, operator)
           VALUES ($1, $2, '404012', '+989121234567', 'A''s reply', 'mci')""",
        uuid.uuid4(),
        a.id,
    )
    assert replies_a.endswith("1")
    guessed = str(uuid.uuid4())
    for path in (f"/v1/messages/{msg['id']}", f"/v1/batches/{batch['id']}"):
        for target in (path, path.rsplit("/", 1)[0] + "/" + guessed):
            got = await client.get(target, headers=b.headers())
            assert got.status == 404, target
            assert (await got.json())["code"] == "not_found"
            got = await client.post(target + "/cancel", headers=b.headers())
            assert got.status == 404, target
    resp = await client.get("/v1/replies", headers=b.headers())
    assert (await resp.json())["replies"] == []
    resp = await client.get("/v1/replies", headers=a.headers())
    assert len((await resp.json())["replies"]) == 1
    # Nothing of A's changed, and A still sees and can cancel its own.
    _, view = await a.get(msg["id"])
    assert view["status"] == "scheduled"
    assert (
        await client.post(f"/v1/messages/{msg['id']}/cancel", headers=a.headers())
    ).status == 200


def test_token_bucket_refuses_over_rate_then_refills() -> None:
    limiter = KeyRateLimiter(per_second=10, burst=5)
    for _ in range(5):
        limiter.check("k1", now=100.0)
    with pytest.raises(Problem) as refused:  # the sixth in the same instant
        limiter.check("k1", now=100.0)
    assert refused.value.code == "rate_limited"
    assert refused.value.extra["retry_after"] == 1
    limiter.check("k2", now=100.0)  # another key has its own bucket
    limiter.check("k1", now=100.11)  # 0.11 s at 10/s refills one token


async def test_rate_limited_key_gets_429_with_retry_after(
    config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any
) -> None:
    cfg = replace(config, auth=replace(config.auth, key_requests_per_second=2.0, key_burst=3))
    services = build_services(cfg, Store(pool), sealer)
    client = await aiohttp_client(build_app(services))
    a = await _agency(services, client)
    b: Agency = await _agency(services, client, "404013")
    statuses = []
    for i in range(6):
        resp = await client.post(
            "/v1/messages", json={"to": f"+98912123450{i}", "text": "x"}, headers=a.headers()
        )
        statuses.append(resp.status)
        if resp.status == 429:
            assert resp.headers["Retry-After"].isdigit()
            assert (await resp.json(content_type=None))["code"] == "rate_limited"
    assert statuses[:3] == [202, 202, 202]
    assert 429 in statuses[3:]
    got = await client.get("/v1/me", headers=a.headers())
    assert got.status == 429  # every agency route, not only sending
    assert (await b.send({"to": "+989121234599", "text": "b"}))[0] == 202  # B unaffected
