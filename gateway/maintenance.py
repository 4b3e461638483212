"""The gateway vacuums its own queue-like tables when dead rows pile up.

Rows of ``queue``, ``receipts_inbox``, ``message_parts``, ``jwt_replay`` and the like live for
seconds, so at full traffic they leave thousands of dead rows a second. Every claim of the
dispatcher then steps over them in the (lane, vt) index. With autovacuum on and the per-table
settings of migration 0013, PostgreSQL keeps up by itself. A server run with autovacuum off
(seen on the test machines) does not: in a soak at 70 % of capacity the queue reached 1.6
million dead rows in five minutes and the delivered rate fell from 2,440 to 375 messages a
second (docs/RELIABILITY.md §7). So the primary process also looks every
``database.vacuum_seconds`` and vacuums a hot table past ``database.vacuum_dead_rows``; and,
only while autovacuum is off, any other table of its schema past autovacuum's own default
trigger (20 % of the table dead, and at least ``vacuum_dead_rows``): in the same soak the
``messages`` table, updated at every status change, held 1.4 million dead rows after ten
minutes and latency crept up with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.metrics import STORE_VACUUMS
from gateway.store.maintenance import HOT_TABLES, MaintenanceStore

log = logging.getLogger(__name__)


class Vacuumer:
    def __init__(self, store: MaintenanceStore, dead_rows: int) -> None:
        self._store = store
        self._dead_rows = dead_rows
        self._warned = False
        # Large tables are vacuumed in a task of their own: in the fourth soak a throttled
        # VACUUM of `messages` ran 4.5 minutes, and while run_once waited for it the queue
        # gathered 1.5 million dead rows and dispatch stalled.
        self._large: asyncio.Task[list[str]] | None = None

    async def run_once(self) -> list[str]:
        """Vacuum every hot table with at least ``dead_rows`` dead rows, and start (in the
        background, one at a time) the large tables that need it; the hot ones vacuumed."""
        autovacuum = await self._store.autovacuum_on()
        if not autovacuum and not self._warned:
            self._warned = True
            log.warning(
                "autovacuum is off on this PostgreSQL server: the gateway vacuums its own "
                "tables (database.vacuum_seconds); turn it on"
            )
        hot: list[str] = []
        large: list[str] = []
        for t in await self._store.tables():
            if t.dead < self._dead_rows:
                continue
            if t.table in HOT_TABLES:
                hot.append(t.table)
            elif not autovacuum and t.dead >= t.live // 5:
                large.append(t.table)
        if large and (self._large is None or self._large.done()):
            self._large = asyncio.create_task(self._vacuum(large))
        return await self._vacuum(hot)

    async def large_done(self) -> list[str]:
        """The large tables the last background run vacuumed (waits for it)."""
        return await self._large if self._large is not None else []

    async def close(self) -> None:
        if self._large is not None and not self._large.done():
            self._large.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._large

    async def _vacuum(self, tables: list[str]) -> list[str]:
        done: list[str] = []
        for table in tables:
            if await self._store.vacuum(table):
                STORE_VACUUMS.labels(table).inc()
                log.info("vacuumed %s", table)
                done.append(table)
        return done
