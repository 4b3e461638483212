"""Database outage (issue 9, item 3): PostgreSQL stops and starts under traffic.

A PRIVATE server (gateway/embedded_pg.py under var/) so the machine's shared PostgreSQL is never
touched. While it is down the API answers 503 problem+json with Retry-After (never 500),
/readyz says so, and when it is back the same gateway process serves again without a restart;
every message answered 202 is delivered exactly once.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from adapters.sms.simulator import SimulatorSettings, SmscSimulator
from gateway.embedded_pg import EmbeddedPostgres
from gateway.store.migrate import migrate
from tests.gateway_process import ROOT, GatewayProcess, free_port, gateway_env, operator
from tests.reliability_setup import (
    Tenant,
    ledger_problems,
    make_tenant,
    post_batch,
    wait_all_final,
)

BATCH = 1200


@pytest.fixture(scope="module")
def private_pg() -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(ROOT / "var" / f"outage-pg-{secrets.token_hex(3)}", free_port())
    pg.ensure_running()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(pg.directory, ignore_errors=True)


@pytest.fixture
async def private_pool(private_pg: EmbeddedPostgres) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(private_pg.url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(private_pg.url, min_size=1, max_size=4)
    yield pool
    await pool.close()


class Traffic:
    """Single-message POSTs in a loop; every answer's status is counted, 202 ids kept."""

    def __init__(self, url: str, tenant: Tenant) -> None:
        self.url, self.tenant = url, tenant
        self.statuses: Counter[int] = Counter()
        self.accepted: list[str] = []
        self.bad: list[str] = []  # answers that break the outage contract
        self.n = 0
        self.stopping = False

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as s:
            while not self.stopping:
                self.n += 1
                body = {"to": f"+98935{self.n:07d}", "text": f"outage {self.n}"}
                try:
                    async with s.post(
                        f"{self.url}/v1/messages", json=body, headers=self.tenant.headers()
                    ) as r:
                        got = await r.json(content_type=None)
                        self.statuses[r.status] += 1
                        if r.status == 202:
                            self.accepted.append(got["id"])
                        elif r.status == 503:
                            ok = (
                                r.headers.get("Content-Type", "").startswith(
                                    "application/problem+json"
                                )
                                and got.get("code") == "service_unavailable"
                                and r.headers.get("Retry-After", "").isdigit()
                            )
                            if not ok:
                                self.bad.append(f"503 {dict(r.headers)} {got}")
                        else:
                            self.bad.append(f"{r.status} {got}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.bad.append(f"transport {type(exc).__name__}")
                await asyncio.sleep(0.02)


async def _readyz(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/readyz") as r:
        return r.status


async def test_postgres_stops_and_starts_under_traffic(
    private_pg: EmbeddedPostgres, private_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    key_file = tmp_path / "master.key"
    tenant = await make_tenant(private_pool, private_pg.url, key_file)
    # A real SMSC retries a deliver_sm the ESME could not take (ESME_RX_T_APPN) for a long
    # time; the simulator's default of 3 quick tries would model a careless one.
    sim = SmscSimulator(
        SimulatorSettings(
            port=0, dlr_delay_seconds=0.05, redeliver_attempts=200, redeliver_delay_seconds=0.2
        )
    )
    await sim.start()
    env = gateway_env(
        private_pg.url,
        str(key_file),
        free_port(),
        [operator(sim.port, tps=200.0)],
        PAYAM_SMS_LEASE_SECONDS="30",  # longer than the outage, as 60 s is in production
        PAYAM_DATABASE_COMMAND_TIMEOUT_SECONDS="3",
    )
    gw = GatewayProcess(env, tmp_path / "gateway.log")
    traffic = Traffic(gw.url, tenant)
    await private_pool.close()  # the test holds no connection across the outage
    try:
        gw.start()
        await gw.wait_ready()
        task = asyncio.create_task(traffic.run())
        # A batch that is being dispatched when the database goes: the rounds in flight must
        # store their results when it is back, not give up and send those messages again.
        await post_batch(gw.url, tenant, 0, BATCH)
        deadline = time.monotonic() + 60
        while sim.ledger.messages < BATCH // 4:
            assert time.monotonic() < deadline, "dispatch stalled"
            await asyncio.sleep(0.02)
        before = traffic.statuses[202]
        assert before > 0
        await asyncio.to_thread(private_pg.stop)
        down_at = time.monotonic()
        await asyncio.sleep(4.0)
        assert await _readyz(gw.url) == 503
        during = dict(traffic.statuses)
        await asyncio.to_thread(private_pg.ensure_running)
        up_at = time.monotonic()
        while await _readyz(gw.url) != 200:
            assert time.monotonic() - up_at < 30, "readyz never recovered"
            await asyncio.sleep(0.1)
        accepted_at_up = traffic.statuses[202]
        while traffic.statuses[202] == accepted_at_up:
            assert time.monotonic() - up_at < 30, "the API never accepted again"
            await asyncio.sleep(0.05)
        recovered = time.monotonic() - up_at
        await asyncio.sleep(1.0)
        traffic.stopping = True
        await task
        assert gw.proc is not None
        assert gw.proc.poll() is None  # the same process throughout
        assert traffic.bad == [], traffic.bad[:5]
        assert during.get(503, 0) > 0, during
        assert 500 not in traffic.statuses
        pool = await asyncpg.create_pool(private_pg.url, min_size=1, max_size=2)
        try:
            n = len(traffic.accepted) + BATCH
            in_db = await pool.fetchval(
                "SELECT count(*) FROM messages WHERE id = ANY($1::uuid[])", traffic.accepted
            )
            assert in_db == len(traffic.accepted)  # every 202 was stored
            await wait_all_final(pool, n, timeout=90)
            assert await ledger_problems(pool) == {
                "not_final": 0,
                "final_events_not_one": 0,
                "queue": 0,
            }
            delivered = await pool.fetchval(
                "SELECT count(*) FROM messages WHERE status='delivered'"
            )
            assert delivered == n
        finally:
            await pool.close()
        # Only submits whose response was lost may repeat: none here, the SMSC stayed up.
        assert sim.ledger.duplicates == 0, sim.ledger.duplicates
        print(
            f"\nRELIABILITY db-outage: answers={dict(traffic.statuses)} accepted={n} "
            f"down_s={up_at - down_at:.1f} recover_s={recovered:.1f} "
            f"smsc_duplicates={sim.ledger.duplicates}"
        )
    finally:
        traffic.stopping = True
        gw.stop()
        await sim.stop()
