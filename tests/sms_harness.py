"""Harness for end-to-end SMS tests: the SMSC simulator on a real TCP port, and a gateway app
with its SMS runtime (SMPP client, dispatcher, tracker, callbacks) wired to it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from adapters.sms.simulator import SimulatorSettings, SmscSimulator
from gateway.api.app import build_app
from gateway.config import Config, load_config
from gateway.numbering import Request
from gateway.runtime import sms_context
from gateway.sealing import Sealer
from gateway.services import Services, build_services
from gateway.store import Store
from tests.conftest import make_agency, make_key
from tests.test_messages_api import Agency


def sms_config(base: Config, sim_port: int, **operator: Any) -> Config:
    op = {
        "name": "mci",
        "prefixes": ["9"],
        "host": "127.0.0.1",
        "port": sim_port,
        "system_id": "payam",
        "password": "secret",
        "window": 10,
        "response_timeout_seconds": 2.0,
        "enquire_link_seconds": 5.0,
        **operator,
    }
    return load_config(
        None,
        env={
            "PAYAM_DATABASE_URL": base.database.url,
            "PAYAM_SECURITY_MASTER_KEY_FILE": base.security.master_key_file,
            "PAYAM_OPERATORS": json.dumps([op]),
            "PAYAM_SMS_RETRY_BASE_SECONDS": "0.05",
            "PAYAM_SMS_QUIET_HOURS_START": "00:00",
            "PAYAM_SMS_QUIET_HOURS_END": "00:00",
            "PAYAM_SMS_DUPLICATE_WINDOW_SECONDS": "0",
            "PAYAM_SMS_DISPATCH_WORKERS": "2",
            "PAYAM_SMS_CLAIM_BATCH": "64",
        },
    )


async def start_sim(**settings: Any) -> SmscSimulator:
    sim = SmscSimulator(SimulatorSettings(port=0, seed=7, dlr_delay_seconds=0.02, **settings))
    await sim.start()
    return sim


async def gateway(
    cfg: Config, store: Store, sealer: Sealer, aiohttp_client: Any
) -> tuple[Services, TestClient[Any, Any]]:
    services = build_services(cfg, store, sealer)
    app = build_app(services)
    app.cleanup_ctx.append(sms_context(services))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return services, client


@pytest.fixture
async def sms(
    config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any
) -> AsyncIterator[Callable[..., Awaitable[tuple[SmscSimulator, Services, Any]]]]:
    """Start a simulator and a gateway with its SMS runtime wired to it; stopped after the
    test. ``sms(sim_opts={...}, op_opts={...})``."""
    sims: list[SmscSimulator] = []

    async def make(
        sim_opts: dict[str, Any] | None = None, op_opts: dict[str, Any] | None = None
    ) -> tuple[SmscSimulator, Services, Any]:
        sim = await start_sim(**(sim_opts or {}))
        sims.append(sim)
        cfg = sms_config(config, sim.port, **(op_opts or {}))
        services, client = await gateway(cfg, Store(pool), sealer, aiohttp_client)
        return sim, services, client

    yield make
    for sim in sims:
        await sim.stop()


async def agency(
    services: Services, client: Any, shortcode: str = "404012", **fields: Any
) -> Agency:
    agency_id = await make_agency(services, **fields)
    a = await services.agencies.get(agency_id)
    await services.numbering.allocate(a, Request("shortcode", shortcode), actor="t")
    return Agency(services, client, agency_id, await make_key(services, agency_id))


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float = 15.0, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError("condition not reached in time")


async def statuses(services: Services) -> dict[str, int]:
    rows = await services.store.pool.fetch(
        "SELECT status, count(*) AS n FROM messages GROUP BY status"
    )
    return {r["status"]: int(r["n"]) for r in rows}


async def all_final(services: Services, n: int, status: str = "delivered") -> bool:
    return (await statuses(services)).get(status, 0) == n
