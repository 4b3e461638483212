"""Network-initiated USSD pushes (migration 0004): one row per agency push, its outcome and the
SMS fallback. Every state change is compare-and-set on the status, so the node that sent the
submit_sm, the node that received the confirmation and every node's timeout sweep can race
without a push ending twice."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from gateway.store.db import Executor, Record

# Outcomes after which an SMS goes instead (when the agency gave a fallback text).
FAILED = ("busy", "failed", "timeout")
WAITING = ("submitting", "sent")


@dataclass(frozen=True, slots=True)
class NewPush:
    id: uuid.UUID
    agency_id: uuid.UUID
    key_id: str
    is_test: bool
    msisdn: str
    mode: str
    text: str
    service_code: str
    client_ref: str
    fallback_text: str
    fallback_priority: str
    fallback_mandatory: bool


@dataclass(frozen=True, slots=True)
class Push:
    id: uuid.UUID
    agency_id: uuid.UUID
    key_id: str
    is_test: bool
    msisdn: str
    mode: str
    text: str
    service_code: str
    client_ref: str
    fallback_text: str
    fallback_priority: str
    fallback_mandatory: bool
    status: str
    operator: str
    session_number: int | None
    error_code: str
    answer: str | None
    fallback: str
    fallback_message_id: uuid.UUID | None
    fallback_error: str
    created_at: datetime
    sent_at: datetime | None
    final_at: datetime | None
    updated_at: datetime


_COLUMNS = """id, agency_id, key_id, is_test, msisdn, mode, text, service_code, client_ref,
    fallback_text, fallback_priority, fallback_mandatory, status, operator, session_number,
    error_code, answer, fallback, fallback_message_id, fallback_error, created_at, sent_at,
    final_at, updated_at"""


def _push(row: Record) -> Push:
    return Push(**dict(row))


class UssdPushStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def insert(self, p: NewPush) -> Push:
        row = await self._db.fetchrow(
            "ussd_push_insert",
            f"""INSERT INTO ussd_pushes (id, agency_id, key_id, is_test, msisdn, mode, text,
                    service_code, client_ref, fallback_text, fallback_priority, fallback_mandatory)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                RETURNING {_COLUMNS}""",
            p.id,
            p.agency_id,
            p.key_id,
            p.is_test,
            p.msisdn,
            p.mode,
            p.text,
            p.service_code,
            p.client_ref,
            p.fallback_text,
            p.fallback_priority,
            p.fallback_mandatory,
        )
        assert row is not None
        return _push(row)

    async def get(self, agency_id: uuid.UUID, push_id: uuid.UUID) -> Push | None:
        row = await self._db.fetchrow(
            "ussd_push_get",
            f"SELECT {_COLUMNS} FROM ussd_pushes WHERE id = $1 AND agency_id = $2",
            push_id,
            agency_id,
        )
        return _push(row) if row else None

    async def claim(self, limit: int, lease_seconds: float) -> list[Push]:
        """Unclaimed pushes, and claims of a node that died (lease over), for this node."""
        rows = await self._db.fetch(
            "ussd_push_claim",
            f"""UPDATE ussd_pushes SET status = 'submitting', updated_at = now(),
                    lease_until = now() + make_interval(secs => $2)
                WHERE id IN (
                    SELECT id FROM ussd_pushes
                    WHERE status = 'pending' OR (status = 'submitting' AND lease_until < now())
                    ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                RETURNING {_COLUMNS}""",
            limit,
            lease_seconds,
        )
        return [_push(r) for r in rows]

    async def set_route(self, push_id: uuid.UUID, operator: str, session_number: int) -> None:
        """Written before the submit_sm goes out: the confirmation may come back before the
        submit_sm_resp has been handled, and must find its push."""
        await self._db.execute(
            "ussd_push_route",
            """UPDATE ussd_pushes SET operator = $2, session_number = $3, updated_at = now()
               WHERE id = $1 AND status = 'submitting'""",
            push_id,
            operator,
            session_number,
        )

    async def mark_sent(self, push_id: uuid.UUID, now: datetime) -> bool:
        status = await self._db.execute(
            "ussd_push_sent",
            """UPDATE ussd_pushes SET status = 'sent', sent_at = $2, updated_at = $2
               WHERE id = $1 AND status = 'submitting'""",
            push_id,
            now,
        )
        return status.endswith(" 1")

    async def waiting_for(self, operator: str, msisdn: str, session_number: int) -> Push | None:
        """The push a confirmation from this phone and session number answers, if any."""
        row = await self._db.fetchrow(
            "ussd_push_waiting",
            f"""SELECT {_COLUMNS} FROM ussd_pushes
                WHERE operator = $1 AND msisdn = $2 AND session_number = $3
                  AND status IN ('submitting', 'sent')
                ORDER BY created_at DESC LIMIT 1""",
            operator,
            msisdn,
            session_number,
        )
        return _push(row) if row else None

    async def finish(
        self,
        push_id: uuid.UUID,
        status: str,
        *,
        error_code: str = "",
        answer: str | None = None,
        now: datetime,
    ) -> Push | None:
        """End a waiting push (compare-and-set); None when it had ended already (a repeated
        confirmation, or a late one after the timeout). A failure with a fallback text marks
        the SMS fallback pending in the same statement."""
        row = await self._db.fetchrow(
            "ussd_push_finish",
            f"""UPDATE ussd_pushes SET status = $2, error_code = $3, answer = $4, final_at = $5,
                    updated_at = $5, lease_until = NULL,
                    fallback = CASE WHEN $2 = ANY($6::text[])
                                    THEN CASE WHEN fallback_text = '' THEN 'off' ELSE 'pending' END
                                    ELSE 'none' END
                WHERE id = $1 AND status IN ('submitting', 'sent')
                RETURNING {_COLUMNS}""",
            push_id,
            status,
            error_code,
            answer,
            now,
            list(FAILED),
        )
        return _push(row) if row else None

    async def expired(self, sent_before: datetime, now: datetime) -> list[Push]:
        """Sent pushes that got no confirmation in time end as timeout (fallback pending)."""
        rows = await self._db.fetch(
            "ussd_push_expire",
            f"""UPDATE ussd_pushes SET status = 'timeout', error_code = 'no_confirmation',
                    final_at = $2, updated_at = $2,
                    fallback = CASE WHEN fallback_text = '' THEN 'off' ELSE 'pending' END
                WHERE status = 'sent' AND sent_at < $1
                RETURNING {_COLUMNS}""",
            sent_before,
            now,
        )
        return [_push(r) for r in rows]

    async def fallbacks_due(self, updated_before: datetime, limit: int) -> list[Push]:
        """Fallbacks left pending (the node that ended the push died before sending the SMS)."""
        rows = await self._db.fetch(
            "ussd_push_fallbacks_due",
            f"""SELECT {_COLUMNS} FROM ussd_pushes
                WHERE fallback = 'pending' AND updated_at < $1
                ORDER BY updated_at LIMIT $2""",
            updated_before,
            limit,
        )
        return [_push(r) for r in rows]

    async def fallback_done(
        self,
        push_id: uuid.UUID,
        *,
        message_id: uuid.UUID | None,
        error: str,
        now: datetime,
    ) -> bool:
        status = await self._db.execute(
            "ussd_push_fallback_done",
            """UPDATE ussd_pushes
               SET fallback = CASE WHEN $2::uuid IS NULL THEN 'refused' ELSE 'queued' END,
                   fallback_message_id = $2, fallback_error = $3, updated_at = $4
               WHERE id = $1 AND fallback = 'pending'""",
            push_id,
            message_id,
            error,
            now,
        )
        return status.endswith(" 1")
