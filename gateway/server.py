"""``payam serve``: the gateway process.

aiohttp's runner gives the graceful shutdown: on SIGTERM or SIGINT it stops accepting, lets
in-flight requests finish within ``http.shutdown_drain_seconds`` (``/readyz`` turns 503 first),
then runs cleanups that close the database pool.
"""

from __future__ import annotations

import gc
import logging

import uvloop
from aiohttp import web

from gateway.api.app import build_app
from gateway.config import Config
from gateway.letters.runtime import letters_context
from gateway.logs import setup_logging
from gateway.runtime import sms_context
from gateway.sealing import Sealer
from gateway.services import build_services
from gateway.store import Store
from gateway.store.db import Conn, create_pool
from gateway.store.migrate import available, current_version
from gateway.workers import supervise

log = logging.getLogger(__name__)


async def create_app(
    cfg: Config, dsn: str, sealer: Sealer, *, background: bool = True
) -> web.Application:
    """``background``: this process also runs the dispatchers, SMPP binds, tracking and the
    periodic purges (the primary, or the only process); HTTP-only workers do not."""
    db = cfg.database
    pool = await create_pool(dsn, db.pool_min_size, db.pool_max_size, db.command_timeout_seconds)
    async with pool.acquire() as conn:
        await _check_schema(conn)
    services = build_services(cfg, Store(pool), sealer, dsn)
    app = build_app(services, background=background)
    if background:
        app.cleanup_ctx.append(sms_context(services))
        # The letters' workers and the SMTP listener run where the SMS runtime does: in one
        # process of several (http.workers), so the SMTP port is bound once.
        app.cleanup_ctx.append(letters_context(services))

    async def close_pool(_: web.Application) -> None:
        await pool.close()

    app.on_cleanup.append(close_pool)
    # Last of the startup steps (aiohttp runs cleanup contexts' starts before on_startup).
    app.on_startup.append(_freeze_startup_objects)
    return app


async def _freeze_startup_objects(_: web.Application) -> None:
    """What startup built (modules, configuration, caches, the OpenAPI document) lives as long
    as the process: moved out of the collector's generations (gc.freeze), so that full
    collections under load no longer walk it. Measured under benchmark (a): the oldest
    generation's collections went from 93 ms to 5 ms per 12 s of load (docs/PERFORMANCE.md)."""
    gc.collect()
    gc.freeze()


async def _check_schema(conn: Conn) -> None:
    have = await current_version(conn)
    want = available()[-1].version
    if have < want:
        raise RuntimeError(f"database schema is at {have}, code needs {want}: run 'payam migrate'")


def run(cfg: Config, dsn: str, sealer: Sealer, role: str = "single") -> int:
    """``role``: "single" (one process does everything, or supervises ``http.workers``
    processes), "primary" or "api" (started by the supervisor, gateway/workers.py)."""
    if role == "single" and cfg.http.workers > 1:
        return supervise(cfg, dsn)
    setup_logging(cfg.log)
    # uvloop (libuv) cuts the cost of every socket read and write, and this service is mostly
    # socket I/O: HTTP in, PostgreSQL and SMPP out.
    uvloop.install()
    if role != "api":
        log.info("payam gateway listening on http://%s:%d", cfg.http.host, cfg.http.port)
    web.run_app(
        create_app(cfg, dsn, sealer, background=role != "api"),
        host=cfg.http.host,
        port=cfg.http.port,
        reuse_port=role != "single",
        shutdown_timeout=cfg.http.shutdown_drain_seconds,
        keepalive_timeout=cfg.http.client_timeout_seconds,  # also bounds a slow request head
        # After answering a request whose body did not all arrive (408, 413), aiohttp keeps
        # reading it for lingering_time (10 s by default) so the client sees the answer: a
        # second is enough for that and frees the connection of a slow client sooner.
        lingering_time=1.0,
        access_log=None,
        print=None,
    )
    return 0
