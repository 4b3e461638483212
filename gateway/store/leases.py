"""Leases in PostgreSQL: named slots, each held by one holder until its expiry (0007_leases.sql).

The database clock decides expiry (``now()``), so nodes with skewed clocks still agree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.store.db import Executor


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    expires_at: datetime


class LeaseStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def acquire(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take the lease if it is free or expired, or renew it if ``holder`` has it."""
        row = await self._db.fetchrow(
            "lease_acquire",
            """INSERT INTO leases (name, holder, expires_at)
               VALUES ($1, $2, now() + make_interval(secs => $3))
               ON CONFLICT (name) DO UPDATE SET
                   holder = EXCLUDED.holder,
                   expires_at = EXCLUDED.expires_at,
                   acquired_at = CASE WHEN leases.holder = EXCLUDED.holder
                                      THEN leases.acquired_at ELSE now() END
               WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < now()
               RETURNING holder""",
            name,
            holder,
            float(ttl_seconds),
        )
        return row is not None

    async def release(self, name: str, holder: str) -> None:
        await self._db.execute(
            "lease_release", "DELETE FROM leases WHERE name = $1 AND holder = $2", name, holder
        )

    async def live(self, prefix: str) -> list[Lease]:
        """Unexpired leases whose name starts with ``prefix``."""
        rows = await self._db.fetch(
            "lease_live",
            """SELECT name, holder, expires_at FROM leases
               WHERE starts_with(name, $1) AND expires_at > now() ORDER BY name""",
            prefix,
        )
        return [Lease(r["name"], r["holder"], r["expires_at"]) for r in rows]
