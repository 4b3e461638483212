"""The demo traffic generator of docker-compose.yml, against an in-test gateway over real HTTP
and real SMPP: it sets its agency up once, sends in every lane and dials its USSD code."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg

from gateway.config import Config
from gateway.sealing import Sealer
from gateway.store import Store
from gateway.traffic import generate, setup
from tests.sms_harness import gateway, sms_config, start_sim, wait_for

SECRET = "mci-shared-secret-0123456789"


async def test_generator_sends_sms_and_ussd_and_can_run_again(
    config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any
) -> None:
    sim = await start_sim()
    try:
        cfg = sms_config(config, sim.port)
        cfg = replace(cfg, ussd=replace(cfg.ussd, http_secrets=(f"mci={SECRET}",)))
        services, client = await gateway(cfg, Store(pool), sealer, aiohttp_client)
        demo = await setup(services)
        again = await setup(services)  # a restarted generator finds its agency
        assert again.agency_id == demo.agency_id
        url = str(client.make_url("/"))
        accepted = await generate(
            url, demo, rate=20, seconds=1.5, ussd_operator="mci", ussd_secret=SECRET
        )
        assert accepted >= 5
        lanes = {r["priority"] for r in await pool.fetch("SELECT DISTINCT priority FROM messages")}
        assert lanes >= {0, 1, 2}

        async def delivered() -> bool:
            n = await pool.fetchval("SELECT count(*) FROM messages WHERE status = 'delivered'")
            return int(n) == accepted

        await wait_for(delivered)
        assert await pool.fetchval("SELECT sum(sessions) FROM ussd_usage") >= 1
    finally:
        await sim.stop()
