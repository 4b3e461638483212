"""Operations: platform flags (paused operators, crisis mode), agency queue holds, admin batch
actions, SLA targets, and the figures the operators' metrics sample (issue 8)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from gateway.status import CANCELLED, EXPIRED, QUEUED, REJECTED, UNDELIVERABLE
from gateway.store.db import Executor

# Final states a re-send may take a batch's messages out of: the citizen did not get them.
RESENDABLE = (REJECTED, EXPIRED, UNDELIVERABLE)


# The platform-wide token bucket of the non-crisis lanes in crisis mode (gateway/operations.py),
# a row of ops_flags so that no migration is needed; OpsState.apply ignores unknown names.
CRISIS_BUDGET = "crisis_budget"
_NOW = "extract(epoch FROM clock_timestamp())::float8"


@dataclass(frozen=True, slots=True)
class AgencySample:
    agency_id: uuid.UUID
    suspended: bool
    quota_used_ratio: float
    opt_outs: int
    sla_latency_seconds: float | None
    sla_delivery_ratio: float | None


@dataclass(frozen=True, slots=True)
class BatchRef:
    id: uuid.UUID
    agency_id: uuid.UUID
    total: int
    cancelled_at: datetime | None


class OperationsStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    # -- flags ---------------------------------------------------------------------------------
    async def flags(self) -> dict[str, dict[str, Any]]:
        rows = await self._db.fetch("ops_flags", "SELECT name, value::text AS v FROM ops_flags")
        return {r["name"]: orjson.loads(r["v"]) for r in rows}

    async def set_flag(self, name: str, value: dict[str, Any], actor: str) -> None:
        await self._db.execute(
            "ops_flag_set",
            """INSERT INTO ops_flags (name, value, updated_by) VALUES ($1, $2::jsonb, $3)
               ON CONFLICT (name) DO UPDATE
                 SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by,
                     updated_at = now()""",
            name,
            orjson.dumps(value).decode(),
            actor,
        )

    # -- the crisis budget, one for the whole platform -----------------------------------------
    async def reset_crisis_budget(self, rate: float) -> None:
        """A full bucket (one second's worth) when crisis mode starts."""
        await self._db.execute(
            "crisis_budget_reset",
            f"""INSERT INTO ops_flags (name, value, updated_by)
                VALUES ('{CRISIS_BUDGET}', jsonb_build_object('tokens', $1::float8,
                        'at', {_NOW}, 'granted', 0), 'dispatcher')
                ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()""",
            rate,
        )

    async def take_crisis_budget(self, rate: float, want: int) -> int | None:
        """Up to ``want`` tokens of the platform-wide bucket (``rate`` per second, at most one
        second's worth banked), taken atomically whichever node asks: one UPDATE of one row,
        which PostgreSQL re-evaluates on the newest row version when nodes race (READ
        COMMITTED). None when the bucket row does not exist yet."""
        tokens = (
            f"least($1::float8, (value->>'tokens')::float8"
            f" + greatest(0, {_NOW} - (value->>'at')::float8) * $1::float8)"
        )
        granted = f"least($2::int, floor({tokens})::int)"
        value = await self._db.fetchval(
            "crisis_budget_take",
            f"""UPDATE ops_flags SET value = jsonb_build_object(
                       'tokens', {tokens} - {granted}, 'at', {_NOW}, 'granted', {granted}),
                   updated_at = now()
                WHERE name = '{CRISIS_BUDGET}'
                RETURNING (value->>'granted')::int""",
            rate,
            want,
        )
        return None if value is None else int(value)

    async def refund_crisis_budget(self, rate: float, unused: int) -> None:
        await self._db.execute(
            "crisis_budget_refund",
            f"""UPDATE ops_flags SET value = jsonb_set(value, '{{tokens}}',
                       to_jsonb(least($1::float8, (value->>'tokens')::float8 + $2::int)))
                WHERE name = '{CRISIS_BUDGET}'""",
            rate,
            unused,
        )

    # -- agency queue hold ---------------------------------------------------------------------
    async def hold_agency_queue(self, agency_id: uuid.UUID, hold: bool) -> int:
        """Suspend: the agency's queue rows get an endless lease, so no dispatcher claims them
        (the claim skips leased rows); resume gives them back. Rows a dispatcher holds right
        now are held too: if their submit fails, the retry keeps the hold (queue.py)."""
        if hold:
            status = await self._db.execute(
                "queue_hold_agency",
                "UPDATE queue SET leased_until = 'infinity' WHERE agency_id = $1",
                agency_id,
            )
        else:
            status = await self._db.execute(
                "queue_release_agency",
                """UPDATE queue SET leased_until = '-infinity'
                   WHERE agency_id = $1 AND leased_until = 'infinity'""",
                agency_id,
            )
        return int(status.split()[-1])

    async def held(self) -> list[tuple[int, int]]:
        """(lane, rows held for suspended agencies) for every lane."""
        rows = await self._db.fetch(
            "queue_held",
            """SELECT l.lane, count(q.message_id) AS n
               FROM generate_series(0, 3) AS l(lane)
               LEFT JOIN queue q ON q.lane = l.lane AND q.leased_until = 'infinity'
               GROUP BY l.lane ORDER BY l.lane""",
        )
        return [(int(r["lane"]), int(r["n"])) for r in rows]

    # -- batches -------------------------------------------------------------------------------
    async def batch(self, batch_id: uuid.UUID) -> BatchRef | None:
        row = await self._db.fetchrow(
            "ops_batch_get",
            "SELECT id, agency_id, total, cancelled_at FROM batches WHERE id = $1",
            batch_id,
        )
        return BatchRef(**dict(row)) if row is not None else None

    async def resend_batch(self, batch_id: uuid.UUID, valid_until: datetime) -> int:
        """Messages of the batch that ended rejected, expired or undeliverable go back to the
        queue as new attempts (parts and attempts reset, validity renewed). Cancelled ones stay
        cancelled: an agency's cancel is never overridden."""
        n = await self._db.fetchval(
            "ops_batch_resend",
            """WITH m AS (
                   UPDATE messages SET status = $2, error_code = '', attempts = 0,
                       final_at = NULL, operator = '', valid_until = $4, updated_at = now()
                   WHERE batch_id = $1 AND status = ANY($3::text[])
                   RETURNING id, agency_id, priority),
               p AS (DELETE FROM message_parts WHERE message_id IN (SELECT id FROM m)),
               q AS (INSERT INTO queue (message_id, lane, agency_id, vt)
                     SELECT id, priority, agency_id, now() FROM m ON CONFLICT DO NOTHING),
               e AS (INSERT INTO message_events (message_id, status, detail)
                     SELECT id, $2, '{"resend": true}'::jsonb FROM m)
               SELECT count(*) FROM m""",
            batch_id,
            QUEUED,
            list(RESENDABLE),
            valid_until,
        )
        return int(n)

    # -- SLA targets ---------------------------------------------------------------------------
    async def set_sla(self, agency_id: uuid.UUID, latency_p95: float, ratio: float) -> bool:
        row = await self._db.fetchval(
            "agency_sla_set",
            """INSERT INTO agency_sla (agency_id, latency_p95_seconds, delivery_ratio)
               SELECT id, $2, $3 FROM agencies WHERE id = $1
               ON CONFLICT (agency_id) DO UPDATE
                 SET latency_p95_seconds = EXCLUDED.latency_p95_seconds,
                     delivery_ratio = EXCLUDED.delivery_ratio, updated_at = now()
               RETURNING agency_id""",
            agency_id,
            latency_p95,
            ratio,
        )
        return row is not None

    async def sla(self, agency_id: uuid.UUID) -> tuple[float, float] | None:
        row = await self._db.fetchrow(
            "agency_sla_get",
            "SELECT latency_p95_seconds, delivery_ratio FROM agency_sla WHERE agency_id = $1",
            agency_id,
        )
        if row is None:
            return None
        return float(row["latency_p95_seconds"]), float(row["delivery_ratio"])

    # -- samples for /metrics ------------------------------------------------------------------
    async def agency_samples(self, day: date) -> list[AgencySample]:
        rows = await self._db.fetch(
            "ops_agency_samples",
            """SELECT a.id, a.status = 'suspended' AS suspended,
                      coalesce(u.fragments, 0)::float8
                        / greatest(a.daily_fragment_quota, 1) AS quota_used,
                      (SELECT count(*) FROM opt_outs o WHERE o.agency_id = a.id) AS opt_outs,
                      s.latency_p95_seconds, s.delivery_ratio
               FROM agencies a
               LEFT JOIN daily_usage u ON u.agency_id = a.id AND u.day = $1
               LEFT JOIN agency_sla s ON s.agency_id = a.id""",
            day,
        )
        return [
            AgencySample(
                r["id"],
                r["suspended"],
                float(r["quota_used"]),
                int(r["opt_outs"]),
                r["latency_p95_seconds"],
                r["delivery_ratio"],
            )
            for r in rows
        ]

    async def delivery_histogram(
        self, since: datetime, until: datetime, base: float, growth: float
    ) -> list[tuple[uuid.UUID, int, int]]:
        """Per agency, live messages finished in [since, until), counted by accept→delivered
        latency bucket k (latency in [base·growth^k, base·growth^(k+1)), gateway/
        delivery_window.py), -1 for finished but not delivered. Cancelled ones were never the
        platform's to deliver and are left out (Art 9 measures the platform)."""
        rows = await self._db.fetch(
            "ops_delivery_histogram",
            """SELECT agency_id,
                      CASE WHEN status = 'delivered' THEN
                          greatest(0, floor(ln(greatest(
                              extract(epoch FROM final_at - coalesce(send_at, created_at)),
                              $4::float8) / $4::float8) / ln($5::float8)))::int
                      ELSE -1 END AS bucket,
                      count(*) AS n
               FROM messages
               WHERE final_at >= $1 AND final_at < $2 AND NOT is_test AND status <> $3
               GROUP BY 1, 2""",
            since,
            until,
            CANCELLED,
            base,
            growth,
        )
        return [(r["agency_id"], int(r["bucket"]), int(r["n"])) for r in rows]
