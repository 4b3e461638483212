"""Citizens' messages (MO): routing by longest prefix, fragments of long messages, threading."""

from __future__ import annotations

import uuid
from datetime import datetime

from gateway.store.db import Executor
from gateway.store.models import Reply

_COLUMNS = "id, seq, agency_id, number, msisdn, body, operator, in_reply_to, keyword, received_at"


class ReplyStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def route(self, number: str) -> tuple[uuid.UUID, str] | None:
        """The agency whose active shortcode or sub-number is the longest prefix of ``number``
        (the numbering plan keeps these prefix-free across agencies)."""
        row = await self._db.fetchrow(
            "reply_route",
            """SELECT agency_id, value FROM numbering
               WHERE kind IN ('shortcode', 'sub_number') AND released_at IS NULL
                 AND starts_with($1, value)
               ORDER BY length(value) DESC LIMIT 1""",
            number,
        )
        return (row["agency_id"], row["value"]) if row else None

    async def add_fragment(
        self, operator: str, msisdn: str, number: str, ref: int, total: int, seq: int, body: str
    ) -> dict[int, str] | None:
        """Keep one part of a long message; when all parts are here, return them (and forget
        them). Repeated parts are ignored."""
        await self._db.execute(
            "mo_fragment_add",
            """INSERT INTO mo_fragments (operator, msisdn, number, ref, total, seq, body)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING""",
            operator,
            msisdn,
            number,
            ref,
            total,
            seq,
            body,
        )
        rows = await self._db.fetch(
            "mo_fragment_take",
            """WITH have AS (
                   SELECT count(*) AS n FROM mo_fragments
                   WHERE operator = $1 AND msisdn = $2 AND number = $3 AND ref = $4)
               DELETE FROM mo_fragments
               WHERE operator = $1 AND msisdn = $2 AND number = $3 AND ref = $4
                 AND (SELECT n FROM have) >= $5
               RETURNING seq, body""",
            operator,
            msisdn,
            number,
            ref,
            total,
        )
        if not rows:
            return None
        return {int(r["seq"]): str(r["body"]) for r in rows}

    async def last_message_to(
        self, agency_id: uuid.UUID, msisdn: str, since: datetime
    ) -> uuid.UUID | None:
        found: uuid.UUID | None = await self._db.fetchval(
            "reply_thread",
            """SELECT id FROM messages WHERE agency_id = $1 AND recipient = $2
                 AND created_at >= $3 AND NOT is_test
               ORDER BY created_at DESC LIMIT 1""",
            agency_id,
            msisdn,
            since,
        )
        return found

    async def insert(self, reply: Reply) -> Reply:
        row = await self._db.fetchrow(
            "reply_insert",
            f"""INSERT INTO replies (id, agency_id, number, msisdn, body, operator, in_reply_to,
                    keyword)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_COLUMNS}""",
            reply.id,
            reply.agency_id,
            reply.number,
            reply.msisdn,
            reply.body,
            reply.operator,
            reply.in_reply_to,
            reply.keyword,
        )
        assert row is not None
        return Reply(**dict(row))

    async def page(self, agency_id: uuid.UUID, after: int, limit: int) -> list[Reply]:
        rows = await self._db.fetch(
            "reply_page",
            f"""SELECT {_COLUMNS} FROM replies WHERE agency_id = $1 AND seq > $2
                ORDER BY seq LIMIT $3""",
            agency_id,
            after,
            limit,
        )
        return [Reply(**dict(r)) for r in rows]
