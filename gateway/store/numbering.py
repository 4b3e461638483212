"""Numbering plan rows: allocations, their history, and the serialising lock."""

from __future__ import annotations

import uuid
from datetime import datetime

from gateway.store.db import Executor, Record
from gateway.store.models import Allocation

_COLUMNS = """id, kind, value, match_key, agency_id, parent_id, label, allocated_at, allocated_by,
    released_at, released_by, quarantine_until"""

# pg_advisory_xact_lock key: allocations are rare and must be race-free across nodes, so they are
# simply serialised for the length of one transaction.
_ALLOCATION_LOCK = 0x7061_7961_6D31  # "payam1"


def _allocation(row: Record) -> Allocation:
    return Allocation(**dict(row))


class NumberingStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def lock(self) -> None:
        """Take the allocation lock until the end of the current transaction."""
        await self._db.execute(
            "numbering_lock", "SELECT pg_advisory_xact_lock($1)", _ALLOCATION_LOCK
        )

    async def blocking(self, kinds: list[str], now: datetime) -> list[Allocation]:
        """Allocations that still occupy their key: active ones and those in quarantine."""
        rows = await self._db.fetch(
            "numbering_blocking",
            f"""SELECT {_COLUMNS} FROM numbering
                WHERE kind = ANY($1::text[])
                  AND (released_at IS NULL OR quarantine_until > $2)""",
            kinds,
            now,
        )
        return [_allocation(r) for r in rows]

    async def insert(
        self,
        *,
        kind: str,
        value: str,
        match_key: str,
        agency_id: uuid.UUID,
        parent_id: int | None,
        label: str,
        allocated_by: str,
    ) -> Allocation:
        row = await self._db.fetchrow(
            "numbering_insert",
            f"""INSERT INTO numbering (kind, value, match_key, agency_id, parent_id, label,
                    allocated_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}""",
            kind,
            value,
            match_key,
            agency_id,
            parent_id,
            label,
            allocated_by,
        )
        assert row is not None
        return _allocation(row)

    async def get(self, allocation_id: int) -> Allocation | None:
        row = await self._db.fetchrow(
            "numbering_get", f"SELECT {_COLUMNS} FROM numbering WHERE id = $1", allocation_id
        )
        return _allocation(row) if row else None

    async def release(
        self, allocation_id: int, *, released_by: str, now: datetime, quarantine_until: datetime
    ) -> list[Allocation]:
        """Release an active allocation and its active children; return what was released."""
        rows = await self._db.fetch(
            "numbering_release",
            f"""UPDATE numbering
                SET released_at = $2, released_by = $3, quarantine_until = $4
                WHERE (id = $1 OR parent_id = $1) AND released_at IS NULL
                RETURNING {_COLUMNS}""",
            allocation_id,
            now,
            released_by,
            quarantine_until,
        )
        return [_allocation(r) for r in rows]

    async def for_agency(self, agency_id: uuid.UUID, *, include_released: bool) -> list[Allocation]:
        rows = await self._db.fetch(
            "numbering_for_agency",
            f"""SELECT {_COLUMNS} FROM numbering
                WHERE agency_id = $1 AND ($2 OR released_at IS NULL)
                ORDER BY kind, value, allocated_at""",
            agency_id,
            include_released,
        )
        return [_allocation(r) for r in rows]

    async def held_senders(
        self, agency_ids: list[uuid.UUID], values: list[str]
    ) -> set[tuple[uuid.UUID, str]]:
        """Which (agency, sender) pairs are currently allocated: checked again at commit."""
        rows = await self._db.fetch(
            "numbering_held_senders",
            """SELECT agency_id, value FROM numbering
               WHERE released_at IS NULL AND kind IN ('shortcode', 'sub_number', 'mask')
                 AND (agency_id, value) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))""",
            agency_ids,
            values,
        )
        return {(r["agency_id"], r["value"]) for r in rows}

    async def history(self, match_key: str, kinds: list[str]) -> list[Allocation]:
        rows = await self._db.fetch(
            "numbering_history",
            f"""SELECT {_COLUMNS} FROM numbering
                WHERE match_key = $1 AND kind = ANY($2::text[])
                ORDER BY allocated_at, id""",
            match_key,
            kinds,
        )
        return [_allocation(r) for r in rows]

    async def holder_at(self, match_key: str, kinds: list[str], at: datetime) -> Allocation | None:
        """Who held this number/code/mask at a moment (later features verify messages by it)."""
        row = await self._db.fetchrow(
            "numbering_holder_at",
            f"""SELECT {_COLUMNS} FROM numbering
                WHERE match_key = $1 AND kind = ANY($2::text[]) AND allocated_at <= $3
                  AND (released_at IS NULL OR released_at > $3)
                ORDER BY allocated_at DESC LIMIT 1""",
            match_key,
            kinds,
            at,
        )
        return _allocation(row) if row else None
