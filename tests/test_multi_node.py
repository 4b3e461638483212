"""Several nodes (issue 9, item 4): three ``payam serve`` processes, each in its own network
namespace with its own address, sharing one PostgreSQL. Each of the operator's three binds is
held by exactly one node (a lease, gateway/leases.py); kill -9 one node while it dispatches and
its bind and its claimed messages are taken over within 15 s, nothing lost.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from adapters.sms.simulator import SimulatorSettings, SmscSimulator
from tests.gateway_process import GatewayProcess, free_port, gateway_env, operator
from tests.netns import Relay, make_network
from tests.reliability_setup import ledger_problems, make_tenant, post_batch, wait_all_final

NODES, BINDS, N = 3, 3, 1500
BIND_LEASE, CLAIM_LEASE, CLAIM_BATCH, WORKERS = 6, 5, 32, 2
TAKEOVER_LIMIT = 15.0


async def _slots(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch(
        "SELECT name, holder FROM leases WHERE name LIKE 'smpp:%' AND expires_at > now()"
    )
    return {r["name"]: r["holder"] for r in rows}


async def test_three_nodes_one_bind_each_takeover_after_kill(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await pool.execute("DELETE FROM leases")
    t0 = time.monotonic()
    phases: dict[str, float] = {}
    net = make_network(NODES)
    if net.fallback:
        print(f"\nRELIABILITY multi-node: network namespaces unavailable ({net.fallback})")
    db = urlsplit(database_url)
    relay = Relay((net.host_ip, free_port(net.host_ip)), (db.hostname or "", db.port or 5432))
    await relay.start()
    node_db = database_url.replace(f"{db.hostname}:{db.port}", f"{net.host_ip}:{relay.listen[1]}")
    sim = SmscSimulator(SimulatorSettings(host=net.host_ip, port=0, dlr_delay_seconds=0.05))
    await sim.start()
    key_file = tmp_path / "master.key"
    tenant = await make_tenant(pool, database_url, key_file)
    nodes: list[GatewayProcess] = []
    max_bound = 0
    sampling = True

    async def sample() -> None:
        nonlocal max_bound
        while sampling:
            max_bound = max(max_bound, sim.bound)
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    try:
        for i in range(NODES):
            env = gateway_env(
                node_db,
                str(key_file),
                8040,
                [operator(sim.port, host=net.host_ip, binds=BINDS, tps=100.0)],
                PAYAM_HTTP_HOST=net.node_ips[i],
                PAYAM_SMS_BIND_LEASE_SECONDS=str(BIND_LEASE),
                PAYAM_SMS_LEASE_SECONDS=str(CLAIM_LEASE),
                PAYAM_SMS_CLAIM_BATCH=str(CLAIM_BATCH),
                PAYAM_SMS_DISPATCH_WORKERS=str(WORKERS),
                PAYAM_DATABASE_POOL_MAX_SIZE="6",
            )
            if net.fallback:
                env["PAYAM_HTTP_PORT"] = str(free_port())
            nodes.append(GatewayProcess(env, tmp_path / f"node{i}.log", net.prefix(i)))
            nodes[-1].start()
        for node in nodes:
            await node.wait_ready()
        phases["ready"] = time.monotonic() - t0
        # Every bind held, by three different nodes, and bound at the SMSC once each.
        deadline = time.monotonic() + 30
        while True:
            slots = await _slots(pool)
            if len(slots) == BINDS and len(set(slots.values())) == NODES and sim.bound == BINDS:
                break
            assert time.monotonic() < deadline, (slots, sim.bound)
            await asyncio.sleep(0.2)
        phases["spread"] = time.monotonic() - t0
        peers = {c.writer.get_extra_info("peername")[0] for c in sim.bound_conns()}
        if not net.fallback:
            assert peers == set(net.node_ips)  # each bind from its own node's address
        await post_batch(nodes[0].url, tenant, 0, N)
        deadline = time.monotonic() + 60
        while sim.ledger.messages < N // 3:
            assert time.monotonic() < deadline, "dispatch stalled"
            await asyncio.sleep(0.02)
        victim = nodes[1]
        victim_holder = next(
            h
            for h in set(slots.values())
            if str(_pid_in(h)) == str(victim.proc.pid)  # type: ignore[union-attr]
        )
        lost_slot = next(s for s, h in slots.items() if h == victim_holder)
        victim.kill9()
        killed = time.monotonic()
        at_kill = sim.ledger.messages
        assert at_kill < N, "the kill came after dispatch ended"
        while True:
            now_slots = await _slots(pool)
            holder = now_slots.get(lost_slot)
            if holder is not None and holder != victim_holder and sim.bound == BINDS:
                break
            assert time.monotonic() - killed < TAKEOVER_LIMIT, (now_slots, sim.bound)
            await asyncio.sleep(0.1)
        takeover = time.monotonic() - killed
        finished = await wait_all_final(pool, N, timeout=120)
        all_done = time.monotonic() - killed
        assert await ledger_problems(pool) == {
            "not_final": 0,
            "final_events_not_one": 0,
            "queue": 0,
        }
        assert await pool.fetchval("SELECT count(*) FROM messages WHERE status='delivered'") == N
        assert sim.ledger.messages == N
        assert max_bound <= BINDS  # never two nodes on one bind
        duplicates = sim.ledger.duplicates
        assert duplicates <= (WORKERS + 1) * CLAIM_BATCH
        print(
            f"\nRELIABILITY multi-node: namespaces={not net.fallback} peers={sorted(peers)} "
            f"killed_at={at_kill}/{N} bind_takeover_s={takeover:.1f} "
            f"all_final_after_kill_s={all_done:.1f} (waited {finished:.1f}) "
            f"duplicates={duplicates} max_bound={max_bound} "
            f"phases={ {k: round(v, 1) for k, v in phases.items()} }"
        )
    finally:
        sampling = False
        await sampler
        # In threads: the relay to PostgreSQL runs on this loop, and a stopping node still
        # writes to the database (a blocking wait here would stall it until the kill timeout).
        await asyncio.gather(*(asyncio.to_thread(node.stop) for node in nodes))
        await sim.stop()
        await relay.stop()
        net.teardown()


def _pid_in(holder: str) -> int:
    """Holders are host:pid:random (gateway/leases.py node_identity)."""
    return int(holder.split(":")[1])
