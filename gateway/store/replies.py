"""Citizens' messages (MO): routing by longest prefix, fragments of long messages, threading."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.store.db import Executor
from gateway.store.models import Reply

if TYPE_CHECKING:
    from gateway.vault import Vault

_COLUMNS = """id, seq, agency_id, number, msisdn, body, operator, in_reply_to, keyword, received_at,
    data_key, body_sealed"""


class ReplyStore:
    def __init__(self, db: Executor, vault: Vault | None = None) -> None:
        self._db = db
        self.vault = vault

    def _reply(self, row: Any) -> Reply:
        from gateway.vault import reply_aad

        d = dict(row)
        key, sealed = d.pop("data_key"), d.pop("body_sealed")
        if key is not None:
            plain = None if self.vault is None else self.vault.open(key, sealed, reply_aad(d["id"]))
            d["body"] = "" if plain is None else plain.decode()
        return Reply(**d)

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
        body, key_id, sealed = reply.body, None, None
        if self.vault is not None:
            from gateway.vault import SMS, reply_aad

            key = await self.vault.key_for(reply.agency_id, SMS, datetime.now(UTC))
            body, key_id, sealed = "", key.id, key.seal(reply.body.encode(), reply_aad(reply.id))
        row = await self._db.fetchrow(
            "reply_insert",
            f"""INSERT INTO replies (id, agency_id, number, msisdn, body, operator, in_reply_to,
                    keyword, data_key, body_sealed)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {_COLUMNS}""",
            reply.id,
            reply.agency_id,
            reply.number,
            reply.msisdn,
            body,
            reply.operator,
            reply.in_reply_to,
            reply.keyword,
            key_id,
            sealed,
        )
        assert row is not None
        return self._reply(row)

    async def page(self, agency_id: uuid.UUID, after: int, limit: int) -> list[Reply]:
        rows = await self._db.fetch(
            "reply_page",
            f"""SELECT {_COLUMNS} FROM replies WHERE agency_id = $1 AND seq > $2
                ORDER BY seq LIMIT $3""",
            agency_id,
            after,
            limit,
        )
        if self.vault is not None:
            await self.vault.load({r["data_key"] for r in rows})
        return [self._reply(r) for r in rows]
