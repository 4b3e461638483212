"""The events outbox: claim due events, and record each delivery try."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from adapters.kartpooshe.ebox.models import OutboxEvent
from adapters.kartpooshe.ebox.store.db import Q


class Outbox:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._q = Q(pool)

    async def claim_due(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[OutboxEvent]:
        """Due pending events, leased until ``lease_until`` so that a second e-box node (or a
        slow try on this one) does not send the same event at the same time.

        An event waits while an earlier one of the same letter is still pending: the gateway
        builds the letter's evidence chain in arrival order (opened before replied)."""
        rows = await self._q.fetch(
            "events_claim",
            """UPDATE events SET next_attempt_at = $2
               WHERE event_id IN (
                   SELECT event_id FROM events
                   WHERE status = 'pending' AND next_attempt_at <= $1
                     AND NOT EXISTS (
                         SELECT 1 FROM events earlier
                         WHERE earlier.letter_id = events.letter_id
                           AND earlier.status = 'pending'
                           AND (earlier.at, earlier.event_id) < (events.at, events.event_id))
                   ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
               RETURNING event_id, letter_id, type, at, actor, reply_id, attempts""",
            now,
            lease_until,
            limit,
        )
        return [
            OutboxEvent(
                r["event_id"],
                r["letter_id"],
                r["type"],
                r["at"],
                r["actor"],
                r["reply_id"],
                r["attempts"],
            )
            for r in sorted(rows, key=lambda r: r["at"])
        ]

    async def delivered(self, event_id: uuid.UUID, now: datetime) -> None:
        await self._q.execute(
            "event_delivered",
            """UPDATE events SET status = 'delivered', delivered_at = $2,
                   attempts = attempts + 1, last_error = NULL WHERE event_id = $1""",
            event_id,
            now,
        )

    async def retry_at(self, event_id: uuid.UUID, when: datetime, error: str) -> None:
        await self._q.execute(
            "event_retry",
            """UPDATE events SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3
               WHERE event_id = $1""",
            event_id,
            when,
            error,
        )

    async def failed(self, event_id: uuid.UUID, error: str) -> None:
        await self._q.execute(
            "event_failed",
            """UPDATE events SET status = 'failed', attempts = attempts + 1, last_error = $2
               WHERE event_id = $1""",
            event_id,
            error,
        )

    async def status(self, event_id: uuid.UUID) -> tuple[str, int] | None:
        r = await self._q.fetchrow(
            "event_status", "SELECT status, attempts FROM events WHERE event_id = $1", event_id
        )
        return None if r is None else (r["status"], r["attempts"])

    async def counts(self) -> dict[str, int]:
        rows = await self._q.fetch(
            "events_counts", "SELECT status, count(*) AS n FROM events GROUP BY status"
        )
        return {r["status"]: r["n"] for r in rows}
