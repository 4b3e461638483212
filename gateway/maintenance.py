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

import logging

from gateway.metrics import STORE_VACUUMS
from gateway.store.maintenance import HOT_TABLES, MaintenanceStore

log = logging.getLogger(__name__)


class Vacuumer:
    def __init__(self, store: MaintenanceStore, dead_rows: int) -> None:
        self._store = store
        self._dead_rows = dead_rows
        self._warned = False

    async def run_once(self) -> list[str]:
        """Vacuum every hot table with at least ``dead_rows`` dead rows; the ones vacuumed."""
        autovacuum = await self._store.autovacuum_on()
        if not autovacuum and not self._warned:
            self._warned = True
            log.warning(
                "autovacuum is off on this PostgreSQL server: the gateway vacuums its own "
                "tables (database.vacuum_seconds); turn it on"
            )
        done: list[str] = []
        for t in await self._store.tables():
            if t.dead < self._dead_rows:
                continue
            if t.table not in HOT_TABLES and (autovacuum or t.dead < t.live // 5):
                continue
            if await self._store.vacuum(t.table):
                STORE_VACUUMS.labels(t.table).inc()
                log.info("vacuumed %s: %d dead rows, %d live", t.table, t.dead, t.live)
                done.append(t.table)
        return done
