"""The tamper-evident audit log against a real PostgreSQL: the chain is built by the database,
the application cannot change it, and `payam audit verify` names every row an attacker with
superuser rights edited, inserted or deleted, a truncated tail and a forged checkpoint."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from gateway import audit_chain
from gateway.services import Services
from tests.conftest import ROOT


@pytest.fixture
def key_file(tmp_path: Path) -> str:
    path = str(tmp_path / "audit-signing.key")
    assert audit_chain.write_new_signing_key(path) is True
    assert audit_chain.write_new_signing_key(path) is False  # kept, never overwritten
    assert os.stat(path).st_mode & 0o777 == 0o600
    return path


@pytest.fixture
async def attacker(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser session with the append-only triggers switched off."""
    conn = await asyncpg.connect(database_url)
    await conn.execute("SET session_replication_role = replica")
    yield conn
    await conn.close()


async def _fill(services: Services, n: int) -> list[int]:
    for i in range(n):
        await services.store.audit.record(
            actor="admin:ops",
            action="agency.update",
            target=f"agency-{i}",
            outcome="ok",
            client_addr="10.1.2.3",
            detail={"fields": ["tps"], "n": i, "نام": "سازمان"},
        )
    rows = await services.store.pool.fetch("SELECT id FROM audit_log ORDER BY seq")
    return [r["id"] for r in rows]


async def _verify(services: Services, key_file: str) -> audit_chain.Report:
    key = audit_chain.load_signing_key(key_file)
    return await audit_chain.verify(services.store, key.public_key())


def _kinds(report: audit_chain.Report) -> list[tuple[str, int | None]]:
    return [(f.kind, f.row_id) for f in report.findings]


async def test_clean_chain_with_concurrent_appends_verifies(
    services: Services, key_file: str
) -> None:
    await _fill(services, 3)

    async def in_tx(i: int) -> None:
        async with services.store.transaction() as tx:
            await tx.audit.record(actor="a", action="x", outcome="ok", detail={"i": i})
            await asyncio.sleep(0.001)  # hold the head lock across an await

    await asyncio.gather(
        *(in_tx(i) for i in range(20)),
        *(services.store.audit.record(actor="b", action="y", outcome="ok") for _ in range(20)),
    )
    seqs = [r["seq"] for r in await services.store.pool.fetch("SELECT seq FROM audit_log")]
    assert sorted(seqs) == list(range(1, 44))  # gapless, one position each
    key = audit_chain.load_signing_key(key_file)
    assert await audit_chain.checkpoint(services.store, key) is not None
    assert await audit_chain.checkpoint(services.store, key) is None  # head did not move
    report = await _verify(services, key_file)
    assert report.ok, report.findings
    assert (report.rows, report.checkpoints) == (43, 1)


async def test_application_cannot_change_or_remove_rows(services: Services) -> None:
    await _fill(services, 2)
    pool = services.store.pool
    for sql in (
        "UPDATE audit_log SET actor = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "UPDATE audit_chain_head SET seq = 0",
        "DELETE FROM audit_chain_head",
        "DELETE FROM audit_checkpoints",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await pool.execute(sql)
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 2


async def test_edited_row_is_named(
    services: Services, key_file: str, attacker: asyncpg.Connection
) -> None:
    ids = await _fill(services, 5)
    await attacker.execute("UPDATE audit_log SET outcome = 'refused' WHERE id = $1", ids[2])
    assert _kinds(await _verify(services, key_file)) == [("edited", ids[2])]


async def test_edited_detail_is_named(
    services: Services, key_file: str, attacker: asyncpg.Connection
) -> None:
    ids = await _fill(services, 4)
    await attacker.execute(
        """UPDATE audit_log SET detail = jsonb_set(detail, '{n}', '99') WHERE id = $1""", ids[1]
    )
    assert _kinds(await _verify(services, key_file)) == [("edited", ids[1])]


async def test_inserted_rows_are_named(
    services: Services, key_file: str, attacker: asyncpg.Connection
) -> None:
    await _fill(services, 5)
    # A forged row at an existing position.
    forged = await attacker.fetchval(
        """INSERT INTO audit_log (actor, action, outcome, seq, hash)
           VALUES ('admin:ops', 'key.revoke', 'ok', 3, $1) RETURNING id""",
        os.urandom(32),
    )
    assert _kinds(await _verify(services, key_file)) == [("inserted", forged)]


async def test_row_slipped_in_with_renumbering_is_named(
    services: Services, key_file: str, attacker: asyncpg.Connection
) -> None:
    """The careful attacker: shifts later rows up and gives the new row a correct link."""
    ids = await _fill(services, 5)
    await attacker.execute("UPDATE audit_log SET seq = seq + 1 WHERE seq >= 3")
    prev_hash = await attacker.fetchval("SELECT hash FROM audit_log WHERE seq = 2")
    new_id = await attacker.fetchval(
        """INSERT INTO audit_log (actor, action, outcome, seq, hash)
           VALUES ('admin:ops', 'key.create', 'ok', 3, $1) RETURNING id""",
        bytes(32),
    )
    row = await attacker.fetchrow(
        """SELECT id, seq, at, actor, action, target, outcome, client_addr,
                  detail::text AS detail, hash FROM audit_log WHERE id = $1""",
        new_id,
    )
    good = audit_chain.link(
        prev_hash, 3, audit_chain.ChainRow(**{**dict(row), "hash": bytes(row["hash"])})
    )
    await attacker.execute("UPDATE audit_log SET hash = $1 WHERE id = $2", good, new_id)
    await attacker.execute("UPDATE audit_chain_head SET seq = 6")
    report = await _verify(services, key_file)
    assert ("inserted", new_id) in _kinds(report)
    assert ids[2] not in [f.row_id for f in report.findings if f.kind == "edited"]


async def test_deleted_row_is_named(
    services: Services, key_file: str, attacker: asyncpg.Connection
) -> None:
    ids = await _fill(services, 5)
    await attacker.execute("DELETE FROM audit_log WHERE id = $1", ids[3])
    report = await _verify(services, key_file)
    assert _kinds(report) == [("deleted", ids[4])]
    assert f"between row id {ids[2]} and row id {ids[4]}" in report.findings[0].message


async def test_truncated_tail_after_checkpoint(
    services: Services, key_file: str, attacker: asyncpg.Connection
) -> None:
    ids = await _fill(services, 5)
    key = audit_chain.load_signing_key(key_file)
    cp = await audit_chain.checkpoint(services.store, key)
    # The attacker removes the last two rows and moves the head back to cover the tracks.
    await attacker.execute("DELETE FROM audit_log WHERE id = ANY($1::bigint[])", ids[3:])
    last = await attacker.fetchrow("SELECT seq, hash FROM audit_log WHERE id = $1", ids[2])
    await attacker.execute(
        "UPDATE audit_chain_head SET seq = $1, hash = $2", last["seq"], last["hash"]
    )
    report = await _verify(services, key_file)
    assert [(f.kind, f.row_id, f.checkpoint_id) for f in report.findings] == [
        ("truncated", ids[2], cp)
    ]


async def test_rewritten_chain_and_forged_checkpoint(
    services: Services, key_file: str, attacker: asyncpg.Connection
) -> None:
    ids = await _fill(services, 4)
    key = audit_chain.load_signing_key(key_file)
    await audit_chain.checkpoint(services.store, key)
    # Edit row 2 and recompute every hash after it: the chain is consistent again...
    await attacker.execute("UPDATE audit_log SET actor = 'admin:evil' WHERE id = $1", ids[1])
    rows = await attacker.fetch(
        """SELECT id, seq, at, actor, action, target, outcome, client_addr,
                  detail::text AS detail, hash FROM audit_log ORDER BY seq"""
    )
    h = audit_chain.GENESIS
    for r in rows:
        h = audit_chain.link(h, r["seq"], audit_chain.ChainRow(**{**dict(r), "hash": b""}))
        await attacker.execute("UPDATE audit_log SET hash = $1 WHERE id = $2", h, r["id"])
    await attacker.execute("UPDATE audit_chain_head SET hash = $1", h)
    # ...and a checkpoint over it, signed with a key that is not the platform's.
    other = audit_chain.Ed25519PrivateKey.generate()
    at = await attacker.fetchval("SELECT now()")
    forged = await attacker.fetchval(
        """INSERT INTO audit_checkpoints (at, seq, hash, key_id, signature)
           VALUES ($1, 4, $2, 'x', $3) RETURNING id""",
        at,
        h,
        other.sign(audit_chain._signed_bytes(at, 4, h)),
    )
    report = await _verify(services, key_file)
    assert ("rewritten", ids[3]) in _kinds(report)
    assert [f.checkpoint_id for f in report.findings if f.kind == "forged_checkpoint"] == [forged]
    assert len(report.findings) == 2


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


async def test_cli_verify_exit_code_names_the_row(
    services: Services, key_file: str, attacker: asyncpg.Connection, database_url: str
) -> None:
    ids = await _fill(services, 3)
    env = {
        **os.environ,
        "PAYAM_DATABASE_URL": database_url,
        "PAYAM_SECURITY_AUDIT_SIGNING_KEY_FILE": key_file,
    }
    made = await asyncio.to_thread(_cli, env, "audit", "checkpoint")
    assert made.returncode == 0, made.stderr
    assert orjson.loads(made.stdout)["checkpoint_id"] == 1
    clean = await asyncio.to_thread(_cli, env, "audit", "verify")
    assert clean.returncode == 0, clean.stderr
    assert orjson.loads(clean.stdout)["ok"] is True
    await attacker.execute("UPDATE audit_log SET target = 'other' WHERE id = $1", ids[1])
    bad = await asyncio.to_thread(_cli, env, "audit", "verify")
    assert bad.returncode == 3
    out: dict[str, Any] = orjson.loads(bad.stdout)
    assert out["ok"] is False
    assert [(f["kind"], f["row_id"]) for f in out["findings"]] == [("edited", ids[1])]
    assert f"row id {ids[1]}" in bad.stderr
    missing = await asyncio.to_thread(
        _cli,
        {**env, "PAYAM_SECURITY_AUDIT_SIGNING_KEY_FILE": key_file + ".nope"},
        "audit",
        "verify",
    )
    assert missing.returncode == 2
    assert "security.audit_signing_key_file" in missing.stderr


def test_python_and_sql_canonical_forms_agree() -> None:
    # The same bytes must come out of audit_canonical(); here the Python side's shape.
    from datetime import UTC, datetime

    row = audit_chain.ChainRow(
        id=1,
        seq=1,
        at=datetime(2026, 1, 1, tzinfo=UTC),
        actor="ab",
        action="",
        target="تست",
        outcome="ok",
        client_addr="",
        detail="{}",
        hash=b"",
    )
    assert (
        audit_chain.canonical(1, row)
        == "1:1;16:1767225600000000;2:ab;0:;3:تست;2:ok;0:;2:{};".encode()
    )
    assert (
        audit_chain.link(bytes(32), 1, row)
        == hashlib.sha256(bytes(32) + audit_chain.canonical(1, row)).digest()
    )


async def test_rows_from_before_the_chain_are_chained_by_the_migration(
    admin_url: str, key_file: str
) -> None:
    from gateway.store import Store
    from gateway.store.migrate import available, migrate
    from tests.conftest import _with_db

    name = f"payam_test_chain_{os.getpid()}_{os.urandom(3).hex()}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(_with_db(admin_url, name))
        trust = next(m.version for m in available() if m.name == "trust")
        await conn.execute(
            "CREATE TABLE schema_version (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for m in available():
            if m.version < trust:
                await conn.execute(m.sql)
                await conn.execute("INSERT INTO schema_version VALUES ($1, $2)", m.version, m.name)
        for i in range(3):
            await conn.execute(
                "INSERT INTO audit_log (actor, action, outcome, detail) VALUES ($1, 'x', 'ok', $2)",
                f"old-{i}",
                orjson.dumps({"i": i, "متن": "قدیمی"}).decode(),
            )
        assert trust in await migrate(conn)
        await conn.close()
        pool = await asyncpg.create_pool(_with_db(admin_url, name), min_size=1, max_size=2)
        assert pool is not None
        store = Store(pool)
        await store.audit.record(actor="new", action="y", outcome="ok")
        key = audit_chain.load_signing_key(key_file)
        report = await audit_chain.verify(store, key.public_key())
        assert report.ok, report.findings
        assert report.rows == 4
        assert await pool.fetchval("SELECT seq FROM audit_log WHERE actor = 'new'") == 4
        await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
