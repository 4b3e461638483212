"""Who may act on which box: attorneys of persons' boxes, representatives of companies' boxes."""

from __future__ import annotations

import asyncpg

from adapters.kartpooshe.ebox.models import Grant
from adapters.kartpooshe.ebox.store.db import Q, transaction


class Access:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._q = Q(pool)

    async def box_kind(self, owner_id: str) -> str | None:
        kind: str | None = await self._q.fetchval(
            "box_kind", "SELECT kind FROM boxes WHERE owner_id = $1", owner_id
        )
        return kind

    async def ensure_box(self, owner_id: str, kind: str) -> None:
        await self._q.execute(
            "box_ensure",
            "INSERT INTO boxes (owner_id, kind) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            owner_id,
            kind,
        )

    async def attorneys_of(self, owner_id: str) -> list[Grant]:
        rows = await self._q.fetch(
            "attorneys_of",
            """SELECT owner_id, national_code, granted_at FROM attorneys
               WHERE owner_id = $1 AND revoked_at IS NULL ORDER BY granted_at""",
            owner_id,
        )
        return [Grant(r["owner_id"], r["national_code"], r["granted_at"]) for r in rows]

    async def principals_of(self, national_code: str) -> list[str]:
        """The persons' boxes this national code may read as an attorney."""
        rows = await self._q.fetch(
            "principals_of",
            """SELECT owner_id FROM attorneys WHERE national_code = $1 AND revoked_at IS NULL
               ORDER BY owner_id""",
            national_code,
        )
        return [r["owner_id"] for r in rows]

    async def grant_attorney(self, owner_id: str, national_code: str) -> bool:
        status = await self._q.execute(
            "attorney_grant",
            """INSERT INTO attorneys (owner_id, national_code) VALUES ($1, $2)
               ON CONFLICT (owner_id, national_code) WHERE revoked_at IS NULL DO NOTHING""",
            owner_id,
            national_code,
        )
        return status.endswith(" 1")

    async def revoke_attorney(self, owner_id: str, national_code: str) -> bool:
        status = await self._q.execute(
            "attorney_revoke",
            """UPDATE attorneys SET revoked_at = now()
               WHERE owner_id = $1 AND national_code = $2 AND revoked_at IS NULL""",
            owner_id,
            national_code,
        )
        return status != "UPDATE 0"

    async def representatives_of(self, owner_id: str) -> list[Grant]:
        rows = await self._q.fetch(
            "representatives_of",
            """SELECT owner_id, national_code, added_at FROM representatives
               WHERE owner_id = $1 AND removed_at IS NULL ORDER BY added_at""",
            owner_id,
        )
        return [Grant(r["owner_id"], r["national_code"], r["added_at"]) for r in rows]

    async def companies_of(self, national_code: str) -> list[str]:
        rows = await self._q.fetch(
            "companies_of",
            """SELECT owner_id FROM representatives WHERE national_code = $1
               AND removed_at IS NULL ORDER BY owner_id""",
            national_code,
        )
        return [r["owner_id"] for r in rows]

    async def add_representative(self, owner_id: str, national_code: str, added_by: str) -> bool:
        status = await self._q.execute(
            "representative_add",
            """INSERT INTO representatives (owner_id, national_code, added_by)
               VALUES ($1, $2, $3)
               ON CONFLICT (owner_id, national_code) WHERE removed_at IS NULL DO NOTHING""",
            owner_id,
            national_code,
            added_by,
        )
        return status.endswith(" 1")

    async def remove_representative(self, owner_id: str, national_code: str) -> bool:
        """Remove one representative, never the last one (a company box must stay readable).

        The box row is locked first, so two representatives removing each other at once cannot
        both succeed and leave the box with nobody."""
        async with transaction(self._pool) as q:
            await q.execute(
                "box_lock", "SELECT 1 FROM boxes WHERE owner_id = $1 FOR UPDATE", owner_id
            )
            status = await q.execute(
                "representative_remove",
                """UPDATE representatives SET removed_at = now()
                   WHERE owner_id = $1 AND national_code = $2 AND removed_at IS NULL
                     AND (SELECT count(*) FROM representatives
                          WHERE owner_id = $1 AND removed_at IS NULL) > 1""",
                owner_id,
                national_code,
            )
        return status != "UPDATE 0"
