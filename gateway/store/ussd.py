"""USSD rows: agency menu definitions and the session state shared by every gateway node."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from gateway.store.db import Executor, Record


@dataclass(frozen=True, slots=True)
class StoredMenu:
    agency_id: uuid.UUID
    definition: Any
    version: int
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SessionKey:
    operator: str
    msisdn: str
    session_id: str


@dataclass(frozen=True, slots=True)
class SessionRow:
    key: SessionKey
    agency_id: uuid.UUID | None
    menu_version: int
    screen: str
    page: int
    inputs: dict[str, str]
    history: tuple[str, ...]
    reply: str
    ended: bool
    rev: int
    trail: tuple[str, ...]
    started_at: datetime
    updated_at: datetime


_MENU_COLUMNS = "agency_id, definition, version, updated_by, updated_at"
_SESSION_COLUMNS = """operator, msisdn, session_id, agency_id, menu_version, screen, page, inputs,
    history, reply, ended, rev, started_at, updated_at, trail"""


def _menu(row: Record) -> StoredMenu:
    d = dict(row)
    d["definition"] = orjson.loads(d["definition"])
    return StoredMenu(**d)


def _session(row: Record) -> SessionRow:
    d = dict(row)
    key = SessionKey(d.pop("operator"), d.pop("msisdn"), d.pop("session_id"))
    d["inputs"] = orjson.loads(d["inputs"])
    d["history"] = tuple(d["history"])
    d["trail"] = tuple(d["trail"])
    return SessionRow(key=key, **d)


class UssdStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    # -- menus --------------------------------------------------------------------------
    async def put_menu(self, agency_id: uuid.UUID, definition: Any, updated_by: str) -> StoredMenu:
        row = await self._db.fetchrow(
            "ussd_menu_put",
            f"""INSERT INTO ussd_menus (agency_id, definition, updated_by)
                VALUES ($1, $2::jsonb, $3)
                ON CONFLICT (agency_id) DO UPDATE
                SET definition = EXCLUDED.definition, updated_by = EXCLUDED.updated_by,
                    version = ussd_menus.version + 1, updated_at = now()
                RETURNING {_MENU_COLUMNS}""",
            agency_id,
            orjson.dumps(definition).decode(),
            updated_by,
        )
        assert row is not None
        return _menu(row)

    async def get_menu(self, agency_id: uuid.UUID) -> StoredMenu | None:
        row = await self._db.fetchrow(
            "ussd_menu_get",
            f"SELECT {_MENU_COLUMNS} FROM ussd_menus WHERE agency_id = $1",
            agency_id,
        )
        return _menu(row) if row else None

    async def menu_version(self, agency_id: uuid.UUID) -> int | None:
        """The current version alone: lets a node reuse its parsed copy of the menu."""
        value = await self._db.fetchval(
            "ussd_menu_version", "SELECT version FROM ussd_menus WHERE agency_id = $1", agency_id
        )
        return int(value) if value is not None else None

    # -- sessions -----------------------------------------------------------------------
    async def get_session(self, key: SessionKey) -> SessionRow | None:
        row = await self._db.fetchrow(
            "ussd_session_get",
            f"""SELECT {_SESSION_COLUMNS} FROM ussd_sessions
                WHERE operator = $1 AND msisdn = $2 AND session_id = $3""",
            key.operator,
            key.msisdn,
            key.session_id,
        )
        return _session(row) if row else None

    async def save_session(
        self,
        key: SessionKey,
        *,
        expected_rev: int | None,
        agency_id: uuid.UUID | None,
        menu_version: int,
        screen: str,
        page: int,
        inputs: dict[str, str],
        history: tuple[str, ...],
        reply: str,
        ended: bool,
        now: datetime,
        trail: tuple[str, ...] = (),
    ) -> bool:
        """Compare-and-set: insert when ``expected_rev`` is None, else update only the row still
        at that revision. False means another node got there first; the caller re-reads."""
        args = (
            key.operator,
            key.msisdn,
            key.session_id,
            agency_id,
            menu_version,
            screen,
            page,
            orjson.dumps(inputs).decode(),
            list(history),
            reply,
            ended,
            now,
            list(trail),
        )
        if expected_rev is None:
            status = await self._db.execute(
                "ussd_session_insert",
                """INSERT INTO ussd_sessions (operator, msisdn, session_id, agency_id,
                       menu_version, screen, page, inputs, history, reply, ended, started_at,
                       updated_at, trail)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $12, $13)
                   ON CONFLICT DO NOTHING""",
                *args,
            )
        else:
            status = await self._db.execute(
                "ussd_session_update",
                """UPDATE ussd_sessions
                   SET agency_id = $4, menu_version = $5, screen = $6, page = $7,
                       inputs = $8::jsonb, history = $9, reply = $10, ended = $11,
                       updated_at = $12, trail = $13, rev = rev + 1
                   WHERE operator = $1 AND msisdn = $2 AND session_id = $3 AND rev = $14""",
                *args,
                expected_rev,
            )
        return status.endswith(" 1")

    async def delete_session(self, key: SessionKey, rev: int) -> None:
        await self._db.execute(
            "ussd_session_delete",
            """DELETE FROM ussd_sessions
               WHERE operator = $1 AND msisdn = $2 AND session_id = $3 AND rev = $4""",
            key.operator,
            key.msisdn,
            key.session_id,
            rev,
        )

    async def purge_idle(self, before: datetime) -> list[tuple[str, uuid.UUID | None]]:
        """Forget sessions untouched since ``before`` (ended or timed out alike); returns
        (operator, agency) of each one that was still open: abandoned by the citizen."""
        rows = await self._db.fetch(
            "ussd_session_purge",
            """DELETE FROM ussd_sessions WHERE updated_at < $1
               RETURNING operator, agency_id, ended""",
            before,
        )
        return [(r["operator"], r["agency_id"]) for r in rows if not r["ended"]]
