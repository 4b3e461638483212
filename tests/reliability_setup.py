"""Shared set-up of the reliability tests and the soak script: an agency with a shortcode and a
key in the database the gateway processes use, a simulator, batch accept over real HTTP, and
the end-of-run ledger checks (every message final exactly once; duplicates at the SMSC)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from gateway.config import load_config
from gateway.numbering import Request
from gateway.sealing import Sealer, write_new_key
from gateway.services import build_services
from gateway.status import FINAL
from gateway.store import Store
from tests.conftest import agency_jwt, make_agency, make_key

FINAL_LIST = sorted(FINAL)


@dataclass
class Tenant:
    agency_id: uuid.UUID
    key_id: str
    secret: str
    shortcode: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {agency_jwt(self.key_id, self.secret)}"}


async def make_tenant(
    pool: asyncpg.Pool, db_url: str, key_file: Path, shortcode: str = "404012"
) -> Tenant:
    """An agency (generous quota) with a shortcode and a live key, written with the same master
    key the gateway processes read."""
    write_new_key(key_file)
    cfg = load_config(
        None,
        env={"PAYAM_DATABASE_URL": db_url, "PAYAM_SECURITY_MASTER_KEY_FILE": str(key_file)},
    )
    services = build_services(cfg, Store(pool), Sealer.from_file(key_file))
    agency_id = await make_agency(services, tps=100_000, daily_fragment_quota=100_000_000)
    agency = await services.agencies.get(agency_id)
    await services.numbering.allocate(agency, Request("shortcode", shortcode), actor="t")
    key = await make_key(services, agency_id)
    return Tenant(agency_id, key.key.key_id, key.secret, shortcode)


def recipient(i: int) -> str:
    return f"+98912{i:07d}"


async def post_batch(
    base_url: str, tenant: Tenant, start: int, count: int, tag: str = "c"
) -> list[str]:
    """Accept ``count`` messages in one batch; each text is unique, so the simulator's ledger
    tells a resubmit from a new message. Returns the message ids."""
    body = {
        "template": f"{tag} {{n}}",
        "mandatory": False,
        "recipients": [
            {"to": recipient(i), "params": {"n": str(i)}} for i in range(start, start + count)
        ],
    }
    timeout = aiohttp.ClientTimeout(total=300)
    async with (
        aiohttp.ClientSession(timeout=timeout) as s,
        s.post(f"{base_url}/v1/batches", json=body, headers=tenant.headers()) as r,
    ):
        got = await r.json(content_type=None)
        assert r.status == 202, got
        assert got["accepted"] == count, got
    return [str(m) for m in got.get("message_ids", [])]


async def status_counts(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT status, count(*) AS n FROM messages GROUP BY status")
    return {r["status"]: int(r["n"]) for r in rows}


async def wait_all_final(pool: asyncpg.Pool, n: int, timeout: float) -> float:
    """Seconds until ``n`` messages are final; raises with the status counts if not."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        counts = await status_counts(pool)
        if sum(v for k, v in counts.items() if k in FINAL) >= n:
            return time.monotonic() - started
        await asyncio.sleep(0.25)
    raise AssertionError(f"not all final after {timeout} s: {await status_counts(pool)}")


async def ledger_problems(pool: asyncpg.Pool) -> dict[str, Any]:
    """Messages not final, and messages with other than exactly one final event."""
    not_final = await pool.fetchval(
        "SELECT count(*) FROM messages WHERE NOT (status = ANY($1::text[]))", FINAL_LIST
    )
    bad_events = await pool.fetchval(
        """SELECT count(*) FROM (
               SELECT m.id FROM messages m
               LEFT JOIN message_events e ON e.message_id = m.id AND e.status = ANY($1::text[])
               GROUP BY m.id HAVING count(e.message_id) <> 1) x""",
        FINAL_LIST,
    )
    still_queued = await pool.fetchval("SELECT count(*) FROM queue")
    return {"not_final": not_final, "final_events_not_one": bad_events, "queue": still_queued}
