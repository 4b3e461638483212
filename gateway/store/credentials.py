"""API keys, seen JWT ids and admin tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from gateway.store.db import Executor, Record
from gateway.store.models import AdminToken, ApiKey

_KEY_COLUMNS = """key_id, agency_id, name, key_type, secret_hash, secret_sealed, created_at,
    revoked_at, last_used_at"""
_ADMIN_COLUMNS = "id, name, role, created_at, revoked_at, last_used_at"


def _key(row: Record) -> ApiKey:
    data = dict(row)
    data["secret_hash"] = bytes(data["secret_hash"])
    data["secret_sealed"] = bytes(data["secret_sealed"])
    return ApiKey(**data)


class CredentialStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def insert_key(
        self,
        *,
        key_id: str,
        agency_id: uuid.UUID,
        name: str,
        key_type: str,
        secret_hash: bytes,
        secret_sealed: bytes,
    ) -> ApiKey:
        row = await self._db.fetchrow(
            "api_key_insert",
            f"""INSERT INTO api_keys (key_id, agency_id, name, key_type, secret_hash, secret_sealed)
                VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_KEY_COLUMNS}""",
            key_id,
            agency_id,
            name,
            key_type,
            secret_hash,
            secret_sealed,
        )
        assert row is not None
        return _key(row)

    async def get_key(self, key_id: str) -> ApiKey | None:
        row = await self._db.fetchrow(
            "api_key_get", f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = $1", key_id
        )
        return _key(row) if row else None

    async def list_keys(self, agency_id: uuid.UUID) -> list[ApiKey]:
        rows = await self._db.fetch(
            "api_key_list",
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE agency_id = $1 ORDER BY created_at",
            agency_id,
        )
        return [_key(r) for r in rows]

    async def revoke_key(self, agency_id: uuid.UUID, key_id: str) -> ApiKey | None:
        """Revoke (idempotent: an already revoked key keeps its first revocation time)."""
        row = await self._db.fetchrow(
            "api_key_revoke",
            f"""UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
                WHERE key_id = $1 AND agency_id = $2 RETURNING {_KEY_COLUMNS}""",
            key_id,
            agency_id,
        )
        return _key(row) if row else None

    async def touch_key(self, key_id: str, at: datetime) -> None:
        await self._db.execute(
            "api_key_touch",
            """UPDATE api_keys SET last_used_at = $2
               WHERE key_id = $1 AND (last_used_at IS NULL OR last_used_at < $2)""",
            key_id,
            at,
        )

    async def remember_jti(self, key_id: str, jti: str, expires_at: datetime) -> bool:
        """Record a token id; False when it was already seen (a replay)."""
        inserted = await self._db.fetchval(
            "jwt_replay_insert",
            """INSERT INTO jwt_replay (key_id, jti, expires_at) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING RETURNING true""",
            key_id,
            jti,
            expires_at,
        )
        return bool(inserted)

    async def remember_jtis(
        self, key_ids: list[str], jtis: list[str], expires: list[datetime]
    ) -> set[tuple[str, str]]:
        """Record many token ids at once; returns those that were new (the rest are replays)."""
        rows = await self._db.fetch(
            "jwt_replay_insert_many",
            """INSERT INTO jwt_replay (key_id, jti, expires_at)
               SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
               ON CONFLICT DO NOTHING RETURNING key_id, jti""",
            key_ids,
            jtis,
            expires,
        )
        return {(r["key_id"], r["jti"]) for r in rows}

    async def live_keys(self, key_ids: list[str]) -> set[str]:
        """Keys that are not revoked and whose agency is active, now."""
        rows = await self._db.fetch(
            "api_keys_live",
            """SELECT k.key_id FROM api_keys k JOIN agencies a ON a.id = k.agency_id
               WHERE k.key_id = ANY($1::text[]) AND k.revoked_at IS NULL
                 AND a.status = 'active'""",
            key_ids,
        )
        return {r["key_id"] for r in rows}

    async def purge_jtis(self, now: datetime) -> int:
        status = await self._db.execute(
            "jwt_replay_purge", "DELETE FROM jwt_replay WHERE expires_at < $1", now
        )
        return int(status.split()[-1])

    async def insert_admin_token(
        self, *, token_id: uuid.UUID, name: str, role: str, token_hash: bytes
    ) -> AdminToken:
        row = await self._db.fetchrow(
            "admin_token_insert",
            f"""INSERT INTO admin_tokens (id, name, role, token_hash) VALUES ($1, $2, $3, $4)
                RETURNING {_ADMIN_COLUMNS}""",
            token_id,
            name,
            role,
            token_hash,
        )
        assert row is not None
        return AdminToken(**dict(row))

    async def admin_token_by_hash(self, token_hash: bytes) -> AdminToken | None:
        row = await self._db.fetchrow(
            "admin_token_by_hash",
            f"SELECT {_ADMIN_COLUMNS} FROM admin_tokens WHERE token_hash = $1",
            token_hash,
        )
        return AdminToken(**dict(row)) if row else None

    async def list_admin_tokens(self) -> list[AdminToken]:
        rows = await self._db.fetch(
            "admin_token_list", f"SELECT {_ADMIN_COLUMNS} FROM admin_tokens ORDER BY created_at"
        )
        return [AdminToken(**dict(r)) for r in rows]

    async def revoke_admin_token(self, token_id: uuid.UUID) -> AdminToken | None:
        row = await self._db.fetchrow(
            "admin_token_revoke",
            f"""UPDATE admin_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
                RETURNING {_ADMIN_COLUMNS}""",
            token_id,
        )
        return AdminToken(**dict(row)) if row else None

    async def touch_admin_token(self, token_id: uuid.UUID, at: datetime) -> None:
        await self._db.execute(
            "admin_token_touch",
            """UPDATE admin_tokens SET last_used_at = $2
               WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)""",
            token_id,
            at,
        )

    async def count_active_admin_tokens(self) -> int:
        n = await self._db.fetchval(
            "admin_token_count_active",
            "SELECT count(*) FROM admin_tokens WHERE revoked_at IS NULL AND role = 'admin'",
        )
        return int(n)
