"""Callbacks to agencies: enqueued in the transaction of the event they announce, then
delivered by the callback worker with retries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from gateway.store.db import Executor


@dataclass(frozen=True, slots=True)
class DueCallback:
    id: int
    agency_id: uuid.UUID
    kind: str
    url: str
    body: bytes
    attempts: int
    give_up_at: datetime


class CallbackStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def enqueue_status(self, message_ids: list[uuid.UUID], give_up_at: datetime) -> int:
        """One ``message.status`` callback per final message that has a callback URL (its own,
        else the agency default). The body is built here, from the committed row."""
        status = await self._db.execute(
            "callbacks_enqueue_status",
            """INSERT INTO callbacks (agency_id, kind, url, body, give_up_at)
               SELECT m.agency_id, 'message.status',
                      coalesce(nullif(m.callback_url, ''), a.callback_url),
                      convert_to(jsonb_build_object(
                          'type', 'message.status', 'id', m.id, 'status', m.status,
                          'recipient', m.recipient, 'sender', m.sender, 'parts', m.parts,
                          'client_ref', m.client_ref, 'error_code', nullif(m.error_code, ''),
                          'operator', nullif(m.operator, ''), 'test', m.is_test,
                          'batch_id', m.batch_id, 'created_at', m.created_at,
                          'final_at', m.final_at)::text, 'UTF8'),
                      $2
               FROM messages m JOIN agencies a ON a.id = m.agency_id
               WHERE m.id = ANY($1::uuid[])
                 AND coalesce(nullif(m.callback_url, ''), a.callback_url) <> ''""",
            message_ids,
            give_up_at,
        )
        return int(status.split()[-1])

    async def enqueue(
        self, agency_id: uuid.UUID, kind: str, url: str, body: bytes, give_up_at: datetime
    ) -> None:
        await self._db.execute(
            "callbacks_enqueue",
            """INSERT INTO callbacks (agency_id, kind, url, body, give_up_at)
               VALUES ($1, $2, $3, $4, $5)""",
            agency_id,
            kind,
            url,
            body,
            give_up_at,
        )

    async def claim(self, limit: int, lease_seconds: float) -> list[DueCallback]:
        rows = await self._db.fetch(
            "callbacks_claim",
            """WITH c AS (
                   SELECT id FROM callbacks
                   WHERE outcome = 'pending' AND next_attempt_at <= now()
                     AND leased_until < now()
                   ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
               UPDATE callbacks k SET leased_until = now() + make_interval(secs => $2)
               FROM c WHERE k.id = c.id
               RETURNING k.id, k.agency_id, k.kind, k.url, k.body, k.attempts, k.give_up_at""",
            limit,
            lease_seconds,
        )
        return [DueCallback(**{**dict(r), "body": bytes(r["body"])}) for r in rows]

    async def finish(self, callback_id: int, outcome: str, error: str) -> None:
        await self._db.execute(
            "callbacks_finish",
            """UPDATE callbacks SET outcome = $2, last_error = $3, attempts = attempts + 1,
                   done_at = now() WHERE id = $1""",
            callback_id,
            outcome,
            error,
        )

    async def retry(self, callback_id: int, delay_seconds: float, error: str) -> None:
        await self._db.execute(
            "callbacks_retry",
            """UPDATE callbacks SET attempts = attempts + 1, last_error = $3,
                   leased_until = '-infinity',
                   next_attempt_at = now() + make_interval(secs => $2)
               WHERE id = $1""",
            callback_id,
            delay_seconds,
            error,
        )
