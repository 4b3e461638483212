"""Append-only audit trail of admin actions, credential events and refused authentications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from gateway.store.db import Executor
from gateway.store.models import AuditEntry


class AuditStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def record(
        self,
        *,
        actor: str,
        action: str,
        outcome: str,
        target: str = "",
        client_addr: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        await self._db.execute(
            "audit_insert",
            """INSERT INTO audit_log (actor, action, target, outcome, client_addr, detail)
               VALUES ($1, $2, $3, $4, $5, $6::jsonb)""",
            actor,
            action,
            target,
            outcome,
            client_addr,
            orjson.dumps(detail or {}).decode(),
        )

    async def list(
        self, *, action: str | None, since: datetime | None, limit: int, before_id: int | None
    ) -> list[AuditEntry]:
        rows = await self._db.fetch(
            "audit_list",
            """SELECT id, at, actor, action, target, outcome, client_addr, detail::text AS detail
               FROM audit_log
               WHERE ($1::text IS NULL OR action = $1)
                 AND ($2::timestamptz IS NULL OR at >= $2)
                 AND ($3::bigint IS NULL OR id < $3)
               ORDER BY id DESC LIMIT $4""",
            action,
            since,
            before_id,
            limit,
        )
        entries = []
        for r in rows:
            data = dict(r)
            data["detail"] = orjson.loads(data["detail"])
            entries.append(AuditEntry(**data))
        return entries
