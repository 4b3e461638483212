"""Named, timed queries for the e-box store (timings on the e-box's own metrics registry)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from adapters.kartpooshe.ebox.metrics import STORE_QUERY_LATENCY


class Q:
    """Runs named queries on a pool (autocommit) or on one connection (inside a transaction)."""

    def __init__(self, target: Any) -> None:
        self._target = target

    async def fetch(self, name: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        started = time.perf_counter()
        try:
            rows: list[asyncpg.Record] = await self._target.fetch(sql, *args)
            return rows
        finally:
            STORE_QUERY_LATENCY.labels(name).observe(time.perf_counter() - started)

    async def fetchrow(self, name: str, sql: str, *args: Any) -> asyncpg.Record | None:
        started = time.perf_counter()
        try:
            row: asyncpg.Record | None = await self._target.fetchrow(sql, *args)
            return row
        finally:
            STORE_QUERY_LATENCY.labels(name).observe(time.perf_counter() - started)

    async def fetchval(self, name: str, sql: str, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self._target.fetchval(sql, *args)
        finally:
            STORE_QUERY_LATENCY.labels(name).observe(time.perf_counter() - started)

    async def execute(self, name: str, sql: str, *args: Any) -> str:
        started = time.perf_counter()
        try:
            status: str = await self._target.execute(sql, *args)
            return status
        finally:
            STORE_QUERY_LATENCY.labels(name).observe(time.perf_counter() - started)


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[Q]:
    async with pool.acquire() as conn, conn.transaction():
        yield Q(conn)
