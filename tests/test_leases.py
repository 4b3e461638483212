"""Leases in PostgreSQL (gateway/store/leases.py, gateway/leases.py): one holder at a time,
renewal by the holder only, takeover only after expiry, and the fair share of bind slots."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from adapters.sms.esme import BindSettings, OperatorClient, OperatorSettings
from gateway.leases import BindLeases
from gateway.store import Store


async def test_one_holder_renewal_and_takeover_after_expiry(pool: asyncpg.Pool) -> None:
    await pool.execute("DELETE FROM leases")
    leases = Store(pool).leases
    assert await leases.acquire("smpp:mci:0", "a", 0.5)
    assert await leases.acquire("smpp:mci:0", "a", 0.5)  # the holder renews
    assert not await leases.acquire("smpp:mci:0", "b", 0.5)  # another may not take it
    # Two nodes racing for a free slot: exactly one wins.
    got = await asyncio.gather(*(leases.acquire("smpp:mci:1", h, 5) for h in "abcdef"))
    assert sum(got) == 1
    await asyncio.sleep(0.7)
    assert await leases.acquire("smpp:mci:0", "b", 5)  # expired: b takes over
    assert not await leases.acquire("smpp:mci:0", "a", 5)  # and a cannot renew it back
    await leases.release("smpp:mci:0", "a")  # not a's any more: no effect
    assert [x.holder for x in await leases.live("smpp:mci:0")] == ["b"]


async def _noop(_: Any) -> None:
    return None


async def test_nodes_share_bind_slots_fairly(pool: asyncpg.Pool) -> None:
    """Three nodes, three binds (nothing listens, so the binds only try to connect): after a
    few rounds each node holds exactly one slot."""
    await pool.execute("DELETE FROM leases")
    store = Store(pool)
    bind = BindSettings(host="127.0.0.1", port=9, system_id="x", password="y")
    clients = [
        {"mci": OperatorClient(OperatorSettings(name="mci", binds=(bind,) * 3), _noop)}
        for _ in range(3)
    ]
    nodes = [BindLeases(store, c, ttl_seconds=30, holder=f"n{i}") for i, c in enumerate(clients)]
    try:
        await nodes[0].round()  # alone: takes all three
        assert len(nodes[0].held) == 3
        for _ in range(4):
            for node in nodes:
                await node.round()
        assert sorted(len(n.held) for n in nodes) == [1, 1, 1]
        assert len({s for n in nodes for s in n.held}) == 3
        assert all(
            c["mci"].bind_running(int(n.held[0][-1])) for c, n in zip(clients, nodes, strict=True)
        )
    finally:
        for node, c in zip(nodes, clients, strict=True):
            await c["mci"].stop()
            await node.stop()
