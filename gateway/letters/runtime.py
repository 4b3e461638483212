"""The letters runtime of one node, started and stopped with the web app (aiohttp
``cleanup_ctx``): the delivery worker (when ``kartpooshe.base_url`` is set), the notice
watcher ("notified" once the SMS notice is delivered), the deemed-delivery job, reply
deliveries to office automation, SMTP ingestion (when ``kartpooshe.smtp_port`` is set) and the
letters-by-state gauge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from adapters.kartpooshe.client import EboxClient
from adapters.kartpooshe.delivery import DeliveryWorker
from adapters.kartpooshe.reply_delivery import ReplyDeliveryWorker
from gateway.api.http import periodic
from gateway.letters.tokens import gateway_to_ebox
from gateway.metrics import LETTERS_BY_STATE
from gateway.services import Services

log = logging.getLogger(__name__)

NOTICE_INTERVAL = 1.0
DEEMED_INTERVAL = 60.0
GAUGE_INTERVAL = 15.0


_SEEN_STATES: set[tuple[str, str]] = set()


async def sample_letter_states(services: Services) -> None:
    """Set the gauge per (agency, state); pairs that dropped to no letters go back to 0."""
    now = {
        (agency, state): n for agency, state, n in await services.store.letters.counts_by_state()
    }
    for pair in _SEEN_STATES - now.keys():
        LETTERS_BY_STATE.labels(*pair).set(0)
    for pair, n in now.items():
        LETTERS_BY_STATE.labels(*pair).set(n)
    _SEEN_STATES.update(now)


def letters_context(services: Services) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        cfg = services.config.kartpooshe
        letters = services.letters
        lifecycle = letters.lifecycle
        _ = letters.chain.signer  # a missing or unreadable evidence key fails the start
        tasks: list[asyncio.Task[None]] = []
        stops: list[Callable[[], None]] = []
        client: EboxClient | None = None
        if cfg.base_url:
            client = EboxClient(cfg.base_url, gateway_to_ebox(cfg), cfg.request_timeout_seconds)
            await client.start()
            delivery = DeliveryWorker(services.store, client, lifecycle, cfg, letters.wake)
            tasks.append(asyncio.create_task(delivery.run(), name="letters-delivery"))
            stops.append(delivery.stop)
        replies = ReplyDeliveryWorker(services.store, services.agencies, cfg, letters.replies_wake)
        tasks.append(asyncio.create_task(replies.run(), name="letters-replies"))
        stops.append(replies.stop)
        smtp: Any = None
        if cfg.smtp_port:
            from adapters.kartpooshe.smtp_ingest import start_smtp

            smtp = await start_smtp(services)
        async with (
            periodic(NOTICE_INTERVAL, lifecycle.notices_settled, "settling letter notices"),
            periodic(DEEMED_INTERVAL, lifecycle.deem_due, "deemed delivery"),
            periodic(GAUGE_INTERVAL, lambda: sample_letter_states(services), "letter gauges"),
        ):
            yield
        if smtp is not None:
            smtp.close()
            await smtp.wait_closed()
        for stop in stops:
            stop()
        if tasks:
            await asyncio.wait(tasks, timeout=10.0)
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if client is not None:
            await client.close()

    return ctx
