"""What every e-box handler reaches through the app: config, store, outbox, gateway client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from adapters.kartpooshe.ebox.config import EboxConfig
from adapters.kartpooshe.ebox.gateway_client import GatewayClient
from adapters.kartpooshe.ebox.outbox import EventOutbox
from adapters.kartpooshe.ebox.store import EboxStore


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Ebox:
    config: EboxConfig
    store: EboxStore
    gateway: GatewayClient
    outbox: EventOutbox
    clock: Callable[[], datetime] = field(default=_utcnow)


EBOX = web.AppKey("ebox", Ebox)


def ebox(request: web.Request) -> Ebox:
    return request.app[EBOX]
