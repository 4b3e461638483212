"""Agency rows."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.store.db import Executor, Record
from gateway.store.models import Agency

_COLUMNS = """id, name_fa, name_en, legal_id, contact_name, contact_email, contact_phone, status,
    status_reason, tps, daily_fragment_quota, link_domains, callback_url, webhook_secret_sealed,
    created_at, updated_at, mandatory_allowed"""

# Fields an operator may change after creation (the legal ID identifies the agency: never).
UPDATABLE = frozenset(
    {
        "name_fa",
        "name_en",
        "contact_name",
        "contact_email",
        "contact_phone",
        "tps",
        "daily_fragment_quota",
        "link_domains",
        "callback_url",
        "mandatory_allowed",
    }
)


def _agency(row: Record) -> Agency:
    data = dict(row)
    data["legal_id"] = data["legal_id"].strip()
    data["link_domains"] = tuple(data["link_domains"])
    data["webhook_secret_sealed"] = bytes(data["webhook_secret_sealed"])
    return Agency(**data)


class AgencyStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def insert(
        self,
        *,
        agency_id: uuid.UUID,
        name_fa: str,
        name_en: str,
        legal_id: str,
        contact_name: str,
        contact_email: str,
        contact_phone: str,
        tps: int,
        daily_fragment_quota: int,
        link_domains: list[str],
        callback_url: str,
        webhook_secret_sealed: bytes,
        mandatory_allowed: bool = False,
    ) -> Agency | None:
        """Insert; None when the legal ID is already registered."""
        row = await self._db.fetchrow(
            "agency_insert",
            f"""INSERT INTO agencies (id, name_fa, name_en, legal_id, contact_name, contact_email,
                    contact_phone, tps, daily_fragment_quota, link_domains, callback_url,
                    webhook_secret_sealed, mandatory_allowed)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                ON CONFLICT (legal_id) DO NOTHING
                RETURNING {_COLUMNS}""",
            agency_id,
            name_fa,
            name_en,
            legal_id,
            contact_name,
            contact_email,
            contact_phone,
            tps,
            daily_fragment_quota,
            link_domains,
            callback_url,
            webhook_secret_sealed,
            mandatory_allowed,
        )
        return _agency(row) if row else None

    async def get(self, agency_id: uuid.UUID) -> Agency | None:
        row = await self._db.fetchrow(
            "agency_get", f"SELECT {_COLUMNS} FROM agencies WHERE id = $1", agency_id
        )
        return _agency(row) if row else None

    async def list(
        self, *, status: str | None, limit: int, after: uuid.UUID | None
    ) -> list[Agency]:
        rows = await self._db.fetch(
            "agency_list",
            f"""SELECT {_COLUMNS} FROM agencies
                WHERE ($1::text IS NULL OR status = $1)
                  AND ($2::uuid IS NULL OR id > $2)
                ORDER BY id LIMIT $3""",
            status,
            after,
            limit,
        )
        return [_agency(r) for r in rows]

    async def set_status(self, agency_id: uuid.UUID, status: str, reason: str) -> Agency | None:
        row = await self._db.fetchrow(
            "agency_set_status",
            f"""UPDATE agencies SET status = $2, status_reason = $3, updated_at = now()
                WHERE id = $1 RETURNING {_COLUMNS}""",
            agency_id,
            status,
            reason,
        )
        return _agency(row) if row else None

    async def update(self, agency_id: uuid.UUID, changes: dict[str, Any]) -> Agency | None:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if not changes:
            return await self.get(agency_id)
        names = sorted(changes)
        # Column names come from the closed UPDATABLE set above, never from the request.
        assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
        row = await self._db.fetchrow(
            "agency_update",
            f"UPDATE agencies SET {assignments}, updated_at = now() WHERE id = $1 "
            f"RETURNING {_COLUMNS}",
            agency_id,
            *(changes[n] for n in names),
        )
        return _agency(row) if row else None

    async def set_webhook_secret(self, agency_id: uuid.UUID, sealed: bytes) -> bool:
        status = await self._db.execute(
            "agency_set_webhook_secret",
            "UPDATE agencies SET webhook_secret_sealed = $2, updated_at = now() WHERE id = $1",
            agency_id,
            sealed,
        )
        return status.endswith(" 1")
