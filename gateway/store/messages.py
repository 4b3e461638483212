"""Messages: accept (insert with queue row and first event), read with history, cancel, and
the policy lookups the accept path needs (opt-outs, duplicates, quota, idempotency)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import orjson
from asyncpg.pgproto import pgproto

from gateway.status import CANCELLED, WAITING
from gateway.store.db import Executor
from gateway.store.models import Message, MessageEvent, NewMessage

if TYPE_CHECKING:
    from gateway.vault import DataKey, Vault

_COLUMNS = """id, agency_id, batch_id, is_test, recipient, sender, body, encoding, parts, priority,
    mandatory, status, operator, send_at, valid_until, client_ref, callback_url, attempts,
    error_code, created_at, updated_at, final_at, data_key, body_sealed"""

MESSAGE_COLUMNS = _MESSAGE_FIELDS = (
    "id",
    "agency_id",
    "batch_id",
    "key_id",
    "is_test",
    "recipient",
    "sender",
    "body",
    "encoding",
    "parts",
    "priority",
    "mandatory",
    "status",
    "send_at",
    "valid_until",
    "client_ref",
    "callback_url",
)


async def agency_keys(
    vault: Vault, agency_ids: set[uuid.UUID], channel: str
) -> dict[uuid.UUID, DataKey]:
    """This month's data key of each agency in a batch (one await per agency, not per row)."""
    now = datetime.now(UTC)
    return {a: await vault.key_for(a, channel, now) for a in agency_ids}


def open_body(vault: Vault | None, row: Any) -> str:
    """The text of a ``messages`` row read with data_key and body_sealed: '' once shredded or
    purged; a row written before encryption (data_key NULL) is plaintext."""
    from gateway.vault import message_aad

    if row["data_key"] is None:
        return str(row["body"])
    if vault is None:
        return ""
    plain = vault.open(row["data_key"], row["body_sealed"], message_aad(row["id"]))
    return "" if plain is None else plain.decode()


def uuid4_many(n: int) -> list[uuid.UUID]:
    """``n`` random (version 4, RFC 9562 §5.4) UUIDs from one read of the OS's CSPRNG: the
    ids uuid.uuid4() would draw, built by asyncpg's C UUID type (a uuid.UUID subclass, the one
    queries return) at ~0.7 µs instead of ~1.7 µs each: a 1M-recipient batch draws one per
    recipient."""
    raw = bytearray(os.urandom(16 * n))
    for i in range(0, 16 * n, 16):
        raw[i + 6] = (raw[i + 6] & 0x0F) | 0x40  # version 4
        raw[i + 8] = (raw[i + 8] & 0x3F) | 0x80  # RFC 9562 variant
    data = bytes(raw)
    return [pgproto.UUID(data[i : i + 16]) for i in range(0, 16 * n, 16)]


class MessageStore:
    def __init__(self, db: Executor, vault: Vault | None = None) -> None:
        self._db = db
        # Set by Store.use_vault (gateway/services.py): texts are sealed from then on.
        self.vault = vault

    async def _sealed(self, rows: list[NewMessage]) -> list[tuple[int, bytes, bytes] | None]:
        """(data key id, sealed text, text MAC) per row, or None per row without a vault."""
        vault = self.vault
        if vault is None:
            return [None] * len(rows)
        from gateway.vault import SMS, message_aad

        keys = await agency_keys(vault, {m.agency_id for m in rows}, SMS)
        # Per agency, so that each key seals its rows in one seal_many (one nonce draw from the
        # OS for the lot); a group commit's rows nearly always share one agency.
        by_agency: dict[uuid.UUID, list[int]] = {}
        for i, m in enumerate(rows):
            by_agency.setdefault(m.agency_id, []).append(i)
        out: list[tuple[int, bytes, bytes] | None] = [None] * len(rows)
        for agency_id, idx in by_agency.items():
            k = keys[agency_id]
            sealed = k.seal_many([(rows[i].body.encode(), message_aad(rows[i].id)) for i in idx])
            for i, c in zip(idx, sealed, strict=True):
                out[i] = (k.id, c, vault.mac(rows[i].body))
        return out

    async def insert_one(self, m: NewMessage, lane: int) -> datetime:
        """Message and queue row in one statement. The accept transitions (accepted, then
        queued or scheduled) are not written as events: they are implied by created_at and
        send_at, which saves two rows per message on the hottest path (see history())."""
        (sealed,) = await self._sealed([m])
        values = [getattr(m, f) for f in _MESSAGE_FIELDS]
        if sealed is not None:
            values[_MESSAGE_FIELDS.index("body")] = ""
        created: datetime = await self._db.fetchval(
            "message_insert",
            """WITH m AS (
                   INSERT INTO messages (id, agency_id, batch_id, key_id, is_test, recipient,
                       sender, body, encoding, parts, priority, mandatory, status, send_at,
                       valid_until, client_ref, callback_url, data_key, body_sealed, body_mac)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                       $16, $17, $20, $21, $22)
                   RETURNING id, created_at),
               q AS (INSERT INTO queue (message_id, lane, agency_id, vt)
                     SELECT id, $18, $2, $19 FROM m)
               SELECT created_at FROM m""",
            *values,
            lane,
            m.vt,
            *(sealed if sealed is not None else (None, None, None)),
        )
        return created

    async def insert_batch(
        self,
        batch_id: uuid.UUID,
        agency_id: uuid.UUID,
        is_test: bool,
        total: int,
        rejected: int,
        client_ref: str,
    ) -> None:
        await self._db.execute(
            "batch_insert",
            """INSERT INTO batches (id, agency_id, is_test, total, rejected, client_ref)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            batch_id,
            agency_id,
            is_test,
            total,
            rejected,
            client_ref,
        )

    async def batch_counts(
        self, agency_id: uuid.UUID, batch_id: uuid.UUID
    ) -> tuple[dict[str, Any], dict[str, int]] | None:
        row = await self._db.fetchrow(
            "batch_get",
            """SELECT id, total, rejected, client_ref, is_test, created_at, cancelled_at
               FROM batches WHERE id = $1 AND agency_id = $2""",
            batch_id,
            agency_id,
        )
        if row is None:
            return None
        counts = await self._db.fetch(
            "batch_counts",
            "SELECT status, count(*) AS n FROM messages WHERE batch_id = $1 GROUP BY status",
            batch_id,
        )
        return dict(row), {r["status"]: int(r["n"]) for r in counts}

    async def cancel_batch(self, agency_id: uuid.UUID, batch_id: uuid.UUID) -> int:
        """Cancel every message of the batch still waiting and not claimed by a sender."""
        n = await self._db.fetchval(
            "batch_cancel",
            """WITH b AS (UPDATE batches SET cancelled_at = coalesce(cancelled_at, now())
                         WHERE id = $1 AND agency_id = $2 RETURNING id),
               q AS (DELETE FROM queue WHERE message_id IN (
                         SELECT id FROM messages WHERE batch_id IN (SELECT id FROM b))
                       AND leased_until < now() RETURNING message_id),
               m AS (UPDATE messages SET status = $3, updated_at = now(), final_at = now()
                     WHERE id IN (SELECT message_id FROM q) AND status = ANY($4::text[])
                     RETURNING id),
               e AS (INSERT INTO message_events (message_id, status) SELECT id, $3 FROM m)
               SELECT count(*) FROM m""",
            batch_id,
            agency_id,
            CANCELLED,
            list(WAITING),
        )
        return int(n)

    async def accept_many(
        self,
        rows: list[NewMessage],
        *,
        jtis: list[str],
        expires: list[datetime],
        check_opt_out: list[bool],
        duplicate_since: list[datetime | None],
        days: list[date],
        quotas: list[int],
    ) -> tuple[list[str | None], datetime]:
        """The send pipeline's whole batch in one call and one implicit transaction
        (``payam_accept_messages``, migrations 0009 to 0015): per message a refusal code or
        None, in order, and the commit time of the accepted ones."""
        # One composite value per row, in payam_accept_item's attribute order (migration 0015),
        # sent by asyncpg in binary: no JSON to parse and no text to convert on the server.
        sealed = await self._sealed(rows)
        items: list[tuple[Any, ...]] = []
        for i, m in enumerate(rows):
            # Sealed here, per batch: the function stores ciphertext and compares MACs
            # (migration 0010); the text itself never reaches the database.
            data_key, body_sealed, body_mac = sealed[i] or (None, None, None)
            items.append(
                (
                    jtis[i],
                    expires[i],
                    check_opt_out[i],
                    duplicate_since[i],
                    days[i],
                    quotas[i],
                    m.id,
                    m.agency_id,
                    m.batch_id,
                    m.key_id,
                    m.is_test,
                    m.recipient,
                    m.sender,
                    m.body if body_sealed is None else "",
                    m.encoding,
                    m.parts,
                    m.priority,
                    m.mandatory,
                    m.status,
                    m.send_at,
                    m.valid_until,
                    m.client_ref,
                    m.callback_url,
                    m.vt,
                    data_key,
                    body_sealed,
                    body_mac,
                )
            )
        row = await self._db.fetchrow(
            "message_accept_many",
            "SELECT codes, accepted_at FROM payam_accept_messages($1::payam_accept_item[])",
            items,
        )
        assert row is not None
        return list(row["codes"]), row["accepted_at"]

    async def insert_batch_rows(
        self,
        rows: list[tuple[str, str, str, int]],
        *,
        batch_id: uuid.UUID,
        agency_id: uuid.UUID,
        key_id: str,
        is_test: bool,
        sender: str,
        priority: int,
        mandatory: bool,
        status: str,
        send_at: datetime | None,
        valid_until: datetime,
        client_ref: str,
        callback_url: str,
        start: datetime,
        step_seconds: float,
    ) -> None:
        """A batch's messages and queue rows. Only what differs per recipient (recipient, text,
        encoding, parts) crosses the wire, by COPY into a session-local staging table; the
        server adds the shared fields, draws the ids and writes the queue rows, paced by
        ``step_seconds`` of virtual time. Must run inside a transaction."""
        conn: Any = self._db.raw()
        await conn.execute(
            """CREATE TEMP TABLE IF NOT EXISTS batch_stage_sealed (
                   id uuid, recipient text, body text, encoding text, parts smallint,
                   data_key integer, body_sealed bytea, body_mac bytea)
               ON COMMIT DELETE ROWS;
               TRUNCATE batch_stage_sealed"""
        )
        staged: list[tuple[Any, ...]]
        if self.vault is None:
            staged = [(uuid.uuid4(), r, b, e, n, None, None, None) for r, b, e, n in rows]
        else:
            from gateway.vault import SMS, message_aad

            key = (await agency_keys(self.vault, {agency_id}, SMS))[agency_id]
            mac = self.vault.mac
            # Ids drawn here, not by the server: the id is the sealed text's associated data.
            ids = uuid4_many(len(rows))
            sealed = key.seal_many(
                [
                    (b.encode(), message_aad(mid))
                    for mid, (_, b, _, _) in zip(ids, rows, strict=True)
                ]
            )
            staged = [
                (mid, r, "", e, n, key.id, ct, mac(b))
                for mid, ct, (r, b, e, n) in zip(ids, sealed, rows, strict=True)
            ]
        await conn.copy_records_to_table(
            "batch_stage_sealed",
            records=staged,
            columns=[
                "id",
                "recipient",
                "body",
                "encoding",
                "parts",
                "data_key",
                "body_sealed",
                "body_mac",
            ],
        )
        await self._db.execute(
            "batch_insert_rows",
            """WITH m AS (
                   INSERT INTO messages (id, agency_id, batch_id, key_id, is_test, recipient,
                       sender, body, encoding, parts, priority, mandatory, status, send_at,
                       valid_until, client_ref, callback_url, data_key, body_sealed, body_mac)
                   SELECT s.id, $1, $2, $3, $4, s.recipient, $5, s.body, s.encoding, s.parts,
                          $6, $7, $8, $9, $10, $11, $12, s.data_key, s.body_sealed, s.body_mac
                   FROM batch_stage_sealed s
                   RETURNING id)
               INSERT INTO queue (message_id, lane, agency_id, vt)
               SELECT id, $6, $1,
                      $13::timestamptz
                      + make_interval(secs => $14::float8 * (row_number() OVER () - 1))
               FROM m""",
            agency_id,
            batch_id,
            key_id,
            is_test,
            sender,
            priority,
            mandatory,
            status,
            send_at,
            valid_until,
            client_ref,
            callback_url,
            start,
            step_seconds,
        )

    async def copy_rows(
        self, messages: list[tuple[Any, ...]], queue: list[tuple[Any, ...]]
    ) -> None:
        """Bulk insert through COPY (batches). ``messages`` rows follow MESSAGE_COLUMNS;
        ``queue`` rows are (message_id, lane, agency_id, vt)."""
        conn: Any = self._db.raw()
        await conn.copy_records_to_table(
            "messages", records=messages, columns=list(MESSAGE_COLUMNS)
        )
        await conn.copy_records_to_table(
            "queue", records=queue, columns=["message_id", "lane", "agency_id", "vt"]
        )

    async def get(self, agency_id: uuid.UUID, message_id: uuid.UUID) -> Message | None:
        row = await self._db.fetchrow(
            "message_get",
            f"SELECT {_COLUMNS} FROM messages WHERE id = $1 AND agency_id = $2",
            message_id,
            agency_id,
        )
        if row is None:
            return None
        if row["data_key"] is not None and self.vault is not None:
            await self.vault.load([row["data_key"]])
        d = dict(row)
        d["body"] = open_body(self.vault, row)
        del d["data_key"], d["body_sealed"]
        return Message(**d)

    async def notify_queued(self, crisis: bool) -> None:
        """Wake the dispatchers (and, for crisis, their crisis worker) when this transaction
        commits: NOTIFY is delivered only on commit, so nobody looks for a message that is not
        there yet, and identical notifications in one transaction are sent once."""
        await self._db.execute(
            "notify_queued",
            "SELECT pg_notify('payam_queue', ''), pg_notify('payam_crisis', '') WHERE $1"
            if crisis
            else "SELECT pg_notify('payam_queue', '') WHERE $1",
            True,
        )

    async def history(self, m: Message) -> list[MessageEvent]:
        """Every transition with its time: the implied accept transitions, then the events."""
        first = [
            MessageEvent(m.created_at, "accepted", {}),
            MessageEvent(m.created_at, "scheduled" if m.send_at else "queued", {}),
        ]
        return first + await self.events(m.id)

    async def events(self, message_id: uuid.UUID) -> list[MessageEvent]:
        rows = await self._db.fetch(
            "message_events",
            """SELECT at, status, detail::text AS detail FROM message_events
               WHERE message_id = $1 ORDER BY at, status""",
            message_id,
        )
        return [MessageEvent(r["at"], r["status"], orjson.loads(r["detail"])) for r in rows]

    async def cancel(self, agency_id: uuid.UUID, message_id: uuid.UUID) -> str | None:
        """Cancel a waiting message not currently claimed by a sender. Returns the status after
        the attempt (``cancelled`` when it worked), or None when there is no such message."""
        row = await self._db.fetchrow(
            "message_cancel",
            """WITH q AS (
                   DELETE FROM queue WHERE message_id = $1 AND agency_id = $2
                     AND leased_until < now() RETURNING message_id),
               m AS (
                   UPDATE messages SET status = $3, updated_at = now(), final_at = now()
                   WHERE id IN (SELECT message_id FROM q) AND status = ANY($4::text[])
                   RETURNING id),
               e AS (INSERT INTO message_events (message_id, status) SELECT id, $3 FROM m)
               SELECT (SELECT count(*) FROM m) AS done,
                      (SELECT status FROM messages WHERE id = $1 AND agency_id = $2) AS status""",
            message_id,
            agency_id,
            CANCELLED,
            list(WAITING),
        )
        assert row is not None
        if row["status"] is None:
            return None
        return CANCELLED if row["done"] else str(row["status"])

    # -- policy lookups ----------------------------------------------------------------------
    async def opted_out(self, agency_id: uuid.UUID, msisdns: list[str]) -> set[str]:
        rows = await self._db.fetch(
            "optout_check",
            "SELECT msisdn FROM opt_outs WHERE agency_id = $1 AND msisdn = ANY($2::text[])",
            agency_id,
            msisdns,
        )
        return {r["msisdn"] for r in rows}

    async def set_opt_out(self, agency_id: uuid.UUID, msisdn: str, opted_out: bool) -> None:
        if opted_out:
            await self._db.execute(
                "optout_insert",
                "INSERT INTO opt_outs (agency_id, msisdn) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                agency_id,
                msisdn,
            )
        else:
            await self._db.execute(
                "optout_delete",
                "DELETE FROM opt_outs WHERE agency_id = $1 AND msisdn = $2",
                agency_id,
                msisdn,
            )

    async def duplicate_of(
        self, agency_id: uuid.UUID, msisdn: str, body: str, since: datetime
    ) -> uuid.UUID | None:
        found: uuid.UUID | None = await self._db.fetchval(
            "message_duplicate",
            """SELECT id FROM messages
               WHERE agency_id = $1 AND recipient = $2 AND created_at >= $3
                 AND CASE WHEN $5::bytea IS NULL THEN body_mac IS NULL AND body = $4
                          ELSE body_mac = $5 END
                 AND status <> 'cancelled'
               ORDER BY created_at DESC LIMIT 1""",
            agency_id,
            msisdn,
            since,
            body,
            self.vault.mac(body) if self.vault is not None else None,
        )
        return found

    async def reserve_fragments(
        self, agency_id: uuid.UUID, day: date, fragments: int, quota: int
    ) -> bool:
        """Count fragments against the day's quota, atomically; False if it would exceed it.
        Its own short statement, so the per-agency row is locked only for microseconds."""
        used = await self._db.fetchval(
            "usage_reserve",
            """INSERT INTO daily_usage AS u (agency_id, day, fragments)
               SELECT $1::uuid, $2::date, $3::bigint WHERE $3::bigint <= $4::bigint
               ON CONFLICT (agency_id, day) DO UPDATE
                 SET fragments = u.fragments + EXCLUDED.fragments
                 WHERE u.fragments + EXCLUDED.fragments <= $4::bigint
               RETURNING fragments""",
            agency_id,
            day,
            fragments,
            quota,
        )
        return used is not None

    async def release_fragments(self, agency_id: uuid.UUID, day: date, fragments: int) -> None:
        await self._db.execute(
            "usage_release",
            """UPDATE daily_usage SET fragments = greatest(fragments - $3, 0)
               WHERE agency_id = $1 AND day = $2""",
            agency_id,
            day,
            fragments,
        )

    async def usage(self, agency_id: uuid.UUID, day: date) -> int:
        used = await self._db.fetchval(
            "usage_get",
            "SELECT fragments FROM daily_usage WHERE agency_id = $1 AND day = $2",
            agency_id,
            day,
        )
        return int(used or 0)

    async def idempotent_get(
        self, agency_id: uuid.UUID, key: str
    ) -> tuple[bytes, int, bytes] | None:
        row = await self._db.fetchrow(
            "idempotency_get",
            "SELECT request_hash, status, response FROM idempotency_keys "
            "WHERE agency_id = $1 AND key = $2",
            agency_id,
            key,
        )
        if row is None:
            return None
        return bytes(row["request_hash"]), int(row["status"]), bytes(row["response"])

    async def idempotent_claim(self, agency_id: uuid.UUID, key: str, request_hash: bytes) -> bool:
        """Take the key inside the caller's transaction; False if someone holds it already
        (a concurrent holder's insert blocks this one until it commits or rolls back)."""
        got = await self._db.fetchval(
            "idempotency_claim",
            """INSERT INTO idempotency_keys (agency_id, key, request_hash, status, response)
               VALUES ($1, $2, $3, 0, '') ON CONFLICT DO NOTHING RETURNING true""",
            agency_id,
            key,
            request_hash,
        )
        return bool(got)

    async def idempotent_store(
        self, agency_id: uuid.UUID, key: str, status: int, response: bytes
    ) -> None:
        await self._db.execute(
            "idempotency_store",
            """UPDATE idempotency_keys SET status = $3, response = $4
               WHERE agency_id = $1 AND key = $2""",
            agency_id,
            key,
            status,
            response,
        )

    # -- directories -------------------------------------------------------------------------
    async def citizen_numbers(self, national_codes: list[str]) -> dict[str, str]:
        rows = await self._db.fetch(
            "citizen_lookup",
            "SELECT national_code, msisdn FROM citizens WHERE national_code = ANY($1::text[])",
            national_codes,
        )
        return {r["national_code"]: r["msisdn"] for r in rows}

    async def put_citizens(self, pairs: list[tuple[str, str]]) -> None:
        await self._db.executemany(
            "citizen_upsert",
            """INSERT INTO citizens (national_code, msisdn) VALUES ($1, $2)
               ON CONFLICT (national_code) DO UPDATE SET msisdn = EXCLUDED.msisdn""",
            pairs,
        )

    async def ported(self, msisdns: list[str]) -> dict[str, str]:
        rows = await self._db.fetch(
            "portability_lookup",
            "SELECT msisdn, operator FROM portability WHERE msisdn = ANY($1::text[])",
            msisdns,
        )
        return {r["msisdn"]: r["operator"] for r in rows}

    async def put_ported(self, pairs: list[tuple[str, str]]) -> None:
        await self._db.executemany(
            "portability_upsert",
            """INSERT INTO portability (msisdn, operator) VALUES ($1, $2)
               ON CONFLICT (msisdn) DO UPDATE
                 SET operator = EXCLUDED.operator, updated_at = now()""",
            pairs,
        )
