"""Administrators' operations over real HTTP, real PostgreSQL and real SMPP to the simulator:
each one's effect on traffic, and its audit record (issue 8)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from adapters.sms.simulator import SmscSimulator
from gateway import ops_metrics
from gateway.config import Config
from gateway.sealing import Sealer
from gateway.services import Services
from gateway.store import Store
from gateway.store.models import AuditEntry
from tests.conftest import auth
from tests.sms_harness import agency, gateway, sms_config, start_sim, statuses, wait_for

Node = tuple[SmscSimulator, Services, Any, str]


@pytest.fixture
async def node(config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any) -> Any:
    """Simulator + gateway (operator mci at 20 msg/s contract, crisis share 0.25) + admin."""
    sims: list[SmscSimulator] = []

    async def make(**sim_opts: Any) -> Node:
        sim = await start_sim(**sim_opts)
        sims.append(sim)
        cfg = sms_config(config, sim.port, tps=20.0, binds=2)
        cfg = replace(cfg, ops=replace(cfg.ops, crisis_share=0.25, refresh_seconds=0.2))
        services, client = await gateway(cfg, Store(pool), sealer, aiohttp_client)
        issued = await services.credentials.create_admin_token(name="ops", role="admin", actor="t")
        return sim, services, client, issued.value

    yield make
    for sim in sims:
        await sim.stop()


async def _audit(services: Services, action: str) -> list[AuditEntry]:
    return await services.store.audit.list(action=action, since=None, limit=10, before_id=None)


async def _post(client: Any, token: str, path: str, body: Any = None) -> tuple[int, Any]:
    resp = await client.post(path, json=body, headers=auth(token))
    return resp.status, await resp.json(content_type=None)


async def _agency_statuses(services: Services, agency_id: uuid.UUID) -> dict[str, int]:
    rows = await services.store.pool.fetch(
        "SELECT status, count(*) AS n FROM messages WHERE agency_id = $1 GROUP BY status",
        agency_id,
    )
    return {r["status"]: int(r["n"]) for r in rows}


async def test_pause_and_resume_operator(node: Any) -> None:
    sim, services, client, admin = await node()
    a = await agency(services, client)
    status, body = await _post(
        client, admin, "/admin/v1/operators/mci/pause", {"reason": "SMSC maintenance"}
    )
    assert status == 200
    assert body["operators"][0]["paused"] is True
    for i in range(5):
        assert (await a.send({"to": f"+98912000100{i}", "text": "x"}))[0] == 202

    async def all_paused() -> bool:
        n = await services.store.pool.fetchval(
            "SELECT count(*) FROM messages WHERE error_code = 'OPERATOR_PAUSED'"
        )
        return int(n) == 5

    await wait_for(all_paused)
    await asyncio.sleep(0.5)
    assert sim.received == []  # nothing reached the SMSC
    # A paused operator is a link error: waiting does not use up the messages' attempts.
    assert await services.store.pool.fetchval("SELECT max(attempts) FROM messages") == 0
    assert (await statuses(services)) == {"queued": 5}

    status, body = await _post(client, admin, "/admin/v1/operators/mci/resume")
    assert (status, body["operators"][0]["paused"]) == (200, False)
    await wait_for(lambda: _is(services, {"delivered": 5}))
    assert len(sim.received) == 5

    (paused,) = await _audit(services, "operator.pause")
    assert (paused.target, paused.detail) == ("mci", {"paused": True, "reason": "SMSC maintenance"})
    assert paused.actor.startswith("admin:") or paused.actor
    assert len(await _audit(services, "operator.resume")) == 1
    metrics = await (await client.get("/metrics")).text()
    assert 'payam_operator_paused{operator="mci"} 0.0' in metrics
    assert 'payam_admin_operations_total{kind="operator.pause",outcome="ok"}' in metrics

    status, body = await _post(client, admin, "/admin/v1/operators/nosuch/pause")
    assert (status, body["code"]) == (404, "not_found")


async def _is(services: Services, want: dict[str, int]) -> bool:
    return await statuses(services) == want


async def test_suspended_agency_queue_stops_at_once_and_new_sends_are_refused(node: Any) -> None:
    sim, services, client, admin = await node()
    a = await agency(services, client, "404012")
    b = await agency(services, client, "404013")
    # Hold traffic at the operator so both agencies have messages waiting in the queue.
    await _post(client, admin, "/admin/v1/operators/mci/pause")
    for i in range(4):
        assert (await a.send({"to": f"+98912000200{i}", "text": "a"}))[0] == 202
        assert (await b.send({"to": f"+98912000300{i}", "text": "b"}))[0] == 202

    status, body = await _post(
        client, admin, f"/admin/v1/agencies/{a.id}/suspend", {"reason": "unpaid"}
    )
    assert (status, body["agency"]["status"]) == (200, "suspended")
    await _post(client, admin, "/admin/v1/operators/mci/resume")

    await wait_for(lambda: _count(services, b.id, "delivered", 4))
    await asyncio.sleep(1.0)  # several dispatch rounds later, a's messages still wait
    assert await _agency_statuses(services, a.id) == {"queued": 4}
    # Held on purpose: out of the depth and oldest-age gauges (no crisis-lane page for them).
    await ops_metrics.sample(services)
    assert REGISTRY.get_sample_value("payam_sms_queue_held", {"lane": "normal"}) == 4
    assert await services.store.queue.depths() == [
        (0, 0, 0.0),
        (1, 0, 0.0),
        (2, 0, 0.0),
        (3, 0, 0.0),
    ]
    assert [m.text.split("\n")[0] for m in sim.received] == ["b"] * 4  # opt-out hint after

    status, body = await a.send({"to": "+989120002999", "text": "a"})
    assert (status, body["code"]) == (403, "agency_suspended")

    (entry,) = await _audit(services, "agency.suspend")
    assert entry.target == str(a.id)
    assert entry.detail == {"reason": "unpaid", "queue_rows": 4}

    status, _ = await _post(client, admin, f"/admin/v1/agencies/{a.id}/resume")
    assert status == 200
    await wait_for(lambda: _count(services, a.id, "delivered", 4))
    (entry,) = await _audit(services, "agency.resume")
    assert entry.detail["queue_rows"] == 4


async def _count(services: Services, agency_id: uuid.UUID, status: str, n: int) -> bool:
    return (await _agency_statuses(services, agency_id)).get(status, 0) == n


async def test_crisis_mode_throttles_other_lanes_and_crisis_gets_through(node: Any) -> None:
    sim, services, client, admin = await node()
    a = await agency(services, client, tps=1000)
    status, body = await _post(
        client, admin, "/admin/v1/crisis-mode", {"on": True, "reason": "earthquake"}
    )
    assert status == 200
    # 25% of mci's contract 20 msg/s: the non-crisis lanes share 5 messages a second.
    assert body["crisis"] == {"on": True, "non_crisis_rate_per_second": 5.0}
    started = time.monotonic()
    for i in range(40):
        assert (await a.send({"to": f"+9891200040{i:02d}", "text": "bulk", "priority": "normal"}))[
            0
        ] == 202
    status, crisis = await a.send({"to": "+989120009999", "text": "هشدار", "priority": "crisis"})
    assert status == 202

    async def crisis_delivered() -> bool:
        return (await a.get(crisis["id"]))[1]["status"] == "delivered"

    await wait_for(crisis_delivered, timeout=10)
    await asyncio.sleep(2.0)
    elapsed = time.monotonic() - started
    sent_normal = sum(1 for m in sim.received if m.text.startswith("bulk"))
    # At most 5/s plus one second banked; without crisis mode all 40 leave within a second.
    assert sent_normal <= 5 * elapsed + 5 + 2, (sent_normal, elapsed)
    assert sent_normal < 40
    print(f"crisis mode: {sent_normal} normal messages left in {elapsed:.1f} s")

    status, body = await _post(client, admin, "/admin/v1/crisis-mode", {"on": False})
    assert body["crisis"]["on"] is False
    await wait_for(lambda: _count(services, a.id, "delivered", 41), timeout=15)
    entries = await _audit(services, "crisis.on")
    assert [(e.target, e.detail["reason"]) for e in entries] == [("platform", "earthquake")]
    assert len(await _audit(services, "crisis.off")) == 1
    status, body = await _post(client, admin, "/admin/v1/crisis-mode", {"on": "yes"})
    assert (status, body["code"]) == (422, "wrong_type")


async def _batch(a: Any, n: int, prefix: str) -> str:
    body = {
        "template": "قبض {n}",
        "priority": "normal",
        "recipients": [{"to": f"+98912{prefix}{i:03d}", "params": {"n": str(i)}} for i in range(n)],
    }
    resp = await a.client.post("/v1/batches", json=body, headers=a.headers())
    got = await resp.json()
    assert resp.status == 202, got
    return str(got["id"])


async def test_admin_cancels_a_waiting_batch(node: Any) -> None:
    sim, services, client, admin = await node()
    a = await agency(services, client)
    await _post(client, admin, "/admin/v1/operators/mci/pause")
    batch_id = await _batch(a, 6, "0005")
    await asyncio.sleep(0.5)
    status, body = await _post(
        client, admin, f"/admin/v1/batches/{batch_id}/cancel", {"reason": "wrong template"}
    )
    assert (status, body) == (200, {"id": batch_id, "cancelled": 6})
    await _post(client, admin, "/admin/v1/operators/mci/resume")
    await asyncio.sleep(1.0)
    assert sim.received == []
    assert await statuses(services) == {"cancelled": 6}
    (entry,) = await _audit(services, "batch.cancel")
    assert entry.target == batch_id
    assert entry.detail == {"agency_id": str(a.id), "cancelled": 6, "reason": "wrong template"}
    status, body = await _post(client, admin, f"/admin/v1/batches/{uuid.uuid4()}/cancel")
    assert (status, body["code"]) == (404, "not_found")
    status, body = await _post(client, admin, f"/admin/v1/batches/{batch_id}/resend")
    assert (status, body["code"]) == (409, "batch_cancelled")


async def test_admin_resends_the_undelivered_part_of_a_batch(node: Any) -> None:
    sim, services, client, admin = await node(outcomes={"UNDELIV": 1.0})
    a = await agency(services, client)
    batch_id = await _batch(a, 5, "0006")
    await wait_for(lambda: _is(services, {"undeliverable": 5}))
    sim.settings.outcomes = {"DELIVRD": 1.0}  # the operator fixed its side
    status, body = await _post(
        client, admin, f"/admin/v1/batches/{batch_id}/resend", {"reason": "HLR outage"}
    )
    assert (status, body) == (200, {"id": batch_id, "requeued": 5})
    await wait_for(lambda: _is(services, {"delivered": 5}))
    assert len(sim.received) == 10  # each sent twice
    resent = await services.store.pool.fetchval(
        "SELECT count(*) FROM message_events e JOIN messages m ON m.id = e.message_id "
        "WHERE m.batch_id = $1 AND e.status = 'queued' AND e.detail->>'resend' = 'true'",
        uuid.UUID(batch_id),
    )
    assert resent == 5
    (entry,) = await _audit(services, "batch.resend")
    assert entry.detail == {"agency_id": str(a.id), "requeued": 5, "reason": "HLR outage"}


async def test_viewer_token_cannot_operate(node: Any) -> None:
    _, services, client, _ = await node()
    viewer = await services.credentials.create_admin_token(name="v", role="viewer", actor="t")
    status, _body = await _post(client, viewer.value, "/admin/v1/operators/mci/pause")
    assert status == 403
    resp = await client.get("/admin/v1/operations", headers=auth(viewer.value))
    assert resp.status == 200
    assert (await resp.json())["operators"] == [
        {"name": "mci", "paused": False, "binds": 2, "drained_binds": []}
    ]


async def test_drain_a_bind_gracefully_and_bind_it_again(node: Any) -> None:
    # Slow answers, so submits are in flight on both binds when the drain starts.
    sim, services, client, admin = await node(response_delay_seconds=0.3)
    a = await agency(services, client)
    smpp = services.ops.state.clients["mci"]
    assert await smpp.wait_bound(10)
    assert smpp.binds_up == 2
    for i in range(10):
        assert (await a.send({"to": f"+98912000700{i}", "text": "x"}))[0] == 202
    await asyncio.sleep(0.2)
    status, body = await _post(
        client, admin, "/admin/v1/operators/mci/binds/1/drain", {"reason": "SMSC node swap"}
    )
    assert (status, body["operators"][0]["drained_binds"]) == (200, [1])

    async def one_bind() -> bool:
        return smpp.binds_up == 1 and sim.unbinds == 1

    await wait_for(one_bind)
    for i in range(10):
        assert (await a.send({"to": f"+98912000800{i}", "text": "y"}))[0] == 202
    await wait_for(lambda: _is(services, {"delivered": 20}))
    # Nothing in flight was lost or retried because of the drain, and it stays unbound.
    assert await services.store.pool.fetchval("SELECT max(attempts) FROM messages") == 1
    assert await services.store.pool.fetchval("SELECT count(*) FROM message_parts") == 20
    await asyncio.sleep(1.0)
    assert (smpp.binds_up, sim.binds) == (1, 2)

    status, body = await _post(client, admin, "/admin/v1/operators/mci/binds/1/undrain")
    assert (status, body["operators"][0]["drained_binds"]) == (200, [])
    assert await smpp.wait_bound(10)
    assert sim.binds == 3
    (entry,) = await _audit(services, "bind.drain")
    assert (entry.target, entry.detail["reason"]) == ("mci:1", "SMSC node swap")
    assert len(await _audit(services, "bind.undrain")) == 1
    for path in ("/admin/v1/operators/mci/binds/5/drain", "/admin/v1/operators/mci/binds/x/drain"):
        status, body = await _post(client, admin, path)
        assert (status, body["code"]) == (404, "not_found")
