"""Data keys (wrapped), retention settings and the retention purge's statements (migration 0010).

The crypto is in gateway/vault.py; the purge's policy in gateway/privacy.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from gateway.store.db import Executor


@dataclass(frozen=True, slots=True)
class WrappedKey:
    id: int
    agency_id: uuid.UUID
    channel: str
    period: date
    kek_id: str
    wrapped: bytes


_KEY_COLUMNS = "id, agency_id, channel, period, kek_id, wrapped"


def _key(r: Any) -> WrappedKey:
    return WrappedKey(**{**dict(r), "wrapped": bytes(r["wrapped"])})


class DataKeyStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    # -- data keys -----------------------------------------------------------------------
    async def get_or_create(
        self, agency_id: uuid.UUID, channel: str, period: date, kek_id: str, wrapped: bytes
    ) -> WrappedKey:
        """The slot's key; ours if nobody made one first (then the loser's is discarded)."""
        row = await self._db.fetchrow(
            "data_key_get_or_create",
            f"""WITH ins AS (
                   INSERT INTO data_keys (agency_id, channel, period, kek_id, wrapped)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (agency_id, channel, period) DO NOTHING
                   RETURNING {_KEY_COLUMNS})
               SELECT {_KEY_COLUMNS} FROM ins
               UNION ALL
               SELECT {_KEY_COLUMNS} FROM data_keys
                WHERE agency_id = $1 AND channel = $2 AND period = $3
               LIMIT 1""",
            agency_id,
            channel,
            period,
            kek_id,
            wrapped,
        )
        if row is None:  # inserted concurrently and not yet visible in this snapshot: re-read
            row = await self._db.fetchrow(
                "data_key_get",
                f"""SELECT {_KEY_COLUMNS} FROM data_keys
                    WHERE agency_id = $1 AND channel = $2 AND period = $3""",
                agency_id,
                channel,
                period,
            )
        assert row is not None
        return _key(row)

    async def by_ids(self, ids: list[int]) -> list[WrappedKey]:
        rows = await self._db.fetch(
            "data_keys_by_id",
            f"SELECT {_KEY_COLUMNS} FROM data_keys WHERE id = ANY($1::int[])",
            ids,
        )
        return [_key(r) for r in rows]

    async def not_under(self, kek_id: str, limit: int) -> list[WrappedKey]:
        """Keys still wrapped under another KEK than ``kek_id`` (what a rotation has left)."""
        rows = await self._db.fetch(
            "data_keys_not_under",
            f"SELECT {_KEY_COLUMNS} FROM data_keys WHERE kek_id <> $1 ORDER BY id LIMIT $2",
            kek_id,
            limit,
        )
        return [_key(r) for r in rows]

    async def rewrap(self, key_id: int, old_kek: str, new_kek: str, wrapped: bytes) -> bool:
        """Replace one wrapping; only if it is still the one we read (no lost update)."""
        done = await self._db.fetchval(
            "data_key_rewrap",
            """UPDATE data_keys SET kek_id = $3, wrapped = $4
               WHERE id = $1 AND kek_id = $2 RETURNING true""",
            key_id,
            old_kek,
            new_kek,
            wrapped,
        )
        return bool(done)

    async def kek_counts(self) -> dict[str, int]:
        rows = await self._db.fetch(
            "data_keys_by_kek", "SELECT kek_id, count(*) AS n FROM data_keys GROUP BY kek_id"
        )
        return {r["kek_id"]: int(r["n"]) for r in rows}

    async def shred(self, channel: str, default_days: int, now: datetime) -> list[int]:
        """Delete the keys whose whole period is past the agency's retention for the channel:
        everything sealed under them, in the table and in every backup, is unreadable."""
        rows = await self._db.fetch(
            "data_keys_shred",
            """DELETE FROM data_keys k
               WHERE k.channel = $1
                 AND (k.period::timestamp AT TIME ZONE 'UTC') + interval '1 month'
                     + make_interval(days => coalesce(
                           (SELECT r.days FROM retention_settings r
                             WHERE r.agency_id = k.agency_id AND r.channel = $1), $2))
                     <= $3::timestamptz
               RETURNING k.id""",
            channel,
            default_days,
            now,
        )
        return [int(r["id"]) for r in rows]

    # -- retention settings --------------------------------------------------------------
    async def retention(self, agency_id: uuid.UUID) -> dict[str, int]:
        rows = await self._db.fetch(
            "retention_get",
            "SELECT channel, days FROM retention_settings WHERE agency_id = $1",
            agency_id,
        )
        return {r["channel"]: int(r["days"]) for r in rows}

    async def set_retention(self, agency_id: uuid.UUID, channel: str, days: int | None) -> None:
        if days is None:
            await self._db.execute(
                "retention_clear",
                "DELETE FROM retention_settings WHERE agency_id = $1 AND channel = $2",
                agency_id,
                channel,
            )
            return
        await self._db.execute(
            "retention_put",
            """INSERT INTO retention_settings (agency_id, channel, days) VALUES ($1, $2, $3)
               ON CONFLICT (agency_id, channel) DO UPDATE
                 SET days = EXCLUDED.days, updated_at = now()""",
            agency_id,
            channel,
            days,
        )

    # -- purge: rows past retention --------------------------------------------------------
    async def shortest(self, channel: str, default_days: int) -> int:
        """The shortest retention in force for a channel: rows newer than that are skipped by
        an index range before any per-agency cutoff is computed."""
        days = await self._db.fetchval(
            "retention_shortest",
            "SELECT min(days) FROM retention_settings WHERE channel = $1",
            channel,
        )
        return min(default_days, int(days)) if days is not None else default_days

    _CUTOFF = """$1::timestamptz - make_interval(days => coalesce(
                     (SELECT r.days FROM retention_settings r
                       WHERE r.agency_id = t.agency_id AND r.channel = $2), $3))"""

    async def _past_retention(
        self,
        name: str,
        select: str,
        age: str,
        channel: str,
        args: tuple[datetime, int, int, int],
    ) -> list[tuple[uuid.UUID, str]]:
        """Rows of ``select`` (id and the PII column, FROM table ``t``) whose ``age`` column is
        past their agency's retention for ``channel``, and past the shortest retention of any
        agency (so the planner can use the age index before looking up each agency)."""
        now, default_days, limit, shortest = args
        rows = await self._db.fetch(
            name,
            f"""{select}
                  AND t.{age} < {self._CUTOFF}
                  AND t.{age} < $1::timestamptz - make_interval(days => $5)
                LIMIT $4""",
            now,
            channel,
            default_days,
            limit,
            shortest,
        )
        return [(r[0], r[1]) for r in rows]

    async def old_messages(
        self, now: datetime, default_days: int, limit: int, shortest: int
    ) -> list[tuple[uuid.UUID, str]]:
        """Final messages past the agency's SMS retention that still carry PII."""
        return await self._past_retention(
            "purge_old_messages",
            "SELECT t.id, t.recipient FROM messages t "
            "WHERE t.purged_at IS NULL AND t.final_at IS NOT NULL",
            "created_at",
            "sms",
            (now, default_days, limit, shortest),
        )

    async def scrub_messages(self, ids: list[uuid.UUID], hashed: list[str]) -> None:
        """Text and ciphertext gone, the number replaced by its keyed hash; counts, statuses,
        timings, parts, sender and operator stay for SLA reports and billing."""
        await self._db.execute(
            "purge_scrub_messages",
            """UPDATE messages m SET recipient = h.hash, body = '', body_sealed = NULL,
                      body_mac = NULL, purged_at = now()
               FROM unnest($1::uuid[], $2::text[]) AS h(id, hash)
               WHERE m.id = h.id""",
            ids,
            hashed,
        )

    async def old_replies(
        self, now: datetime, default_days: int, limit: int, shortest: int
    ) -> list[tuple[uuid.UUID, str]]:
        return await self._past_retention(
            "purge_old_replies",
            "SELECT t.id, t.msisdn FROM replies t WHERE t.purged_at IS NULL",
            "received_at",
            "sms",
            (now, default_days, limit, shortest),
        )

    async def scrub_replies(self, ids: list[uuid.UUID], hashed: list[str]) -> None:
        await self._db.execute(
            "purge_scrub_replies",
            """UPDATE replies r SET msisdn = h.hash, body = '', body_sealed = NULL,
                      purged_at = now()
               FROM unnest($1::uuid[], $2::text[]) AS h(id, hash)
               WHERE r.id = h.id""",
            ids,
            hashed,
        )

    async def old_letters(
        self, now: datetime, default_days: int, limit: int, shortest: int
    ) -> list[tuple[uuid.UUID, str]]:
        return await self._past_retention(
            "purge_old_letters",
            "SELECT t.id, t.recipient_id FROM letters t WHERE t.purged_at IS NULL",
            "accepted_at",
            "letter",
            (now, default_days, limit, shortest),
        )

    async def scrub_letters(self, ids: list[uuid.UUID], hashed: list[str]) -> None:
        """Subject, body, attachments and reply texts gone; the evidence chain (hashes and
        signatures, no content) stays, so a letter's delivery can still be proven."""
        await self._db.execute(
            "purge_scrub_letters",
            """WITH u AS (
                   UPDATE letters l SET recipient_id = h.hash, subject = '', body = '',
                          content_sealed = NULL, purged_at = now()
                   FROM unnest($1::uuid[], $2::text[]) AS h(id, hash)
                   WHERE l.id = h.id RETURNING l.id),
               a AS (UPDATE letter_attachments x SET data = '', name = ''
                     FROM u WHERE x.letter_id = u.id),
               r AS (UPDATE letter_replies x SET text = '', text_sealed = NULL
                     FROM u WHERE x.letter_id = u.id RETURNING x.id)
               UPDATE letter_reply_attachments x SET data = '', name = ''
                 FROM r WHERE x.reply_id = r.id""",
            ids,
            hashed,
        )

    async def purge_transient(self, now: datetime, sms_days: int) -> None:
        """What has no history value, older than the default SMS retention: callbacks (their
        bodies repeat numbers and texts; one still pending is long past its give-up time),
        incomplete MO fragments, idempotency answers, USSD sessions and push texts."""
        await self._db.execute(
            "purge_transient",
            """WITH c AS (DELETE FROM callbacks
                          WHERE created_at < $1::timestamptz - make_interval(days => $2)),
               f AS (DELETE FROM mo_fragments
                      WHERE received_at < $1::timestamptz - make_interval(days => $2)),
               i AS (DELETE FROM idempotency_keys
                      WHERE created_at < $1::timestamptz - make_interval(days => $2)),
               s AS (DELETE FROM ussd_sessions
                      WHERE updated_at < $1::timestamptz - make_interval(days => $2))
               UPDATE ussd_pushes SET text = '', fallback_text = '', answer = NULL,
                      msisdn = ''
                WHERE created_at < $1::timestamptz - make_interval(days => $2)
                  AND msisdn <> ''""",
            now,
            sms_days,
        )
