"""Delivery receipts: a durable inbox, matched to submitted parts in batches.

A receipt is stored before its deliver_sm is acknowledged, so it cannot be lost; it is matched
by (operator, canonical id). One that arrives before its submit result was stored (an "early"
receipt) simply waits in the inbox until the part exists, or until it is too old.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from gateway.store.db import Executor


@dataclass(frozen=True, slots=True)
class InboxReceipt:
    operator: str
    smsc_id: str
    state: str
    stat: str
    error: str


@dataclass(frozen=True, slots=True)
class MatchedReceipt:
    inbox_id: int
    message_id: uuid.UUID
    part_no: int
    state: str
    error: str
    part_state: str


@dataclass(frozen=True, slots=True)
class Completion:
    message_id: uuid.UUID
    agency_id: uuid.UUID
    parts: int
    status: str
    part_states: list[str]
    callback_url: str
    operator: str
    submitted_at: datetime


class ReceiptStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def add(self, receipts: list[InboxReceipt]) -> None:
        await self._db.execute(
            "receipts_add",
            """INSERT INTO receipts_inbox (operator, smsc_id, state, stat, error)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])""",
            [r.operator for r in receipts],
            [r.smsc_id for r in receipts],
            [r.state for r in receipts],
            [r.stat for r in receipts],
            [r.error for r in receipts],
        )

    async def matched(self, limit: int) -> list[MatchedReceipt]:
        rows = await self._db.fetch(
            "receipts_matched",
            """SELECT r.id AS inbox_id, p.message_id, p.part_no, r.state, r.error,
                      p.state AS part_state
               FROM receipts_inbox r
               JOIN message_parts p ON p.operator = r.operator AND p.smsc_id = r.smsc_id
               ORDER BY r.id LIMIT $1 FOR UPDATE OF r SKIP LOCKED""",
            limit,
        )
        return [MatchedReceipt(**dict(r)) for r in rows]

    async def apply(
        self, inbox_ids: list[int], parts: list[tuple[uuid.UUID, int, str]], final: list[str]
    ) -> list[uuid.UUID]:
        """Consume inbox rows and move parts forward; a final part state is never replaced
        (duplicate and out-of-order receipts). Returns messages whose parts changed."""
        await self._db.execute(
            "receipts_consume", "DELETE FROM receipts_inbox WHERE id = ANY($1::bigint[])", inbox_ids
        )
        if not parts:
            return []
        rows = await self._db.fetch(
            "parts_receipt",
            """UPDATE message_parts mp SET state = t.s, receipt_at = now()
               FROM unnest($1::uuid[], $2::smallint[], $3::text[]) AS t(m, n, s)
               WHERE mp.message_id = t.m AND mp.part_no = t.n
                 AND NOT (mp.state = ANY($4::text[]))
               RETURNING mp.message_id""",
            [p[0] for p in parts],
            [p[1] for p in parts],
            [p[2] for p in parts],
            final,
        )
        return list({r["message_id"] for r in rows})

    async def completions(self, message_ids: list[uuid.UUID], final: list[str]) -> list[Completion]:
        """Submitted messages whose every part has a final receipt."""
        rows = await self._db.fetch(
            "messages_completed",
            """SELECT m.id AS message_id, m.agency_id, m.parts, m.status, m.callback_url,
                      array_agg(p.state ORDER BY p.part_no) AS part_states,
                      min(p.operator) AS operator, min(p.submitted_at) AS submitted_at
               FROM messages m JOIN message_parts p ON p.message_id = m.id
               WHERE m.id = ANY($1::uuid[]) AND m.status = 'submitted'
               GROUP BY m.id
               HAVING count(*) FILTER (WHERE p.state = ANY($2::text[])) = m.parts""",
            message_ids,
            final,
        )
        return [Completion(**{**dict(r), "part_states": list(r["part_states"])}) for r in rows]

    async def finish(self, outcomes: list[tuple[uuid.UUID, str]]) -> None:
        await self._db.execute(
            "messages_finish",
            """WITH t AS (SELECT * FROM unnest($1::uuid[], $2::text[]) AS t(i, s)),
               m AS (UPDATE messages SET status = t.s, updated_at = now(), final_at = now()
                     FROM t WHERE id = t.i AND status = 'submitted' RETURNING id, status)
               INSERT INTO message_events (message_id, status) SELECT id, status FROM m""",
            [o[0] for o in outcomes],
            [o[1] for o in outcomes],
        )

    async def expire_unreceipted(self, before: datetime, limit: int = 5000) -> list[uuid.UUID]:
        """Submitted messages whose validity ended long ago with no final receipt: the SMSC
        has given up too. They end as ``expired`` / ``no_receipt``, never "pending forever"."""
        rows = await self._db.fetch(
            "messages_expire_unreceipted",
            """WITH m AS (
                   UPDATE messages SET status = 'expired', error_code = 'no_receipt',
                       updated_at = now(), final_at = now()
                   WHERE id IN (SELECT id FROM messages
                                WHERE status = 'submitted' AND valid_until < $1 LIMIT $2)
                   RETURNING id),
               e AS (INSERT INTO message_events (message_id, status, detail)
                     SELECT id, 'expired', '{"error": "no_receipt"}' FROM m)
               SELECT id FROM m""",
            before,
            limit,
        )
        return [r["id"] for r in rows]

    async def drop_stale(self, older_than: datetime) -> int:
        status = await self._db.execute(
            "receipts_drop_stale", "DELETE FROM receipts_inbox WHERE received_at < $1", older_than
        )
        return int(status.split()[-1])
