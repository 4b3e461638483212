"""Append-only audit trail of admin actions, credential events and refused authentications.

Rows are chained by the database itself (migration trust: a BEFORE INSERT trigger sets ``seq``
and ``hash`` under the chain head's row lock), so ``record`` stays one INSERT. The rows and
checkpoints read back here feed ``gateway/audit_chain.py`` (``payam audit verify``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class ChainRow:
    id: int
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    client_addr: str
    detail: str  # PostgreSQL's own text of the jsonb value, as the trigger hashed it
    hash: bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: int
    at: datetime
    seq: int
    hash: bytes
    key_id: str
    signature: bytes


class AuditChainStore:
    """Reading the chain for verification, and writing signed checkpoints of its head."""

    def __init__(self, db: Executor) -> None:
        self._db = db

    async def head(self) -> tuple[int, bytes] | None:
        row = await self._db.fetchrow(
            "audit_chain_head", "SELECT seq, hash FROM audit_chain_head WHERE one"
        )
        return (int(row["seq"]), bytes(row["hash"])) if row else None

    async def rows(self, page: int = 5000) -> AsyncIterator[ChainRow]:
        """Every row in chain order (seq, then id), a page at a time."""
        after: tuple[int, int] = (-1, -1)
        while True:
            rows = await self._db.fetch(
                "audit_chain_page",
                """SELECT id, seq, at, actor, action, target, outcome, client_addr,
                          detail::text AS detail, hash
                   FROM audit_log WHERE (seq, id) > ($1, $2) ORDER BY seq, id LIMIT $3""",
                after[0],
                after[1],
                page,
            )
            for r in rows:
                yield ChainRow(**{**dict(r), "hash": bytes(r["hash"])})
            if len(rows) < page:
                return
            after = (rows[-1]["seq"], rows[-1]["id"])

    async def checkpoints(self) -> list[Checkpoint]:
        rows = await self._db.fetch(
            "audit_checkpoints",
            "SELECT id, at, seq, hash, key_id, signature FROM audit_checkpoints ORDER BY id",
        )
        return [
            Checkpoint(**{**dict(r), "hash": bytes(r["hash"]), "signature": bytes(r["signature"])})
            for r in rows
        ]

    async def last_checkpoint_seq(self) -> int:
        value = await self._db.fetchval(
            "audit_last_checkpoint", "SELECT coalesce(max(seq), 0) FROM audit_checkpoints"
        )
        return int(value)

    async def add_checkpoint(
        self, at: datetime, seq: int, hash_: bytes, key_id: str, signature: bytes
    ) -> int:
        value = await self._db.fetchval(
            "audit_checkpoint_insert",
            """INSERT INTO audit_checkpoints (at, seq, hash, key_id, signature)
               VALUES ($1, $2, $3, $4, $5) RETURNING id""",
            at,
            seq,
            hash_,
            key_id,
            signature,
        )
        return int(value)
