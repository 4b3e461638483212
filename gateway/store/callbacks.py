"""Callbacks to agencies: enqueued in the transaction of the event they announce, then
delivered by the callback worker with retries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.store.db import Executor

if TYPE_CHECKING:
    from gateway.vault import Vault


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
    def __init__(self, db: Executor, vault: Vault | None = None) -> None:
        self._db = db
        self.vault = vault

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
        if self.vault is None:
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
            return
        # Reply callbacks repeat the citizen's text: sealed like the reply itself, the row's id
        # (drawn first) as associated data.
        from gateway.vault import SMS, callback_aad

        key = await self.vault.key_for(agency_id, SMS, datetime.now(UTC))
        cid = await self._db.fetchval("callbacks_next_id", "SELECT nextval('callbacks_id_seq')")
        await self._db.execute(
            "callbacks_enqueue_sealed",
            """INSERT INTO callbacks (id, agency_id, kind, url, body, give_up_at, data_key)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            cid,
            agency_id,
            kind,
            url,
            key.seal(body, callback_aad(int(cid))),
            give_up_at,
            key.id,
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
               RETURNING k.id, k.agency_id, k.kind, k.url, k.body, k.attempts, k.give_up_at,
                         k.data_key""",
            limit,
            lease_seconds,
        )
        from gateway.vault import callback_aad

        if self.vault is not None:
            await self.vault.load({r["data_key"] for r in rows})
        out = []
        for r in rows:
            d = dict(r)
            key, body = d.pop("data_key"), bytes(r["body"])
            if key is not None:
                plain = (
                    None
                    if self.vault is None
                    else self.vault.open(key, body, callback_aad(d["id"]))
                )
                body = plain if plain is not None else b"{}"
            out.append(DueCallback(**{**d, "body": body}))
        return out

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
