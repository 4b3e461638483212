"""Letters, their attachments and replies, and the outbox rows that opening or replying writes."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from adapters.kartpooshe.ebox.models import (
    Attachment,
    AttachmentMeta,
    DepositResult,
    Letter,
    LetterSummary,
    NewLetter,
    Reply,
)
from adapters.kartpooshe.ebox.store.db import Q, transaction


def _meta(r: asyncpg.Record) -> AttachmentMeta:
    return AttachmentMeta(r["position"], r["name"], r["content_type"], r["size"], r["sha256"])


class Letters:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._q = Q(pool)

    async def deposit(self, letter: NewLetter) -> DepositResult:
        """Store a letter (and make its box) once; a second call returns the first deposit."""
        async with transaction(self._pool) as q:
            await q.execute(
                "box_ensure",
                "INSERT INTO boxes (owner_id, kind) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                letter.owner_id,
                letter.kind,
            )
            row = await q.fetchrow(
                "letter_insert",
                """INSERT INTO letters (letter_id, owner_id, tracking_number, agency_id,
                       agency_name_fa, agency_name_en, subject, body, reply_allowed,
                       accepted_at, content_sha256)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                   ON CONFLICT (letter_id) DO NOTHING
                   RETURNING deposited_at""",
                letter.letter_id,
                letter.owner_id,
                letter.tracking_number,
                letter.agency_id,
                letter.agency_name_fa,
                letter.agency_name_en,
                letter.subject,
                letter.body,
                letter.reply_allowed,
                letter.accepted_at,
                letter.content_sha256,
            )
            if row is None:
                existing = await q.fetchrow(
                    "letter_existing",
                    "SELECT deposited_at, content_sha256 FROM letters WHERE letter_id = $1",
                    letter.letter_id,
                )
                assert existing is not None
                return DepositResult(False, existing["deposited_at"], existing["content_sha256"])
            for att in letter.attachments:
                m = att.meta
                await q.execute(
                    "attachment_insert",
                    """INSERT INTO attachments (letter_id, position, name, content_type, size,
                           sha256, data) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                    letter.letter_id,
                    m.position,
                    m.name,
                    m.content_type,
                    m.size,
                    m.sha256,
                    att.data,
                )
            return DepositResult(True, row["deposited_at"], letter.content_sha256)

    async def list_for_box(self, owner_id: str, limit: int = 200) -> list[LetterSummary]:
        rows = await self._q.fetch(
            "letters_list",
            """SELECT letter_id, owner_id, tracking_number, agency_name_fa, subject,
                      deposited_at, first_opened_at
               FROM letters WHERE owner_id = $1 ORDER BY deposited_at DESC LIMIT $2""",
            owner_id,
            limit,
        )
        return [
            LetterSummary(
                r["letter_id"],
                r["owner_id"],
                r["tracking_number"],
                r["agency_name_fa"],
                r["subject"],
                r["deposited_at"],
                r["first_opened_at"],
            )
            for r in rows
        ]

    async def get(self, owner_id: str, letter_id: str) -> Letter | None:
        r = await self._q.fetchrow(
            "letter_get",
            """SELECT letter_id, owner_id, tracking_number, agency_name_fa, agency_name_en,
                      subject, body, reply_allowed, deposited_at, first_opened_at
               FROM letters WHERE owner_id = $1 AND letter_id = $2""",
            owner_id,
            letter_id,
        )
        if r is None:
            return None
        atts = await self._q.fetch(
            "attachments_meta",
            """SELECT position, name, content_type, size, sha256 FROM attachments
               WHERE letter_id = $1 ORDER BY position""",
            letter_id,
        )
        return Letter(
            r["letter_id"],
            r["owner_id"],
            r["tracking_number"],
            r["agency_name_fa"],
            r["agency_name_en"],
            r["subject"],
            r["body"],
            r["reply_allowed"],
            r["deposited_at"],
            r["first_opened_at"],
            tuple(_meta(a) for a in atts),
        )

    async def attachment(self, owner_id: str, letter_id: str, position: int) -> Attachment | None:
        r = await self._q.fetchrow(
            "attachment_get",
            """SELECT a.position, a.name, a.content_type, a.size, a.sha256, a.data
               FROM attachments a JOIN letters l USING (letter_id)
               WHERE l.owner_id = $1 AND a.letter_id = $2 AND a.position = $3""",
            owner_id,
            letter_id,
            position,
        )
        return None if r is None else Attachment(_meta(r), bytes(r["data"]))

    async def mark_opened(self, letter_id: str, actor: str, at: datetime) -> uuid.UUID | None:
        """Record the first opening and queue its event; None when it was opened before."""
        async with transaction(self._pool) as q:
            done = await q.fetchval(
                "letter_mark_opened",
                """UPDATE letters SET first_opened_at = $2, opened_by = $3
                   WHERE letter_id = $1 AND first_opened_at IS NULL RETURNING letter_id""",
                letter_id,
                at,
                actor,
            )
            if done is None:
                return None
            event_id = uuid.uuid4()
            await _queue_event(q, event_id, letter_id, "opened", at, actor, None)
            return event_id

    async def add_reply(
        self,
        letter_id: str,
        actor: str,
        text: str,
        attachment: tuple[str, str, bytes] | None,
        at: datetime,
    ) -> uuid.UUID:
        """Store a reply and queue its "replied" event in one transaction."""
        reply_id = uuid.uuid4()
        name, ctype, data = attachment if attachment else (None, None, None)
        async with transaction(self._pool) as q:
            await q.execute(
                "reply_insert",
                """INSERT INTO replies (reply_id, letter_id, actor, text, attachment_name,
                       attachment_type, attachment_data, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                reply_id,
                letter_id,
                actor,
                text,
                name,
                ctype,
                data,
                at,
            )
            await _queue_event(q, uuid.uuid4(), letter_id, "replied", at, actor, reply_id)
        return reply_id

    async def replies(self, letter_id: str) -> list[Reply]:
        rows = await self._q.fetch(
            "replies_list",
            """SELECT reply_id, letter_id, actor, text, attachment_name, attachment_type,
                      attachment_data, created_at
               FROM replies WHERE letter_id = $1 ORDER BY created_at""",
            letter_id,
        )
        return [_reply(r) for r in rows]

    async def reply(self, reply_id: uuid.UUID) -> Reply | None:
        r = await self._q.fetchrow(
            "reply_get",
            """SELECT reply_id, letter_id, actor, text, attachment_name, attachment_type,
                      attachment_data, created_at FROM replies WHERE reply_id = $1""",
            reply_id,
        )
        return None if r is None else _reply(r)


def _reply(r: asyncpg.Record) -> Reply:
    data = r["attachment_data"]
    return Reply(
        r["reply_id"],
        r["letter_id"],
        r["actor"],
        r["text"],
        r["attachment_name"],
        r["attachment_type"],
        None if data is None else bytes(data),
        r["created_at"],
    )


async def _queue_event(
    q: Q,
    event_id: uuid.UUID,
    letter_id: str,
    type_: str,
    at: datetime,
    actor: str,
    reply_id: uuid.UUID | None,
) -> None:
    await q.execute(
        "event_insert",
        """INSERT INTO events (event_id, letter_id, type, at, actor, reply_id)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        event_id,
        letter_id,
        type_,
        at,
        actor,
        reply_id,
    )
