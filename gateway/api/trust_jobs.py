"""Background jobs of citizen trust: signing the audit chain's head, purging old codes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from gateway import audit_chain
from gateway.api.http import SERVICES, periodic

log = logging.getLogger(__name__)


async def audit_checkpoints(app: web.Application) -> AsyncIterator[None]:
    """Every security.audit_checkpoint_seconds, sign the audit chain's head. `payam serve`
    refuses to start without the key (gateway/cli.py); an app built without one (tests, tools)
    runs no checkpoints."""
    services = app[SERVICES]
    path = services.config.security.audit_signing_key_file
    if not Path(path).exists():  # noqa: ASYNC240 - once, at start-up
        log.warning("audit checkpoints off: %s does not exist", audit_chain.KEY_SETTING)
        yield
        return
    key = audit_chain.load_signing_key(path)

    async def job() -> None:
        made = await audit_chain.checkpoint(services.store, key)
        if made is not None:
            log.info("audit checkpoint %d signed", made)

    async with periodic(
        float(services.config.security.audit_checkpoint_seconds), job, "audit checkpoint"
    ):
        yield


_PURGE_SECONDS = 3600.0


async def verification_purge(app: web.Application) -> AsyncIterator[None]:
    """Hourly: forget codes past verification.keep_days and attempt counts of past hours."""
    services = app[SERVICES]

    async def job() -> None:
        gone = await services.verification.purge()
        if gone:
            log.info("purged %d expired verification codes", gone)

    async with periodic(_PURGE_SECONDS, job, "verification purge"):
        yield


async def retention_purge(app: web.Application) -> AsyncIterator[None]:
    """Every privacy.purge_seconds: scrub contents past retention, shred expired data keys
    (gateway/privacy.py)."""
    services = app[SERVICES]
    async with periodic(services.config.privacy.purge_seconds, services.privacy.purge, "purge"):
        yield
