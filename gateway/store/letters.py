"""Letters: rows, attachments, the evidence chain, e-box events, replies and their delivery,
per-agency letter settings and SMTP credentials."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from gateway.store.db import Executor, Record

if TYPE_CHECKING:
    from gateway.vault import Vault

_LETTER_COLUMNS = """id, agency_id, tracking_number, recipient_kind, recipient_id, subject, body,
    reply_allowed, deemed_policy, deemed_days, notify_sms, content_sha256, source,
    mail_message_id, client_ref, status, attempts, last_error, accepted_at, deposited_at,
    notified_at, opened_at, replied_at, deemed_at, failed_at, notice_message_id, notice_state,
    is_test"""
# Read with the sealed content (migration 0010); _LETTER_COLUMNS is also the insert's order.
_READ_COLUMNS = _LETTER_COLUMNS + ", data_key, content_sealed"


@dataclass(frozen=True, slots=True)
class Letter:
    id: uuid.UUID
    agency_id: uuid.UUID
    tracking_number: str
    recipient_kind: str
    recipient_id: str
    subject: str
    body: str
    reply_allowed: bool
    deemed_policy: str
    deemed_days: int
    notify_sms: bool
    content_sha256: str
    source: str
    mail_message_id: str
    client_ref: str
    status: str
    attempts: int
    last_error: str
    accepted_at: datetime
    deposited_at: datetime | None
    notified_at: datetime | None
    opened_at: datetime | None
    replied_at: datetime | None
    deemed_at: datetime | None
    failed_at: datetime | None
    notice_message_id: uuid.UUID | None
    notice_state: str
    is_test: bool


@dataclass(frozen=True, slots=True)
class StoredAttachment:
    idx: int
    name: str
    content_type: str
    size: int
    sha256: str
    data: bytes

    def meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True)
class LetterEvent:
    letter_id: uuid.UUID
    seq: int
    type: str
    at: datetime
    content_sha256: str
    prev_sha256: str
    event_sha256: str
    key_id: str
    signature: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LetterReply:
    id: uuid.UUID
    seq: int
    agency_id: uuid.UUID
    letter_id: uuid.UUID
    reply_id: str
    text: str
    actor_kind: str
    content_sha256: str
    replied_at: datetime
    received_at: datetime


@dataclass(frozen=True, slots=True)
class LetterSettings:
    agency_id: uuid.UUID
    deemed_policy: str
    deemed_days: int | None
    from_addresses: tuple[str, ...]
    office_mailbox: str
    reply_webhook_url: str


@dataclass(frozen=True, slots=True)
class SmtpCredential:
    username: str
    agency_id: uuid.UUID
    password_hash: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class DueReplyDelivery:
    id: int
    reply_id: uuid.UUID
    way: str
    target: str
    attempts: int
    give_up_at: datetime


def _event(r: Record) -> LetterEvent:
    d = dict(r)
    d["detail"] = orjson.loads(d["detail"]) if isinstance(d["detail"], str) else d["detail"]
    return LetterEvent(**d)


class LetterStore:
    def __init__(self, db: Executor, vault: Vault | None = None) -> None:
        self._db = db
        self.vault = vault

    async def _letters(self, rows: list[Any]) -> list[Letter]:
        """Rows to letters, opening the sealed subject and body ('' once shredded)."""
        from gateway.vault import letter_aad

        if self.vault is not None:
            await self.vault.load({r["data_key"] for r in rows})
        out = []
        for r in rows:
            d = dict(r)
            key, sealed = d.pop("data_key"), d.pop("content_sealed")
            if key is not None:
                plain = (
                    None
                    if self.vault is None
                    else self.vault.open(key, sealed, letter_aad(d["id"]))
                )
                content = orjson.loads(plain) if plain is not None else {}
                d["subject"], d["body"] = content.get("s", ""), content.get("b", "")
            out.append(Letter(**d))
        return out

    async def _letter1(self, row: Record | None) -> Letter | None:
        return (await self._letters([row]))[0] if row is not None else None

    async def _open_attachments(self, owner: uuid.UUID, rows: list[Any]) -> list[StoredAttachment]:
        from gateway.vault import attachment_aad

        if self.vault is not None:
            await self.vault.load({r["data_key"] for r in rows})
        out = []
        for r in rows:
            d = dict(r)
            key = d.pop("data_key")
            data = bytes(d["data"])
            if key is not None and data:
                plain = (
                    None
                    if self.vault is None
                    else self.vault.open(key, data, attachment_aad(owner, d["idx"]))
                )
                data = plain if plain is not None else b""
            out.append(StoredAttachment(**{**d, "data": data}))
        return out

    async def _seal_attachments(
        self, agency_id: uuid.UUID, owner: uuid.UUID, attachments: list[StoredAttachment]
    ) -> list[tuple[Any, ...]]:
        if self.vault is None:
            return [
                (owner, a.idx, a.name, a.content_type, a.size, a.sha256, a.data, None)
                for a in attachments
            ]
        from gateway.vault import LETTER, attachment_aad

        key = await self.vault.key_for(agency_id, LETTER, datetime.now(UTC))
        return [
            (
                owner,
                a.idx,
                a.name,
                a.content_type,
                a.size,
                a.sha256,
                key.seal(a.data, attachment_aad(owner, a.idx)),
                key.id,
            )
            for a in attachments
        ]

    # -- letters -------------------------------------------------------------------------
    async def insert(self, letter: Letter, attachments: list[StoredAttachment]) -> bool:
        """False when the tracking number is already taken (the caller draws another)."""
        values = {f.name: getattr(letter, f.name) for f in dataclasses.fields(Letter)}
        key_id, sealed = None, None
        if self.vault is not None:
            from gateway.vault import LETTER, letter_aad

            key = await self.vault.key_for(letter.agency_id, LETTER, datetime.now(UTC))
            content = orjson.dumps({"s": letter.subject, "b": letter.body})
            key_id, sealed = key.id, key.seal(content, letter_aad(letter.id))
            values["subject"] = values["body"] = ""
        inserted = await self._db.fetchval(
            "letter_insert",
            f"""INSERT INTO letters ({_LETTER_COLUMNS}, data_key, content_sealed)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                        $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30)
                ON CONFLICT (tracking_number) DO NOTHING RETURNING true""",
            *values.values(),
            key_id,
            sealed,
        )
        if not inserted:
            return False
        if attachments:
            await self._db.executemany(
                "letter_attachments_insert",
                """INSERT INTO letter_attachments
                       (letter_id, idx, name, content_type, size, sha256, data, data_key)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                await self._seal_attachments(letter.agency_id, letter.id, attachments),
            )
        return True

    async def get(self, letter_id: uuid.UUID, agency_id: uuid.UUID | None = None) -> Letter | None:
        row = await self._db.fetchrow(
            "letter_get",
            f"""SELECT {_READ_COLUMNS} FROM letters
                WHERE id = $1 AND ($2::uuid IS NULL OR agency_id = $2)""",
            letter_id,
            agency_id,
        )
        return await self._letter1(row)

    async def lock(self, letter_id: uuid.UUID) -> Letter | None:
        row = await self._db.fetchrow(
            "letter_lock",
            f"SELECT {_READ_COLUMNS} FROM letters WHERE id = $1 FOR UPDATE",
            letter_id,
        )
        return await self._letter1(row)

    async def by_tracking(self, agency_id: uuid.UUID, tracking: str) -> Letter | None:
        row = await self._db.fetchrow(
            "letter_by_tracking",
            f"SELECT {_READ_COLUMNS} FROM letters WHERE tracking_number = $1 AND agency_id = $2",
            tracking,
            agency_id,
        )
        return await self._letter1(row)

    async def attachments(
        self, letter_id: uuid.UUID, with_data: bool = True
    ) -> list[StoredAttachment]:
        rows = await self._db.fetch(
            "letter_attachments",
            f"""SELECT idx, name, content_type, size, sha256, data_key,
                       {"data" if with_data else "''::bytea AS data"}
                FROM letter_attachments WHERE letter_id = $1 ORDER BY idx""",
            letter_id,
        )
        return await self._open_attachments(letter_id, list(rows))

    async def update(self, letter_id: uuid.UUID, **fields: Any) -> None:
        names = list(fields)
        sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
        await self._db.execute(
            "letter_update",
            f"UPDATE letters SET {sets} WHERE id = $1",
            letter_id,
            *(fields[n] for n in names),
        )

    async def claim_due(self, limit: int, lease_seconds: float) -> list[Letter]:
        rows = await self._db.fetch(
            "letters_claim_due",
            f"""WITH c AS (
                    SELECT id FROM letters
                    WHERE status = 'accepted' AND next_attempt_at <= now()
                      AND leased_until < now()
                    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                UPDATE letters l SET leased_until = now() + make_interval(secs => $2)
                FROM c WHERE l.id = c.id
                RETURNING {", ".join("l." + c.strip() for c in _READ_COLUMNS.split(","))}""",
            limit,
            lease_seconds,
        )
        return await self._letters(list(rows))

    async def retry_later(self, letter_id: uuid.UUID, delay: float, error: str) -> None:
        await self._db.execute(
            "letter_retry",
            """UPDATE letters SET attempts = attempts + 1, last_error = $3,
                   leased_until = '-infinity',
                   next_attempt_at = now() + make_interval(secs => $2)
               WHERE id = $1""",
            letter_id,
            delay,
            error,
        )

    async def notices_pending(self, limit: int) -> list[tuple[uuid.UUID, str, datetime | None]]:
        """(letter id, the notice SMS status, its final time) for letters whose notice is out."""
        rows = await self._db.fetch(
            "letters_notices_pending",
            """SELECT l.id, m.status, m.final_at FROM letters l
               JOIN messages m ON m.id = l.notice_message_id
               WHERE l.notice_state = 'queued' AND m.final_at IS NOT NULL
               ORDER BY m.final_at LIMIT $1""",
            limit,
        )
        return [(r["id"], r["status"], r["final_at"]) for r in rows]

    async def deemed_due(self, now: datetime, limit: int) -> list[uuid.UUID]:
        rows = await self._db.fetch(
            "letters_deemed_due",
            """SELECT id FROM letters
               WHERE deemed_at IS NULL AND deposited_at IS NOT NULL
                 AND deemed_policy = 'after_days'
                 AND deposited_at + make_interval(days => deemed_days) <= $1
               ORDER BY deposited_at LIMIT $2""",
            now,
            limit,
        )
        return [r["id"] for r in rows]

    async def counts_by_state(self) -> list[tuple[str, str, int]]:
        rows = await self._db.fetch(
            "letters_counts_by_state",
            # The last 30 days only: a full count of years of letters every few seconds would
            # cost more than the gauge is worth.
            """SELECT agency_id::text, status, count(*) AS n FROM letters
               WHERE accepted_at > now() - interval '30 days' GROUP BY 1, 2""",
        )
        return [(r["agency_id"], r["status"], int(r["n"])) for r in rows]

    # -- idempotency ---------------------------------------------------------------------
    async def idempotent_get(
        self, agency_id: uuid.UUID, key: str
    ) -> tuple[bytes, uuid.UUID] | None:
        row = await self._db.fetchrow(
            "letter_idempotent_get",
            """SELECT request_hash, letter_id FROM letter_idempotency
               WHERE agency_id = $1 AND key = $2""",
            agency_id,
            key,
        )
        return (bytes(row["request_hash"]), row["letter_id"]) if row else None

    async def idempotent_claim(
        self, agency_id: uuid.UUID, key: str, request_hash: bytes, letter_id: uuid.UUID
    ) -> bool:
        done = await self._db.fetchval(
            "letter_idempotent_claim",
            """INSERT INTO letter_idempotency (agency_id, key, request_hash, letter_id)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true""",
            agency_id,
            key,
            request_hash,
            letter_id,
        )
        return bool(done)

    # -- evidence chain ------------------------------------------------------------------
    async def events(self, letter_id: uuid.UUID) -> list[LetterEvent]:
        rows = await self._db.fetch(
            "letter_events",
            """SELECT letter_id, seq, type, at, content_sha256, prev_sha256, event_sha256,
                      key_id, signature, detail::text AS detail
               FROM letter_events WHERE letter_id = $1 ORDER BY seq""",
            letter_id,
        )
        return [_event(r) for r in rows]

    async def append_event(self, e: LetterEvent) -> None:
        await self._db.execute(
            "letter_event_append",
            """INSERT INTO letter_events (letter_id, seq, type, at, content_sha256, prev_sha256,
                   event_sha256, key_id, signature, detail)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)""",
            e.letter_id,
            e.seq,
            e.type,
            e.at,
            e.content_sha256,
            e.prev_sha256,
            e.event_sha256,
            e.key_id,
            e.signature,
            orjson.dumps(e.detail).decode(),
        )

    # -- e-box events and replies --------------------------------------------------------
    async def event_seen(self, event_id: uuid.UUID, letter_id: uuid.UUID, type_: str) -> bool:
        """Record an e-box event id; False when it was already applied."""
        fresh = await self._db.fetchval(
            "ebox_event_seen",
            """INSERT INTO ebox_events_seen (event_id, letter_id, type) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING RETURNING true""",
            event_id,
            letter_id,
            type_,
        )
        return not fresh

    async def insert_reply(self, reply: LetterReply, attachments: list[StoredAttachment]) -> bool:
        text, key_id, sealed = reply.text, None, None
        if self.vault is not None:
            from gateway.vault import LETTER, letter_reply_aad

            key = await self.vault.key_for(reply.agency_id, LETTER, datetime.now(UTC))
            text, key_id = "", key.id
            sealed = key.seal(reply.text.encode(), letter_reply_aad(reply.id))
        inserted = await self._db.fetchval(
            "letter_reply_insert",
            """INSERT INTO letter_replies (id, agency_id, letter_id, reply_id, text, actor_kind,
                   content_sha256, replied_at, data_key, text_sealed)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (letter_id, reply_id) DO NOTHING RETURNING true""",
            reply.id,
            reply.agency_id,
            reply.letter_id,
            reply.reply_id,
            text,
            reply.actor_kind,
            reply.content_sha256,
            reply.replied_at,
            key_id,
            sealed,
        )
        if inserted and attachments:
            await self._db.executemany(
                "letter_reply_attachments_insert",
                """INSERT INTO letter_reply_attachments
                       (reply_id, idx, name, content_type, size, sha256, data, data_key)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                await self._seal_attachments(reply.agency_id, reply.id, attachments),
            )
        return bool(inserted)

    async def _letter_replies(self, rows: list[Any]) -> list[LetterReply]:
        from gateway.vault import letter_reply_aad

        if self.vault is not None:
            await self.vault.load({r["data_key"] for r in rows})
        out = []
        for r in rows:
            d = dict(r)
            key, sealed = d.pop("data_key"), d.pop("text_sealed")
            if key is not None:
                plain = (
                    None
                    if self.vault is None
                    else self.vault.open(key, sealed, letter_reply_aad(d["id"]))
                )
                d["text"] = "" if plain is None else plain.decode()
            out.append(LetterReply(**d))
        return out

    async def replies(self, agency_id: uuid.UUID, after: int, limit: int) -> list[LetterReply]:
        rows = await self._db.fetch(
            "letter_replies_list",
            """SELECT id, seq, agency_id, letter_id, reply_id, text, actor_kind, content_sha256,
                      replied_at, received_at, data_key, text_sealed
               FROM letter_replies WHERE agency_id = $1 AND seq > $2 ORDER BY seq LIMIT $3""",
            agency_id,
            after,
            limit,
        )
        return await self._letter_replies(list(rows))

    async def reply(self, reply_id: uuid.UUID) -> LetterReply | None:
        row = await self._db.fetchrow(
            "letter_reply_get",
            """SELECT id, seq, agency_id, letter_id, reply_id, text, actor_kind, content_sha256,
                      replied_at, received_at, data_key, text_sealed
               FROM letter_replies WHERE id = $1""",
            reply_id,
        )
        return (await self._letter_replies([row]))[0] if row else None

    async def reply_attachments(
        self, reply_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, list[StoredAttachment]]:
        rows = await self._db.fetch(
            "letter_reply_attachments",
            """SELECT reply_id, idx, name, content_type, size, sha256, data, data_key
               FROM letter_reply_attachments WHERE reply_id = ANY($1::uuid[])
               ORDER BY reply_id, idx""",
            reply_ids,
        )
        grouped: dict[uuid.UUID, list[Any]] = {}
        for r in rows:
            grouped.setdefault(r["reply_id"], []).append(r)
        out: dict[uuid.UUID, list[StoredAttachment]] = {}
        for rid, group in grouped.items():
            opened = await self._open_attachments(
                rid, [{k: v for k, v in dict(r).items() if k != "reply_id"} for r in group]
            )
            out[rid] = opened
        return out

    # -- reply deliveries ----------------------------------------------------------------
    async def enqueue_reply_delivery(
        self, reply_id: uuid.UUID, way: str, target: str, give_up_at: datetime
    ) -> None:
        await self._db.execute(
            "letter_reply_delivery_enqueue",
            """INSERT INTO letter_reply_deliveries (reply_id, way, target, give_up_at)
               VALUES ($1, $2, $3, $4)""",
            reply_id,
            way,
            target,
            give_up_at,
        )

    async def claim_reply_deliveries(
        self, limit: int, lease_seconds: float
    ) -> list[DueReplyDelivery]:
        rows = await self._db.fetch(
            "letter_reply_deliveries_claim",
            """WITH c AS (
                   SELECT id FROM letter_reply_deliveries
                   WHERE state = 'pending' AND next_attempt_at <= now() AND leased_until < now()
                   ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
               UPDATE letter_reply_deliveries d
               SET leased_until = now() + make_interval(secs => $2)
               FROM c WHERE d.id = c.id
               RETURNING d.id, d.reply_id, d.way, d.target, d.attempts, d.give_up_at""",
            limit,
            lease_seconds,
        )
        return [DueReplyDelivery(**dict(r)) for r in rows]

    async def finish_reply_delivery(self, delivery_id: int, state: str, error: str) -> None:
        await self._db.execute(
            "letter_reply_delivery_finish",
            """UPDATE letter_reply_deliveries SET state = $2, last_error = $3,
                   attempts = attempts + 1, done_at = now() WHERE id = $1""",
            delivery_id,
            state,
            error,
        )

    async def retry_reply_delivery(self, delivery_id: int, delay: float, error: str) -> None:
        await self._db.execute(
            "letter_reply_delivery_retry",
            """UPDATE letter_reply_deliveries SET attempts = attempts + 1, last_error = $3,
                   leased_until = '-infinity', next_attempt_at = now() + make_interval(secs => $2)
               WHERE id = $1""",
            delivery_id,
            delay,
            error,
        )

    async def reply_deliveries(self, reply_id: uuid.UUID) -> list[tuple[str, str, int, str]]:
        rows = await self._db.fetch(
            "letter_reply_deliveries_of",
            """SELECT way, state, attempts, last_error FROM letter_reply_deliveries
               WHERE reply_id = $1 ORDER BY id""",
            reply_id,
        )
        return [(r["way"], r["state"], r["attempts"], r["last_error"]) for r in rows]

    # -- settings and SMTP credentials ---------------------------------------------------
    async def settings(self, agency_id: uuid.UUID) -> LetterSettings | None:
        row = await self._db.fetchrow(
            "letter_settings_get",
            """SELECT agency_id, deemed_policy, deemed_days, from_addresses, office_mailbox,
                      reply_webhook_url FROM letter_settings WHERE agency_id = $1""",
            agency_id,
        )
        if row is None:
            return None
        return LetterSettings(**{**dict(row), "from_addresses": tuple(row["from_addresses"])})

    async def put_settings(self, s: LetterSettings) -> None:
        await self._db.execute(
            "letter_settings_put",
            """INSERT INTO letter_settings (agency_id, deemed_policy, deemed_days, from_addresses,
                   office_mailbox, reply_webhook_url)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (agency_id) DO UPDATE SET deemed_policy = $2, deemed_days = $3,
                   from_addresses = $4, office_mailbox = $5, reply_webhook_url = $6,
                   updated_at = now()""",
            s.agency_id,
            s.deemed_policy,
            s.deemed_days,
            list(s.from_addresses),
            s.office_mailbox,
            s.reply_webhook_url,
        )

    async def add_smtp_credential(self, username: str, agency_id: uuid.UUID, hashed: str) -> bool:
        done = await self._db.fetchval(
            "letter_smtp_credential_add",
            """INSERT INTO letter_smtp_credentials (username, agency_id, password_hash)
               VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING true""",
            username,
            agency_id,
            hashed,
        )
        return bool(done)

    async def smtp_credential(self, username: str) -> SmtpCredential | None:
        row = await self._db.fetchrow(
            "letter_smtp_credential_get",
            """SELECT username, agency_id, password_hash, created_at, revoked_at
               FROM letter_smtp_credentials WHERE username = $1""",
            username,
        )
        return SmtpCredential(**dict(row)) if row else None

    async def revoke_smtp_credential(self, agency_id: uuid.UUID, username: str) -> bool:
        done = await self._db.fetchval(
            "letter_smtp_credential_revoke",
            """UPDATE letter_smtp_credentials SET revoked_at = now()
               WHERE username = $1 AND agency_id = $2 AND revoked_at IS NULL RETURNING true""",
            username,
            agency_id,
        )
        return bool(done)

    # -- one-time codes ------------------------------------------------------------------
    async def otp_count_and_record(self, subject_hash: bytes, limit: int) -> bool:
        """Record one code for this subject if fewer than ``limit`` went out in the last hour.
        Serialised per subject by an advisory lock, so two concurrent requests cannot both
        slip under the limit."""
        await self._db.execute(
            "ebox_otp_lock",
            "SELECT pg_advisory_xact_lock(hashtextextended(encode($1::bytea, 'hex'), 5))",
            subject_hash,
        )
        n = await self._db.fetchval(
            "ebox_otp_count",
            """SELECT count(*) FROM ebox_otp_sent
               WHERE subject_hash = $1 AND sent_at > now() - interval '1 hour'""",
            subject_hash,
        )
        if int(n) >= limit:
            return False
        await self._db.execute(
            "ebox_otp_record", "INSERT INTO ebox_otp_sent (subject_hash) VALUES ($1)", subject_hash
        )
        return True
