"""The durable queue: claim leased batches by lane and virtual time, and store submit results
in one transaction per batch (no per-message commit on the hot path)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from gateway.status import QUEUED, SCHEDULED, SUBMITTED
from gateway.store.db import Executor
from gateway.store.messages import open_body
from gateway.store.models import Claimed

if TYPE_CHECKING:
    from gateway.vault import Vault


@dataclass(frozen=True, slots=True)
class Submitted:
    message_id: uuid.UUID
    operator: str
    part_nos: list[int]
    smsc_ids: list[str]
    complete: bool  # every part is now submitted


@dataclass(frozen=True, slots=True)
class Retry:
    message_id: uuid.UUID
    delay_seconds: float
    error_code: str
    count_attempt: bool


@dataclass(frozen=True, slots=True)
class Final:
    message_id: uuid.UUID
    status: str
    error_code: str


class QueueStore:
    def __init__(self, db: Executor, vault: Vault | None = None) -> None:
        self._db = db
        self.vault = vault

    async def claim(self, lane: int, limit: int, lease_seconds: int) -> list[Claimed]:
        rows = await self._db.fetch(
            "queue_claim",
            """WITH c AS (
                   SELECT message_id FROM queue
                   WHERE lane = $1 AND vt <= now() AND leased_until < now()
                   ORDER BY vt LIMIT $2 FOR UPDATE SKIP LOCKED),
               u AS (
                   UPDATE queue q SET leased_until = now() + make_interval(secs => $3)
                   FROM c WHERE q.message_id = c.message_id RETURNING q.message_id)
               SELECT m.id, m.agency_id, m.is_test, m.recipient, m.sender, m.body, m.priority,
                      m.valid_until, m.attempts, m.callback_url, m.data_key, m.body_sealed,
                      CASE WHEN m.attempts > 0 THEN ARRAY(
                          SELECT part_no FROM message_parts p WHERE p.message_id = m.id)
                      ELSE '{}'::smallint[] END AS done_parts
               FROM messages m JOIN u ON m.id = u.message_id""",
            lane,
            limit,
            float(lease_seconds),
        )
        if self.vault is not None:
            await self.vault.load({r["data_key"] for r in rows})
        out = []
        for r in rows:
            d = dict(r)
            d["body"] = open_body(self.vault, r)
            del d["data_key"], d["body_sealed"]
            d["done_parts"] = tuple(r["done_parts"])
            out.append(Claimed(**d))
        return out

    async def depths(self) -> list[tuple[int, int, float]]:
        """(lane, depth, age in seconds of the oldest due message) for every lane. Rows held
        for a suspended agency (endless lease) are left out: they wait on purpose."""
        rows = await self._db.fetch(
            "queue_depths",
            """SELECT l.lane, count(q.message_id) AS depth,
                      coalesce(extract(epoch FROM now() - min(q.vt) FILTER (
                          WHERE q.vt <= now())), 0)::float8 AS oldest
               FROM generate_series(0, 3) AS l(lane)
               LEFT JOIN queue q ON q.lane = l.lane AND q.leased_until <> 'infinity'
               GROUP BY l.lane ORDER BY l.lane""",
        )
        return [(int(r["lane"]), int(r["depth"]), float(r["oldest"])) for r in rows]

    async def mark_queued(self, now: datetime) -> int:
        """Scheduled messages whose send time came: status scheduled → queued (for GET).
        SKIP LOCKED: rows a dispatcher is updating are left for the next pass (waiting for
        them, in another order, deadlocked against the dispatchers' result writes)."""
        status = await self._db.execute(
            "queue_mark_due",
            """WITH m AS (
                   UPDATE messages SET status = $2, updated_at = now()
                   WHERE id IN (SELECT id FROM messages WHERE status = $3 AND send_at <= $1
                                LIMIT 10000 FOR UPDATE SKIP LOCKED)
                   RETURNING id)
               INSERT INTO message_events (message_id, status) SELECT id, $2 FROM m""",
            now,
            QUEUED,
            SCHEDULED,
        )
        return int(status.split()[-1])

    async def record(
        self, submitted: list[Submitted], retries: list[Retry], finals: list[Final]
    ) -> list[uuid.UUID]:
        """Store one round of results. Returns ids of messages that reached a final state."""
        done: list[uuid.UUID] = []
        if submitted:
            await self._db.execute(
                "parts_insert",
                """INSERT INTO message_parts (message_id, part_no, operator, smsc_id)
                   SELECT m, p, o, s FROM unnest($1::uuid[], $2::smallint[], $3::text[],
                                                 $4::text[]) AS t(m, p, o, s)
                   ON CONFLICT DO NOTHING""",
                [s.message_id for s in submitted for _ in s.part_nos],
                [p for s in submitted for p in s.part_nos],
                [s.operator for s in submitted for _ in s.part_nos],
                [i for s in submitted for i in s.smsc_ids],
            )
            complete = [s.message_id for s in submitted if s.complete]
            incomplete = [s for s in submitted if not s.complete]
            if complete:
                await self._db.execute(
                    "messages_submitted",
                    """WITH d AS (DELETE FROM queue WHERE message_id = ANY($1::uuid[])),
                       m AS (
                           UPDATE messages SET status = $2, operator = t.o, updated_at = now(),
                               attempts = attempts + 1
                           FROM unnest($1::uuid[], $3::text[]) AS t(i, o)
                           WHERE id = t.i AND status IN ('queued', 'scheduled')
                           RETURNING id, operator)
                       INSERT INTO message_events (message_id, status, detail)
                       SELECT id, $2, jsonb_build_object('operator', operator) FROM m""",
                    complete,
                    SUBMITTED,
                    [s.operator for s in submitted if s.complete],
                )
            if incomplete:
                # Some parts went out and a later one failed: retry only the rest, soon.
                retries = retries + [Retry(s.message_id, 1.0, "partial", True) for s in incomplete]
        if retries:
            await self._db.execute(
                "queue_retry",
                """WITH t AS (SELECT * FROM unnest($1::uuid[], $2::float8[], $3::text[],
                                                   $4::bool[]) AS t(i, d, c, a)),
                   q AS (UPDATE queue SET leased_until = CASE
                                WHEN leased_until = 'infinity' THEN leased_until
                                ELSE '-infinity' END,
                            vt = now() + make_interval(secs => t.d)
                         FROM t WHERE message_id = t.i)
                   UPDATE messages SET attempts = attempts + (CASE WHEN t.a THEN 1 ELSE 0 END),
                       error_code = t.c, updated_at = now()
                   FROM t WHERE id = t.i""",
                [r.message_id for r in retries],
                [r.delay_seconds for r in retries],
                [r.error_code for r in retries],
                [r.count_attempt for r in retries],
            )
        if finals:
            rows = await self._db.fetch(
                "messages_final_from_queue",
                """WITH t AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
                              AS t(i, s, c)),
                   d AS (DELETE FROM queue WHERE message_id IN (SELECT i FROM t)),
                   m AS (
                       UPDATE messages SET status = t.s, error_code = t.c, updated_at = now(),
                           final_at = now()
                       FROM t WHERE id = t.i AND status IN ('queued', 'scheduled')
                       RETURNING id, status, error_code),
                   e AS (INSERT INTO message_events (message_id, status, detail)
                         SELECT id, status, jsonb_build_object('error', error_code) FROM m)
                   SELECT id FROM m""",
                [f.message_id for f in finals],
                [f.status for f in finals],
                [f.error_code for f in finals],
            )
            done.extend(r["id"] for r in rows)
        return done
