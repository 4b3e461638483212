"""One-time login codes (hashed) and web sessions (only the hash of the cookie is kept)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from adapters.kartpooshe.ebox.models import LoginCode, Session
from adapters.kartpooshe.ebox.store.db import Q


class Logins:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._q = Q(pool)

    async def last_code_at(self, national_code: str) -> datetime | None:
        at: datetime | None = await self._q.fetchval(
            "login_code_last",
            "SELECT max(created_at) FROM login_codes WHERE national_code = $1",
            national_code,
        )
        return at

    async def add_code(
        self,
        login_id: uuid.UUID,
        national_code: str,
        salt: bytes,
        code_hash: bytes,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        await self._q.execute(
            "login_code_insert",
            """INSERT INTO login_codes (login_id, national_code, salt, code_hash, created_at,
                   expires_at) VALUES ($1, $2, $3, $4, $5, $6)""",
            login_id,
            national_code,
            salt,
            code_hash,
            now,
            expires_at,
        )

    async def drop_code(self, login_id: uuid.UUID) -> None:
        await self._q.execute(
            "login_code_drop", "DELETE FROM login_codes WHERE login_id = $1", login_id
        )

    async def take_attempt(self, login_id: uuid.UUID) -> LoginCode | None:
        """Count one try against the code and return it (with the count before this try)."""
        r = await self._q.fetchrow(
            "login_code_attempt",
            """UPDATE login_codes SET attempts = attempts + 1 WHERE login_id = $1
               RETURNING login_id, national_code, salt, code_hash, expires_at, attempts - 1 AS
               attempts, used_at IS NOT NULL AS used""",
            login_id,
        )
        if r is None:
            return None
        return LoginCode(
            r["login_id"],
            r["national_code"],
            bytes(r["salt"]),
            bytes(r["code_hash"]),
            r["expires_at"],
            r["attempts"],
            r["used"],
        )

    async def use_code(self, login_id: uuid.UUID) -> bool:
        """Mark a code used, exactly once (two tabs submitting the right code get one session)."""
        done = await self._q.fetchval(
            "login_code_use",
            """UPDATE login_codes SET used_at = now() WHERE login_id = $1 AND used_at IS NULL
               RETURNING login_id""",
            login_id,
        )
        return done is not None

    async def add_session(
        self, token_hash: bytes, national_code: str, csrf_token: str, expires_at: datetime
    ) -> None:
        await self._q.execute(
            "session_insert",
            """INSERT INTO sessions (token_hash, national_code, csrf_token, expires_at)
               VALUES ($1, $2, $3, $4)""",
            token_hash,
            national_code,
            csrf_token,
            expires_at,
        )

    async def session(self, token_hash: bytes, now: datetime) -> Session | None:
        r = await self._q.fetchrow(
            "session_get",
            """SELECT national_code, csrf_token, expires_at FROM sessions
               WHERE token_hash = $1 AND expires_at > $2""",
            token_hash,
            now,
        )
        return None if r is None else Session(r["national_code"], r["csrf_token"], r["expires_at"])

    async def drop_session(self, token_hash: bytes) -> None:
        await self._q.execute(
            "session_drop", "DELETE FROM sessions WHERE token_hash = $1", token_hash
        )

    async def purge(self, now: datetime) -> None:
        """Expired sessions and codes are deleted: they are no longer needed for anything."""
        await self._q.execute("session_purge", "DELETE FROM sessions WHERE expires_at <= $1", now)
        await self._q.execute(
            "login_code_purge",
            "DELETE FROM login_codes WHERE expires_at <= $1 - interval '1 hour'",
            now,
        )
