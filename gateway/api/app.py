"""The aiohttp application: routes from every API module, middleware, lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from aiohttp import web

from adapters.ussd import http_front as ussd_http
from gateway import availability, ops_metrics
from gateway.api import (
    admin_agencies,
    admin_letters,
    admin_numbering,
    admin_operations,
    admin_reports,
    admin_routing,
    admin_trust,
    admin_ussd,
    app_providers,
    batches,
    health,
    kartpooshe,
    letters,
    me,
    messages,
    openapi,
    trust_jobs,
    ussd_pushes,
    verify,
)
from gateway.api.http import BACKGROUND, DRAINING, SERVICES, periodic, problem_middleware
from gateway.api.ratelimit import RATE_LIMITER, KeyRateLimiter
from gateway.app_channel.worker import app_push_jobs
from gateway.maintenance import Vacuumer
from gateway.services import Services
from gateway.store.maintenance import MaintenanceStore

log = logging.getLogger(__name__)

_PURGE_INTERVAL = 60.0


async def _purge_seen_tokens(app: web.Application) -> AsyncIterator[None]:
    """Background: forget JWT ids once their tokens could no longer pass the iat window."""
    async with periodic(
        _PURGE_INTERVAL, app[SERVICES].auth.purge_seen_tokens, "purging seen token ids"
    ):
        yield


async def _vacuum_hot_tables(app: web.Application) -> AsyncIterator[None]:
    """Background: VACUUM the queue-like tables when dead rows pile up (gateway/maintenance.py)."""
    cfg = app[SERVICES].config.database
    if cfg.vacuum_seconds <= 0:
        yield
        return
    vacuumer = Vacuumer(MaintenanceStore(app[SERVICES].store.db), cfg.vacuum_dead_rows)
    try:
        async with periodic(cfg.vacuum_seconds, vacuumer.run_once, "vacuuming queue tables"):
            yield
    finally:
        await vacuumer.close()


async def _operations(app: web.Application) -> AsyncIterator[None]:
    """Background: re-read the operations flags and sample the operators' gauges (issue 8).

    Every process counts its own API availability and reads the flags; only the process that
    runs the background jobs samples the database-derived gauges, because gauges add up over
    the processes of one node (gateway/metrics.py) and would otherwise count twice."""
    services = app[SERVICES]
    background = app[BACKGROUND]
    if background:
        ops_metrics.set_static(services)
    try:
        await services.ops.state.refresh()
    except Exception:  # the periodic refresh below tries again
        log.exception("reading the operations flags failed")
    async with AsyncExitStack() as jobs:
        await jobs.enter_async_context(
            periodic(services.config.ops.refresh_seconds, services.ops.state.refresh, "ops flags")
        )
        if background:
            await jobs.enter_async_context(
                periodic(
                    services.config.ops.sample_seconds,
                    lambda: ops_metrics.sample(services),
                    "sampling operations metrics",
                )
            )
        await jobs.enter_async_context(
            periodic(
                services.config.ops.sample_seconds,
                lambda: availability.flush(services.store),
                "storing API availability counts",
            )
        )
        yield
    try:
        await availability.flush(services.store)
    except Exception:
        log.exception("storing API availability counts at shutdown failed")


async def _start_draining(app: web.Application) -> None:
    # /readyz turns 503 first, so a load balancer stops sending before connections close.
    app[DRAINING][0] = True


def build_app(services: Services, *, background: bool = True) -> web.Application:
    """``background``: also run this process's share of periodic jobs (False in HTTP-only
    worker processes, gateway/workers.py)."""
    app = web.Application(
        middlewares=[problem_middleware],
        # Batches may be larger; every other route checks http.max_body_bytes itself.
        client_max_size=max(
            services.config.http.max_body_bytes, services.config.http.max_batch_bytes
        ),
    )
    app[SERVICES] = services
    app[DRAINING] = [False]
    app[BACKGROUND] = background
    auth_cfg = services.config.auth
    app[RATE_LIMITER] = KeyRateLimiter(auth_cfg.key_requests_per_second, auth_cfg.key_burst)
    for module in (
        health,
        me,
        messages,
        batches,
        letters,
        kartpooshe,
        admin_agencies,
        admin_letters,
        admin_numbering,
        admin_operations,
        admin_reports,
        admin_routing,
        admin_ussd,
        admin_trust,
        verify,
        ussd_http,
        ussd_pushes,
        app_providers,
        openapi,
    ):
        module.register(app)
    if background:
        app.cleanup_ctx.append(_purge_seen_tokens)
        app.cleanup_ctx.append(trust_jobs.audit_checkpoints)
        app.cleanup_ctx.append(trust_jobs.verification_purge)
        app.cleanup_ctx.append(trust_jobs.retention_purge)
        app.cleanup_ctx.append(_vacuum_hot_tables)
    app.cleanup_ctx.append(_operations)
    # The app channel's push worker (in the process that runs background jobs only).
    app.cleanup_ctx.append(app_push_jobs)
    app.on_shutdown.append(_start_draining)
    return app
