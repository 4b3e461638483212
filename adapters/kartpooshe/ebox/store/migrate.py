"""The e-box's numbered migrations (``adapters/kartpooshe/ebox/migrations/NNNN_name.sql``).

Applied at service start, each exactly once, under an advisory lock so two e-box nodes starting
together never race. Recorded in ``ebox_schema_version`` (not ``schema_version``), so that even a
development setup that points both services at one database keeps the two histories apart.
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import Any

log = logging.getLogger(__name__)

# pg_advisory_lock key for "e-box schema migration" ("ebox0").
_LOCK = 0x6562_6F78_30
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def available() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("adapters.kartpooshe.ebox.migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    return found


async def migrate(conn: Any) -> list[int]:
    """Apply pending migrations on ``conn`` (an asyncpg connection); return those applied now."""
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS ebox_schema_version (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM ebox_schema_version")}
        for version, name, sql in available():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO ebox_schema_version (version, name) VALUES ($1, $2)",
                    version,
                    name,
                )
            log.info("applied e-box migration %04d_%s", version, name)
            applied.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)
    return applied
