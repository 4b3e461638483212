"""Table upkeep the gateway does itself: dead-row counts and VACUUM of the queue-like tables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from gateway.store.db import Executor

# The tables whose rows live for seconds (claimed, matched, delivered, expired): the only ones
# the gateway vacuums. A fixed list, so that a table name never comes from anywhere else.
HOT_TABLES = (
    "queue",
    "receipts_inbox",
    "message_parts",
    "jwt_replay",
    "callbacks",
    "mo_fragments",
    "ussd_sessions",
)
# Our tables are named in lower case with underscores: anything else is refused, not quoted.
_SAFE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
# One node at a time: VACUUM of one table by two nodes only waits.
_VACUUM_LOCK = 7040_0013


@dataclass(frozen=True, slots=True)
class TableRows:
    table: str
    live: int
    dead: int
    last_vacuum: datetime | None  # by autovacuum or anyone


class MaintenanceStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def autovacuum_on(self) -> bool:
        return bool(
            await self._db.fetchval(
                "autovacuum_setting", "SELECT current_setting('autovacuum') = 'on'"
            )
        )

    async def tables(self) -> list[TableRows]:
        """Row counts of every table of the gateway's schema, from the statistics collector."""
        rows = await self._db.fetch(
            "maintenance_dead_rows",
            """SELECT relname, n_live_tup, n_dead_tup,
                      greatest(last_vacuum, last_autovacuum) AS last_vacuum
               FROM pg_stat_user_tables
               WHERE schemaname = current_schema()
               ORDER BY relname""",
        )
        return [
            TableRows(r["relname"], int(r["n_live_tup"]), int(r["n_dead_tup"]), r["last_vacuum"])
            for r in rows
        ]

    async def vacuum(self, table: str) -> bool:
        """VACUUM (ANALYZE) one of the schema's tables (as listed by ``tables``), unless another
        node is vacuuming: False then. VACUUM cannot run in a transaction: it runs on a
        connection of its own, under a session advisory lock released before the connection
        goes back to the pool."""
        if not _SAFE_NAME.fullmatch(table):
            raise ValueError(f"not a table the gateway vacuums: {table!r}")
        # Separate locks: a long VACUUM of a large table must not keep the queue tables from
        # theirs on another node.
        lock = _VACUUM_LOCK if table in HOT_TABLES else _VACUUM_LOCK + 1
        conn = self._db.raw()
        async with conn.acquire() as c:
            if not await c.fetchval("SELECT pg_try_advisory_lock($1)", lock):
                return False
            try:
                if table not in HOT_TABLES:
                    # A large table is vacuumed at autovacuum's own pace (its default cost
                    # delay), so that it does not take the disk and a core from the traffic.
                    await c.execute("SET vacuum_cost_delay = '2ms'")
                await c.execute(f'VACUUM (ANALYZE) "{table}"')
            finally:
                await c.execute("RESET vacuum_cost_delay")
                await c.execute("SELECT pg_advisory_unlock($1)", lock)
        return True
