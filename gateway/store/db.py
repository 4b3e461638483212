"""The one place that executes SQL: named, timed queries over a pool or a transaction."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import asyncpg

from gateway.metrics import STORE_QUERY_LATENCY

Record = asyncpg.Record
# A plain connection or one lent by a pool: both run queries the same way.
Conn: TypeAlias = "asyncpg.Connection[Record] | asyncpg.pool.PoolConnectionProxy[Record]"


class Executor:
    """Runs named queries on a pool (autocommit) or on one connection (inside a transaction).

    Every query carries a name so its latency shows up as
    ``payam_store_query_duration_seconds{query=name}``.
    """

    def __init__(self, target: asyncpg.Pool[Record] | Conn | OwnConnection) -> None:
        self._target: Any = target

    async def fetch(self, name: str, sql: str, *args: Any) -> list[Record]:
        started = time.perf_counter()
        try:
            rows: list[Record] = await self._target.fetch(sql, *args)
            return rows
        finally:
            STORE_QUERY_LATENCY.labels(name).observe(time.perf_counter() - started)

    async def fetchrow(self, name: str, sql: str, *args: Any) -> Record | None:
        started = time.perf_counter()
        try:
            row: Record | None = await self._target.fetchrow(sql, *args)
            return row
        finally:
            STORE_QUERY_LATENCY.labels(name).observe(time.perf_counter() - started)

    async def fetchval(self, name: str, sql: str, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self._target.fetchval(sql, *args)
        finally:
            STORE_QUERY_LATENCY.labels(name).observe(time.perf_counter() - started)

    async def executemany(self, name: str, sql: str, args: Any) -> None:
        started = time.perf_counter()
        try:
            await self._target.executemany(sql, args)
        finally:
            STORE_QUERY_LATENCY.labels(name).observe(time.perf_counter() - started)

    def raw(self) -> Any:
        """The connection itself, for COPY (only inside a transaction)."""
        return self._target

    async def execute(self, name: str, sql: str, *args: Any) -> str:
        started = time.perf_counter()
        try:
            status: str = await self._target.execute(sql, *args)
            return status
        finally:
            STORE_QUERY_LATENCY.labels(name).observe(time.perf_counter() - started)


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[Executor]:
    """Acquire a connection and run a transaction; commit on success, roll back on error."""
    async with pool.acquire() as conn, conn.transaction():
        yield Executor(conn)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's per-release reset query (RESET ALL, UNLISTEN *, …): it costs a round trip
    on every release, and we keep no session state — advisory locks are transaction-scoped or
    released explicitly, and the one LISTEN removes its listener before releasing."""


class OwnConnection:
    """An Executor target that opens a connection of its own for each statement, outside
    every pool: for the few statements that run while the caller may hold a pooled
    connection in a transaction (a data key created or loaded mid-accept, gateway/vault.py).
    On the pool they can deadlock it: requests with one Idempotency-Key each hold a pooled
    connection while they wait, in their transactions, on the first one's key row, and the
    first then needs one more connection for its data key (seen in CI with 12 requests on a
    pool of 12). Rare by design (once per key and process: the vault caches keys), so the
    ~2 ms of a connect costs nothing in steady state."""

    def __init__(self, dsn: str, command_timeout: float) -> None:
        self._dsn = dsn
        self._timeout = command_timeout

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection[Record]]:
        conn: asyncpg.Connection[Record] = await asyncpg.connect(
            self._dsn, command_timeout=self._timeout, timeout=self._timeout
        )
        try:
            yield conn
        finally:
            await conn.close()

    async def fetch(self, sql: str, *args: Any) -> list[Record]:
        async with self._conn() as conn:
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Record | None:
        async with self._conn() as conn:
            return await conn.fetchrow(sql, *args)


async def create_pool(
    dsn: str, min_size: int, max_size: int, command_timeout: float
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        reset=_keep_session,
    )
    assert pool is not None
    return pool
