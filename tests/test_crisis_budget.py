"""Crisis mode's budget is the platform's, not each node's (issue 8 part 7): three nodes'
dispatch budgets (OpsState, as each `payam serve` has one) share one PostgreSQL and take from
it as fast as they can; together they get the configured rate, not three times it."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import asyncpg

from gateway.config import Config, load_config
from gateway.operations import OpsState
from gateway.store import Store


async def test_three_nodes_share_one_crisis_budget(config: Config, pool: asyncpg.Pool) -> None:
    op = {"name": "mci", "prefixes": ["9"], "port": 1, "system_id": "p", "tps": 50.0}
    cfg = load_config(
        None,
        env={
            "PAYAM_DATABASE_URL": config.database.url,
            "PAYAM_SECURITY_MASTER_KEY_FILE": config.security.master_key_file,
            "PAYAM_OPERATORS": json.dumps([op]),
        },
    )
    cfg = replace(cfg, ops=replace(cfg.ops, crisis_share=0.2))  # 10 messages a second
    nodes = [OpsState(Store(pool), cfg) for _ in range(3)]
    rate = nodes[0].crisis_rate
    assert rate == 10.0
    await nodes[0].budget.reset()  # what POST /admin/v1/crisis-mode {"on": true} does
    await pool.execute(
        "INSERT INTO ops_flags (name, value, updated_by) VALUES ('crisis', '{\"on\": true}', 't')"
    )
    for n in nodes:
        await n.refresh()
        assert n.crisis
    granted = [0, 0, 0]
    started = time.monotonic()
    seconds = 2.0

    async def hammer(i: int) -> None:
        while time.monotonic() - started < seconds:
            got = await nodes[i].lane_budget(2, 4)  # a normal-lane claim of up to 4
            granted[i] += got
            if got:
                # Claimed fewer than granted now and then: the rest goes back.
                await nodes[i].lane_refund(2, 1)
                granted[i] -= 1
            await asyncio.sleep(0.005)

    await asyncio.gather(*(hammer(i) for i in range(3)))
    elapsed = time.monotonic() - started
    total = sum(granted)
    print(f"crisis budget: 3 nodes got {granted} = {total} in {elapsed:.2f} s at {rate}/s")
    # One second banked plus the rate: per-node buckets would give about three times this.
    assert total <= rate * elapsed + rate + 1, (granted, elapsed)
    assert total >= rate * (elapsed - 0.5), (granted, elapsed)
    assert all(g > 0 for g in granted)  # each node got a share
    # The crisis lane is never limited, and outside crisis mode nothing is.
    assert await nodes[1].lane_budget(0, 500) == 500
    await pool.execute("UPDATE ops_flags SET value = '{\"on\": false}' WHERE name = 'crisis'")
    await nodes[2].refresh()
    assert await nodes[2].lane_budget(3, 500) == 500
