"""``payam ebox serve``: apply the e-box's migrations, then serve until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

import asyncpg
from aiohttp import web

from adapters.kartpooshe.ebox.app import build_app, build_context
from adapters.kartpooshe.ebox.config import EboxConfig
from adapters.kartpooshe.ebox.store import EboxStore
from adapters.kartpooshe.ebox.store.migrate import migrate
from gateway.config import LogConfig
from gateway.logs import setup_logging

log = logging.getLogger(__name__)


async def open_store(cfg: EboxConfig) -> EboxStore:
    """Migrate (idempotent, under a lock) and open the pool."""
    conn = await asyncpg.connect(cfg.database_url)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    if applied:
        log.info("e-box migrations applied: %s", applied)
    pool = await asyncpg.create_pool(
        cfg.database_url,
        min_size=cfg.pool_min_size,
        max_size=cfg.pool_max_size,
        command_timeout=cfg.command_timeout_seconds,
    )
    assert pool is not None
    return EboxStore(pool)


async def create_app(cfg: EboxConfig) -> web.Application:
    store = await open_store(cfg)
    app = build_app(build_context(cfg, store))

    async def close_pool(_: web.Application) -> None:
        await store.pool.close()

    app.on_cleanup.append(close_pool)
    return app


def run(cfg: EboxConfig) -> None:
    setup_logging(LogConfig(level=cfg.log_level))
    log.info("payam e-box listening on http://%s:%d", cfg.host, cfg.port)
    web.run_app(
        create_app(cfg),
        host=cfg.host,
        port=cfg.port,
        shutdown_timeout=cfg.shutdown_drain_seconds,
        access_log=None,
        print=None,
    )
