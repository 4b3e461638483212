"""Verification codes, their per-agency policy and the per-number attempt counter.

No message text and no number or code in the clear: codes and numbers are keyed hashes
(gateway/verification.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.store.db import Executor


@dataclass(frozen=True, slots=True)
class CodeRecord:
    code_hash: bytes
    recipient_hash: bytes
    agency_id: uuid.UUID
    sender: str
    sent_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Match:
    agency_id: uuid.UUID
    name_fa: str
    name_en: str
    sender: str
    sent_at: datetime


class VerificationStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def policy(self, agency_id: uuid.UUID) -> str | None:
        value = await self._db.fetchval(
            "verification_policy_get",
            "SELECT policy FROM agency_verification WHERE agency_id = $1",
            agency_id,
        )
        return str(value) if value is not None else None

    async def set_policy(self, agency_id: uuid.UUID, policy: str) -> None:
        await self._db.execute(
            "verification_policy_set",
            """INSERT INTO agency_verification (agency_id, policy) VALUES ($1, $2)
               ON CONFLICT (agency_id) DO UPDATE SET policy = $2, updated_at = now()""",
            agency_id,
            policy,
        )

    async def insert(self, records: Sequence[CodeRecord]) -> None:
        """In the accepting transaction. The same code for the same number twice (rare) keeps
        the newer message: lookups answer with the latest."""
        if not records:
            return
        await self._db.execute(
            "verification_codes_insert",
            """INSERT INTO verification_codes
                   (code_hash, recipient_hash, agency_id, sender, sent_at, expires_at)
               SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::uuid[], $4::text[],
                                    $5::timestamptz[], $6::timestamptz[])
               ON CONFLICT (code_hash) DO UPDATE SET
                   agency_id = EXCLUDED.agency_id, sender = EXCLUDED.sender,
                   sent_at = EXCLUDED.sent_at, expires_at = EXCLUDED.expires_at""",
            [r.code_hash for r in records],
            [r.recipient_hash for r in records],
            [r.agency_id for r in records],
            [r.sender for r in records],
            [r.sent_at for r in records],
            [r.expires_at for r in records],
        )

    async def count_attempt(self, recipient_hash: bytes, window_start: datetime) -> int:
        """One more attempt for this number in this window; the count including it."""
        value = await self._db.fetchval(
            "verification_attempt",
            """INSERT INTO verification_attempts (recipient_hash, window_start, attempts)
               VALUES ($1, $2, 1)
               ON CONFLICT (recipient_hash, window_start)
               DO UPDATE SET attempts = verification_attempts.attempts + 1
               RETURNING attempts""",
            recipient_hash,
            window_start,
        )
        return int(value)

    async def lookup(self, code_hash: bytes, recipient_hash: bytes, now: datetime) -> Match | None:
        row = await self._db.fetchrow(
            "verification_lookup",
            """SELECT v.agency_id, a.name_fa, a.name_en, v.sender, v.sent_at
               FROM verification_codes v JOIN agencies a ON a.id = v.agency_id
               WHERE v.code_hash = $1 AND v.recipient_hash = $2 AND v.expires_at > $3""",
            code_hash,
            recipient_hash,
            now,
        )
        return Match(**dict(row)) if row else None

    async def purge(self, now: datetime, attempts_before: datetime) -> int:
        status = await self._db.execute(
            "verification_purge", "DELETE FROM verification_codes WHERE expires_at <= $1", now
        )
        await self._db.execute(
            "verification_attempts_purge",
            "DELETE FROM verification_attempts WHERE window_start < $1",
            attempts_before,
        )
        return int(status.split()[-1])
