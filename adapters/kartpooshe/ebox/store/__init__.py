"""The e-box's only SQL: one repository per area, returning plain records from models.py."""

from __future__ import annotations

import asyncpg

from adapters.kartpooshe.ebox.store.access import Access
from adapters.kartpooshe.ebox.store.letters import Letters
from adapters.kartpooshe.ebox.store.logins import Logins
from adapters.kartpooshe.ebox.store.outbox import Outbox


class EboxStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.letters = Letters(pool)
        self.access = Access(pool)
        self.logins = Logins(pool)
        self.outbox = Outbox(pool)

    async def ping(self) -> bool:
        return bool(await self.pool.fetchval("SELECT 1") == 1)


__all__ = ["EboxStore"]
