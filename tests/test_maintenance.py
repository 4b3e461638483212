"""The gateway vacuums its queue-like tables itself when dead rows pile up (gateway/maintenance.py).

The test server runs with autovacuum off, as the soak machine did, so nothing else removes the
dead rows here: what the test sees is the gateway's own doing."""

from __future__ import annotations

import asyncpg
import pytest

from gateway.maintenance import Vacuumer
from gateway.store.db import Executor
from gateway.store.maintenance import HOT_TABLES, MaintenanceStore


async def _stats(pool: asyncpg.Pool, table: str) -> tuple[int, int]:
    async with pool.acquire() as c:
        await c.execute("SELECT pg_stat_force_next_flush()")
    async with pool.acquire() as c:
        # A fresh snapshot of the statistics (they are cached per transaction otherwise).
        await c.execute("SELECT pg_stat_clear_snapshot()")
        row = await c.fetchrow(
            "SELECT n_dead_tup, vacuum_count FROM pg_stat_user_tables WHERE relname = $1", table
        )
    assert row is not None
    return int(row["n_dead_tup"]), int(row["vacuum_count"])


async def _dead_jtis(pool: asyncpg.Pool, n: int) -> None:
    async with pool.acquire() as c:
        await c.execute(
            """INSERT INTO jwt_replay (key_id, jti, expires_at)
               SELECT 'k', 'j' || g, now() FROM generate_series(1, $1) g""",
            n,
        )
        await c.execute("DELETE FROM jwt_replay WHERE key_id = 'k'")
        await c.execute("SELECT pg_stat_force_next_flush()")


async def test_a_hot_table_past_the_threshold_is_vacuumed_and_others_are_not(
    pool: asyncpg.Pool,
) -> None:
    store = MaintenanceStore(Executor(pool))
    async with pool.acquire() as c:
        # Earlier tests may have left dead queue rows: none now, so that "queue" is a table
        # under the threshold in every run.
        await c.execute("VACUUM queue")
    await _dead_jtis(pool, 3000)
    dead, vacuums = await _stats(pool, "jwt_replay")
    assert dead >= 3000
    queue_dead, queue_vacuums = await _stats(pool, "queue")
    assert queue_dead < 1000

    # Below the threshold: left alone.
    assert await Vacuumer(store, dead_rows=dead + 1).run_once() == []
    assert (await _stats(pool, "jwt_replay"))[1] == vacuums

    done = await Vacuumer(store, dead_rows=1000).run_once()
    assert "jwt_replay" in done
    dead_after, vacuums_after = await _stats(pool, "jwt_replay")
    assert vacuums_after == vacuums + 1
    assert dead_after < 1000
    # A table under the threshold is not touched.
    assert "queue" not in done
    assert (await _stats(pool, "queue"))[1] == queue_vacuums


async def test_a_table_name_that_is_not_plain_is_refused(pool: asyncpg.Pool) -> None:
    store = MaintenanceStore(Executor(pool))
    assert "messages" not in HOT_TABLES
    for name in ('messages"; DROP TABLE messages; --', "Messages", "a b", ""):
        with pytest.raises(ValueError, match="not a table the gateway vacuums"):
            await store.vacuum(name)


async def test_other_tables_only_past_a_fifth_dead_and_only_without_autovacuum(
    pool: asyncpg.Pool,
) -> None:
    store = MaintenanceStore(Executor(pool))
    assert not await store.autovacuum_on()  # the test server, as on the soak machine
    async with pool.acquire() as c:
        await c.execute(
            """INSERT INTO portability (msisdn, operator)
               SELECT '98912' || lpad(g::text, 7, '0'), 'mci' FROM generate_series(1, 10000) g"""
        )
        # 1,000 of 10,000 dead: a tenth, under autovacuum's 20 % default: left alone.
        await c.execute("DELETE FROM portability WHERE msisdn <= '989120001000'")
    dead, vacuums = await _stats(pool, "portability")
    assert dead >= 1000
    v = Vacuumer(store, dead_rows=500)
    await v.run_once()
    assert "portability" not in await v.large_done()
    async with pool.acquire() as c:  # 3,000 of 10,000: past a fifth
        await c.execute("DELETE FROM portability WHERE msisdn <= '989120003000'")
    assert (await _stats(pool, "portability"))[0] >= 3000
    v = Vacuumer(store, dead_rows=500)
    assert "portability" not in await v.run_once()  # not waited for: a task of its own
    assert "portability" in await v.large_done()
    assert (await _stats(pool, "portability"))[1] == vacuums + 1


async def test_another_node_vacuuming_means_this_one_skips(pool: asyncpg.Pool) -> None:
    store = MaintenanceStore(Executor(pool))
    async with pool.acquire() as other:
        await other.execute("SELECT pg_advisory_lock(70400013)")
        try:
            assert await store.vacuum("jwt_replay") is False
        finally:
            await other.execute("SELECT pg_advisory_unlock(70400013)")
    assert await store.vacuum("jwt_replay") is True
