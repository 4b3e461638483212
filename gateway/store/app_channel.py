"""The app and portal channel (migration 0011): providers and their keys, citizens' app
registrations, and the app deliveries that hold a message's SMS until the app confirms.

Message bodies are never copied here: readers take them through ``MessageStore.get`` so that
whatever that store does to bodies (e.g. encryption at rest) holds for this channel too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from gateway.store.db import Executor, Record


@dataclass(frozen=True, slots=True)
class AppProvider:
    id: uuid.UUID
    name: str
    push_url: str
    push_secret_sealed: bytes
    scopes: tuple[str, ...]
    agencies: tuple[uuid.UUID, ...]
    status: str
    created_at: datetime
    updated_at: datetime

    @property
    def active(self) -> bool:
        return self.status == "active"

    def serves(self, agency_id: uuid.UUID) -> bool:
        return "notices" in self.scopes and (not self.agencies or agency_id in self.agencies)


@dataclass(frozen=True, slots=True)
class ProviderKey:
    key_id: str
    provider_id: uuid.UUID
    name: str
    secret_hash: bytes
    secret_sealed: bytes
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class Registration:
    provider_id: uuid.UUID
    citizen_ref: str
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A pending app delivery claimed by a push worker, with what the push needs."""

    message_id: uuid.UUID
    agency_id: uuid.UUID
    provider_id: uuid.UUID
    provider_name: str
    provider_active: bool
    push_url: str
    push_secret_sealed: bytes
    fallback: str
    attempts: int
    deadline: datetime
    overdue: bool
    citizen_ref: str | None  # None: the citizen signed out since
    agency_name_fa: str
    agency_name_en: str


@dataclass(frozen=True, slots=True)
class Notice:
    """One row of a citizen's app inbox (the message itself is read separately)."""

    seq: int
    message_id: uuid.UUID
    agency_id: uuid.UUID
    agency_name_fa: str
    agency_name_en: str
    state: str
    delivered_at: datetime | None
    read_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    message_id: uuid.UUID
    agency_id: uuid.UUID
    provider_id: uuid.UUID
    citizen_key: bytes
    state: str
    fallback: str
    read_at: datetime | None
    due: bool  # its first push is due (a scheduled notice is not the app's before send_at)


_PROVIDER = """id, name, push_url, push_secret_sealed, scopes, agencies, status, created_at,
    updated_at"""
_KEY = """key_id, provider_id, name, secret_hash, secret_sealed, created_at, revoked_at,
    last_used_at"""


def _provider(r: Record) -> AppProvider:
    d = dict(r)
    d["push_secret_sealed"] = bytes(d["push_secret_sealed"])
    d["scopes"] = tuple(d["scopes"])
    d["agencies"] = tuple(d["agencies"])
    return AppProvider(**d)


def _key(r: Record) -> ProviderKey:
    d = dict(r)
    d["secret_hash"] = bytes(d["secret_hash"])
    d["secret_sealed"] = bytes(d["secret_sealed"])
    return ProviderKey(**d)


class AppChannelStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    # -- providers and keys --------------------------------------------------------------------
    async def insert_provider(
        self,
        *,
        provider_id: uuid.UUID,
        name: str,
        push_url: str,
        push_secret_sealed: bytes,
        scopes: list[str],
        agencies: list[uuid.UUID],
    ) -> AppProvider | None:
        """None when the name is taken."""
        row = await self._db.fetchrow(
            "app_provider_insert",
            f"""INSERT INTO app_providers (id, name, push_url, push_secret_sealed, scopes,
                    agencies)
                VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING
                RETURNING {_PROVIDER}""",
            provider_id,
            name,
            push_url,
            push_secret_sealed,
            scopes,
            agencies,
        )
        return _provider(row) if row else None

    async def get_provider(self, provider_id: uuid.UUID) -> AppProvider | None:
        row = await self._db.fetchrow(
            "app_provider_get", f"SELECT {_PROVIDER} FROM app_providers WHERE id = $1", provider_id
        )
        return _provider(row) if row else None

    async def list_providers(self) -> list[AppProvider]:
        rows = await self._db.fetch(
            "app_provider_list", f"SELECT {_PROVIDER} FROM app_providers ORDER BY name"
        )
        return [_provider(r) for r in rows]

    async def update_provider(
        self,
        provider_id: uuid.UUID,
        *,
        push_url: str | None,
        scopes: list[str] | None,
        agencies: list[uuid.UUID] | None,
        status: str | None,
    ) -> AppProvider | None:
        row = await self._db.fetchrow(
            "app_provider_update",
            f"""UPDATE app_providers SET push_url = coalesce($2, push_url),
                    scopes = coalesce($3, scopes), agencies = coalesce($4, agencies),
                    status = coalesce($5, status), updated_at = now()
                WHERE id = $1 RETURNING {_PROVIDER}""",
            provider_id,
            push_url,
            scopes,
            agencies,
            status,
        )
        return _provider(row) if row else None

    async def insert_key(
        self,
        *,
        key_id: str,
        provider_id: uuid.UUID,
        name: str,
        secret_hash: bytes,
        secret_sealed: bytes,
    ) -> ProviderKey:
        row = await self._db.fetchrow(
            "app_key_insert",
            f"""INSERT INTO app_provider_keys (key_id, provider_id, name, secret_hash,
                    secret_sealed)
                VALUES ($1, $2, $3, $4, $5) RETURNING {_KEY}""",
            key_id,
            provider_id,
            name,
            secret_hash,
            secret_sealed,
        )
        assert row is not None
        return _key(row)

    async def get_key(self, key_id: str) -> ProviderKey | None:
        row = await self._db.fetchrow(
            "app_key_get", f"SELECT {_KEY} FROM app_provider_keys WHERE key_id = $1", key_id
        )
        return _key(row) if row else None

    async def list_keys(self, provider_id: uuid.UUID) -> list[ProviderKey]:
        rows = await self._db.fetch(
            "app_key_list",
            f"SELECT {_KEY} FROM app_provider_keys WHERE provider_id = $1 ORDER BY created_at",
            provider_id,
        )
        return [_key(r) for r in rows]

    async def revoke_key(self, provider_id: uuid.UUID, key_id: str) -> ProviderKey | None:
        row = await self._db.fetchrow(
            "app_key_revoke",
            f"""UPDATE app_provider_keys SET revoked_at = coalesce(revoked_at, now())
                WHERE key_id = $1 AND provider_id = $2 RETURNING {_KEY}""",
            key_id,
            provider_id,
        )
        return _key(row) if row else None

    async def touch_key(self, key_id: str, at: datetime) -> None:
        await self._db.execute(
            "app_key_touch",
            """UPDATE app_provider_keys SET last_used_at = $2
               WHERE key_id = $1 AND (last_used_at IS NULL OR last_used_at < $2)""",
            key_id,
            at,
        )

    # -- registrations -------------------------------------------------------------------------
    async def register(self, citizen_key: bytes, provider_id: uuid.UUID, citizen_ref: str) -> None:
        await self._db.execute(
            "app_register",
            """INSERT INTO app_registrations (citizen_key, provider_id, citizen_ref)
               VALUES ($1, $2, $3)
               ON CONFLICT (citizen_key, provider_id)
               DO UPDATE SET citizen_ref = EXCLUDED.citizen_ref, registered_at = now()""",
            citizen_key,
            provider_id,
            citizen_ref,
        )

    async def unregister(self, citizen_key: bytes, provider_id: uuid.UUID) -> bool:
        status = await self._db.execute(
            "app_unregister",
            "DELETE FROM app_registrations WHERE citizen_key = $1 AND provider_id = $2",
            citizen_key,
            provider_id,
        )
        return status.split()[-1] != "0"

    async def registration(self, citizen_key: bytes, provider_id: uuid.UUID) -> Registration | None:
        row = await self._db.fetchrow(
            "app_registration_get",
            """SELECT provider_id, citizen_ref, registered_at FROM app_registrations
               WHERE citizen_key = $1 AND provider_id = $2""",
            citizen_key,
            provider_id,
        )
        return Registration(**dict(row)) if row else None

    async def route(self, citizen_key: bytes, agency_id: uuid.UUID) -> AppProvider | None:
        """The provider to push to: of the active providers allowed to carry this agency's
        notices on which the citizen is signed in, the most recent sign-in."""
        row = await self._db.fetchrow(
            "app_route",
            f"""SELECT {", ".join("p." + c.strip() for c in _PROVIDER.split(","))}
                FROM app_registrations r JOIN app_providers p ON p.id = r.provider_id
                WHERE r.citizen_key = $1 AND p.status = 'active'
                  AND 'notices' = ANY (p.scopes)
                  AND (cardinality(p.agencies) = 0 OR $2 = ANY (p.agencies))
                ORDER BY r.registered_at DESC LIMIT 1""",
            citizen_key,
            agency_id,
        )
        return _provider(row) if row else None

    # -- deliveries ----------------------------------------------------------------------------
    async def hold(
        self,
        *,
        message_id: uuid.UUID,
        agency_id: uuid.UUID,
        provider_id: uuid.UUID,
        citizen_key: bytes,
        fallback: str,
        first_attempt: datetime,
        deadline: datetime,
    ) -> None:
        """Route a just-inserted message to the app: its SMS queue row waits (vt = infinity is
        never due; a cancel still finds and deletes it) and the push is due at first_attempt."""
        await self._db.execute(
            "app_hold",
            """WITH q AS (UPDATE queue SET vt = 'infinity' WHERE message_id = $1)
               INSERT INTO app_deliveries (message_id, agency_id, provider_id, citizen_key,
                   fallback, next_attempt_at, deadline)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            message_id,
            agency_id,
            provider_id,
            citizen_key,
            fallback,
            first_attempt,
            deadline,
        )

    async def hold_batch(
        self,
        *,
        batch_id: uuid.UUID,
        agency_id: uuid.UUID,
        msisdns: list[str],
        citizen_keys: list[bytes],
        fallback: str,
        confirm_seconds: float,
    ) -> int:
        """A batch's messages to citizens signed in on an app that may carry the agency's
        notices, routed there (as ``hold``, in the batch's transaction). Each push is due at
        its SMS's paced virtual time (the agency's TPS), and its deadline runs from then, so a
        large batch neither floods a provider nor times out waiting for its own turn."""
        status = await self._db.execute(
            "app_hold_batch",
            """WITH t AS (SELECT * FROM unnest($3::text[], $4::bytea[]) AS t(msisdn, ckey)),
               r AS (
                   SELECT DISTINCT ON (t.msisdn) t.msisdn, t.ckey, p.id AS provider_id
                   FROM t JOIN app_registrations r ON r.citizen_key = t.ckey
                          JOIN app_providers p ON p.id = r.provider_id
                   WHERE p.status = 'active' AND 'notices' = ANY (p.scopes)
                     AND (cardinality(p.agencies) = 0 OR $2 = ANY (p.agencies))
                   ORDER BY t.msisdn, r.registered_at DESC),
               m AS (
                   SELECT m.id, r.ckey, r.provider_id, q.vt
                   FROM messages m JOIN r ON r.msisdn = m.recipient
                                   JOIN queue q ON q.message_id = m.id
                   WHERE m.batch_id = $1),
               h AS (UPDATE queue SET vt = 'infinity' FROM m WHERE queue.message_id = m.id)
               INSERT INTO app_deliveries (message_id, agency_id, provider_id, citizen_key,
                   fallback, next_attempt_at, deadline)
               SELECT m.id, $2, m.provider_id, m.ckey, $5, m.vt,
                      m.vt + make_interval(secs => $6)
               FROM m""",
            batch_id,
            agency_id,
            msisdns,
            citizen_keys,
            fallback,
            confirm_seconds,
        )
        return int(status.split()[-1])

    async def add_event(self, message_id: uuid.UUID, status: str, detail: str) -> None:
        """A channel event in the message's history (detail is JSON text)."""
        await self._db.execute(
            "app_message_event",
            "INSERT INTO message_events (message_id, status, detail) VALUES ($1, $2, $3::jsonb)",
            message_id,
            status,
            detail,
        )

    async def claim(self, limit: int, lease_seconds: float) -> list[DueDelivery]:
        rows = await self._db.fetch(
            "app_claim",
            """WITH c AS (
                   SELECT message_id FROM app_deliveries
                   WHERE state = 'pending' AND next_attempt_at <= now()
                     AND leased_until < now()
                   ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED),
               u AS (
                   UPDATE app_deliveries d
                   SET leased_until = now() + make_interval(secs => $2)
                   FROM c WHERE d.message_id = c.message_id
                   RETURNING d.message_id, d.agency_id, d.provider_id, d.citizen_key,
                             d.fallback, d.attempts, d.deadline)
               SELECT u.message_id, u.agency_id, u.provider_id, p.name AS provider_name,
                      p.status = 'active' AND 'notices' = ANY (p.scopes)
                          AND (cardinality(p.agencies) = 0 OR u.agency_id = ANY (p.agencies))
                          AS provider_active,
                      p.push_url, p.push_secret_sealed, u.fallback, u.attempts, u.deadline,
                      u.deadline <= now() AS overdue, r.citizen_ref,
                      a.name_fa AS agency_name_fa, a.name_en AS agency_name_en
               FROM u JOIN app_providers p ON p.id = u.provider_id
                      JOIN agencies a ON a.id = u.agency_id
                      LEFT JOIN app_registrations r
                          ON r.citizen_key = u.citizen_key AND r.provider_id = u.provider_id""",
            limit,
            lease_seconds,
        )
        return [
            DueDelivery(**{**dict(r), "push_secret_sealed": bytes(r["push_secret_sealed"])})
            for r in rows
        ]

    async def retry(self, message_id: uuid.UUID, at: datetime, error: str) -> None:
        await self._db.execute(
            "app_retry",
            """UPDATE app_deliveries SET attempts = attempts + 1, next_attempt_at = $2,
                   last_error = $3, leased_until = '-infinity'
               WHERE message_id = $1 AND state = 'pending'""",
            message_id,
            at,
            error,
        )

    async def pushed(self, message_id: uuid.UUID) -> None:
        """The provider took the push (202) and will confirm delivery itself: no more
        attempts; given up at the deadline unless confirmed before."""
        await self._db.execute(
            "app_pushed",
            """UPDATE app_deliveries SET attempts = attempts + 1, next_attempt_at = deadline,
                   last_error = '', leased_until = '-infinity'
               WHERE message_id = $1 AND state = 'pending'""",
            message_id,
        )

    async def confirm(self, message_id: uuid.UUID, detail: str, *, push: bool) -> bool:
        """The app has the notice: pending → delivered, the held SMS dropped, the message
        delivered. False when the delivery was no longer pending (fallen back, cancelled)."""
        row = await self._db.fetchval(
            "app_confirm",
            """WITH d AS (
                   UPDATE app_deliveries SET state = 'delivered', delivered_at = now(),
                       attempts = attempts + (CASE WHEN $3 THEN 1 ELSE 0 END),
                       leased_until = '-infinity'
                   WHERE message_id = $1 AND state = 'pending' RETURNING message_id),
               q AS (DELETE FROM queue WHERE message_id IN (SELECT message_id FROM d)),
               m AS (
                   UPDATE messages SET status = 'delivered', error_code = '', updated_at = now(),
                       final_at = now()
                   WHERE id IN (SELECT message_id FROM d) AND status IN ('queued', 'scheduled')
                   RETURNING id),
               e AS (INSERT INTO message_events (message_id, status, detail)
                     SELECT id, 'delivered', $2::jsonb FROM m)
               SELECT count(*) FROM d""",
            message_id,
            detail,
            push,
        )
        return bool(row)

    async def give_up(self, message_id: uuid.UUID, reason: str) -> str | None:
        """Pending → fallen_back (the SMS fallback becomes due now) or, with no next channel,
        failed. Returns the fallback ('sms' or '') when this call made the transition."""
        fallback: str | None = await self._db.fetchval(
            "app_give_up",
            """WITH d AS (
                   UPDATE app_deliveries SET
                       state = CASE WHEN fallback = 'sms' THEN 'fallen_back' ELSE 'failed' END,
                       last_error = $2, leased_until = '-infinity'
                   WHERE message_id = $1 AND state = 'pending' RETURNING message_id, fallback),
               q AS (UPDATE queue SET vt = now()
                     WHERE message_id IN (SELECT message_id FROM d WHERE fallback = 'sms'))
               SELECT fallback FROM d""",
            message_id,
            reason,
        )
        return fallback

    async def fail_message(self, message_id: uuid.UUID, error: str, detail: str) -> bool:
        """An app-only message the app did not take: undeliverable, its queue row gone."""
        row = await self._db.fetchval(
            "app_fail_message",
            """WITH q AS (DELETE FROM queue WHERE message_id = $1),
               m AS (
                   UPDATE messages SET status = 'undeliverable', error_code = $2,
                       updated_at = now(), final_at = now()
                   WHERE id = $1 AND status IN ('queued', 'scheduled') RETURNING id),
               e AS (INSERT INTO message_events (message_id, status, detail)
                     SELECT id, 'undeliverable', $3::jsonb FROM m)
               SELECT count(*) FROM m""",
            message_id,
            error,
            detail,
        )
        return bool(row)

    async def cancel(self, message_id: uuid.UUID) -> None:
        await self._db.execute(
            "app_cancel",
            """UPDATE app_deliveries SET state = 'cancelled', leased_until = '-infinity'
               WHERE message_id = $1 AND state = 'pending'""",
            message_id,
        )

    async def delivery(self, message_id: uuid.UUID) -> DeliveryRow | None:
        row = await self._db.fetchrow(
            "app_delivery_get",
            """SELECT message_id, agency_id, provider_id, citizen_key, state, fallback, read_at,
                      state <> 'pending' OR attempts > 0 OR next_attempt_at <= now() AS due
               FROM app_deliveries WHERE message_id = $1""",
            message_id,
        )
        if row is None:
            return None
        return DeliveryRow(**{**dict(row), "citizen_key": bytes(row["citizen_key"])})

    async def mark_read(self, message_id: uuid.UUID) -> datetime | None:
        """Set read_at once; returns it only when this call set it."""
        at: datetime | None = await self._db.fetchval(
            "app_mark_read",
            """UPDATE app_deliveries SET read_at = now()
               WHERE message_id = $1 AND read_at IS NULL AND state = 'delivered'
               RETURNING read_at""",
            message_id,
        )
        return at

    async def inbox(
        self, provider_id: uuid.UUID, citizen_key: bytes, after: int, limit: int
    ) -> list[Notice]:
        """The citizen's notices routed to this provider, oldest first after the cursor."""
        rows = await self._db.fetch(
            "app_inbox",
            """SELECT d.seq, d.message_id, d.agency_id, a.name_fa AS agency_name_fa,
                      a.name_en AS agency_name_en, d.state, d.delivered_at, d.read_at,
                      d.created_at
               FROM app_deliveries d JOIN agencies a ON a.id = d.agency_id
               WHERE d.provider_id = $1 AND d.citizen_key = $2 AND d.seq > $3
                 AND (d.state = 'delivered'
                      OR (d.state = 'pending'
                          AND (d.attempts > 0 OR d.next_attempt_at <= now())))
               ORDER BY d.seq LIMIT $4""",
            provider_id,
            citizen_key,
            after,
            limit,
        )
        return [Notice(**dict(r)) for r in rows]
