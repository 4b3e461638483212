"""Numbered migrations: applied once, in order, safely from several nodes at once."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg

from gateway.store.migrate import available, current_version, migrate


async def test_migrations_apply_once_even_concurrently(admin_url: str) -> None:
    name = f"payam_mig_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        conns = [await asyncpg.connect(url) for _ in range(3)]
        assert await current_version(conns[0]) == 0
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = sorted(v for r in results for v in r)
        assert applied == [m.version for m in available()]  # each exactly once
        assert await migrate(conns[0]) == []  # second run: no-op
        assert await current_version(conns[0]) == available()[-1].version
        rows = await conns[0].fetch("SELECT version FROM schema_version ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in available()]
        for c in conns:
            await c.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_migration_files_are_numbered_consecutively() -> None:
    versions = [m.version for m in available()]
    assert versions == list(range(1, len(versions) + 1))
