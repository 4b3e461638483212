"""Long reliability runs (``make soak``; issue 9, items 1 and 7). Not part of ``make test``.

``crash``: accept N messages (default 100,000) into ``payam serve``, kill -9 it while it
dispatches, K times (default 3), restarting it each time; then prove every message ended in
exactly one final state and count the SMSC's duplicates against the bound
(dispatch_workers + 1) x claim_batch per kill.

``load``: measure the end-to-end capacity (accept → delivered receipt stored) with a burst,
then offer 70% of it for ``--minutes`` (default 30) in one batch a second, sampling the
gateway's RSS, the batch accept latency and the accept → delivered latency each minute, and
report whether memory stayed flat and latency stable.

Each run creates its own database on $PAYAM_TEST_DATABASE_URL (else the local PostgreSQL) and
drops it at the end; the SMSC simulator runs in this process on a real TCP port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.sms.simulator import SimulatorSettings, SmscSimulator
from bench.run import admin_url
from gateway.store.migrate import migrate
from tests.gateway_process import GatewayProcess, free_port, gateway_env, operator
from tests.reliability_setup import (
    Tenant,
    ledger_problems,
    make_tenant,
    post_batch,
    status_counts,
    wait_all_final,
)

WORKERS, CLAIM_BATCH = 4, 256  # the production defaults (config.SmsConfig)


@asynccontextmanager
async def database() -> AsyncIterator[str]:
    admin = admin_url()
    name = f"payam_soak_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = admin.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    try:
        yield url
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@asynccontextmanager
async def rig(
    tps: float, **env: str
) -> AsyncIterator[tuple[asyncpg.Pool, SmscSimulator, GatewayProcess, Tenant]]:
    async with database() as url:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        sim = SmscSimulator(SimulatorSettings(port=0, dlr_delay_seconds=0.05, max_received=10_000))
        await sim.start()
        tmp = Path(tempfile.mkdtemp(prefix="payam-soak-"))
        key_file = tmp / "master.key"
        tenant = await make_tenant(pool, url, key_file)
        gw_env = gateway_env(
            url,
            str(key_file),
            free_port(),
            [operator(sim.port, tps=tps, window=50, binds=2)],
            PAYAM_SMS_DISPATCH_WORKERS=str(WORKERS),
            PAYAM_SMS_CLAIM_BATCH=str(CLAIM_BATCH),
            PAYAM_HTTP_MAX_BATCH_BYTES="67108864",
            PAYAM_DATABASE_POOL_MAX_SIZE="20",
            **env,
        )
        gw = GatewayProcess(gw_env, tmp / "gateway.log")
        gw.start()
        try:
            await gw.wait_ready()
            yield pool, sim, gw, tenant
        finally:
            gw.stop()
            await sim.stop()
            await pool.close()
            print(f"gateway log: {gw.log_path}")


async def crash(args: argparse.Namespace) -> dict[str, Any]:
    n, kills = args.messages, args.kills
    async with rig(0.0, PAYAM_SMS_LEASE_SECONDS="5") as (pool, sim, gw, tenant):
        started = time.monotonic()
        for off in range(0, n, 50_000):
            await post_batch(gw.url, tenant, off, min(50_000, n - off), tag="soak")
        accepted_s = time.monotonic() - started
        kill_points = []
        for k in range(kills):
            target = n * (k + 1) // (kills + 1)
            while sim.ledger.messages < target:
                await asyncio.sleep(0.05)
            gw.kill9()
            kill_points.append(sim.ledger.messages)
            gw.start()
            await gw.wait_ready()
        recover = await wait_all_final(pool, n, timeout=max(600.0, n / 50))
        problems = await ledger_problems(pool)
        out = {
            "messages": n,
            "kills": kills,
            "killed_at": kill_points,
            "accept_s": round(accepted_s, 1),
            "all_final_after_last_kill_s": round(recover, 1),
            "statuses": await status_counts(pool),
            "problems": problems,
            "smsc_messages": sim.ledger.messages,
            "smsc_duplicates": sim.ledger.duplicates,
            "bound_per_kill": (WORKERS + 1) * CLAIM_BATCH,
        }
        out["ok"] = (
            problems == {"not_final": 0, "final_events_not_one": 0, "queue": 0}
            and sim.ledger.messages == n
            and sim.ledger.duplicates <= kills * (WORKERS + 1) * CLAIM_BATCH
        )
        return out


async def _latencies(pool: asyncpg.Pool, since: datetime) -> list[float]:
    rows = await pool.fetch(
        """SELECT extract(epoch FROM coalesce(final_at, updated_at) - created_at)::float8 AS s
           FROM messages WHERE status = 'delivered' AND coalesce(final_at, updated_at) >= $1""",
        since,
    )
    return [r["s"] for r in rows]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(args: argparse.Namespace) -> dict[str, Any]:
    async with rig(0.0) as (pool, sim, gw, tenant):
        burst = args.capacity_burst
        t0 = time.monotonic()
        await post_batch(gw.url, tenant, 0, burst, tag="cap")
        await wait_all_final(pool, burst, timeout=600)
        capacity = burst / (time.monotonic() - t0)
        rate = max(1, int(capacity * args.load_fraction))
        print(f"capacity {capacity:.0f} msg/s end to end; offering {rate} msg/s")
        minutes: list[dict[str, float]] = []
        sent = burst
        end = time.monotonic() + args.minutes * 60
        minute_start = time.monotonic()
        minute_since = datetime.now(UTC)
        accept_ms: list[float] = []
        while time.monotonic() < end:
            tick = time.monotonic()
            await post_batch(gw.url, tenant, sent, rate, tag="soak")
            accept_ms.append((time.monotonic() - tick) * 1000)
            sent += rate
            last_tick = time.monotonic() + 1.0 >= end
            if time.monotonic() - minute_start >= 60 or last_tick:
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
                lat = await _latencies(pool, minute_since)
                depth = await pool.fetchval("SELECT count(*) FROM queue")
                minutes.append(
                    {
                        "minute": len(minutes) + 1,
                        "rss_mb": round(gw.rss_mb(), 1),
                        "accept_p50_ms": round(statistics.median(accept_ms), 1),
                        "e2e_p50_s": round(_pct(lat, 0.5), 3),
                        "e2e_p99_s": round(_pct(lat, 0.99), 3),
                        "queue_depth": depth,
                        "delivered": len(lat),
                    }
                )
                print(json.dumps(minutes[-1]), flush=True)
                minute_start, minute_since, accept_ms = time.monotonic(), datetime.now(UTC), []
                if last_tick:
                    break
                continue
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        await wait_all_final(pool, sent, timeout=600)
        problems = await ledger_problems(pool)
        first, last = minutes[0], minutes[-1]
        out = {
            "minutes": args.minutes,
            "capacity_msg_s": round(capacity, 1),
            "offered_msg_s": rate,
            "messages": sent,
            "per_minute": minutes,
            "rss_growth_mb": round(last["rss_mb"] - first["rss_mb"], 1),
            "e2e_p99_first_last_s": [first["e2e_p99_s"], last["e2e_p99_s"]],
            "problems": problems,
            "smsc_duplicates": sim.ledger.duplicates,
        }
        # Flat: RSS grows less than 20% after the first minute.
        out["memory_flat"] = last["rss_mb"] <= first["rss_mb"] * 1.2
        out["latency_stable"] = latency_stable([m["e2e_p99_s"] for m in minutes])
        out["ok"] = (
            out["memory_flat"]
            and out["latency_stable"]
            and problems == {"not_final": 0, "final_events_not_one": 0, "queue": 0}
        )
        return out


def latency_stable(p99s: list[float]) -> bool:
    """Per-minute accept → delivered p99s (the last minute may be partial and is left out):
    stable when no minute stalls (none above 3x the run's median, or 1 s) and nothing creeps
    (the median of the last five minutes within 1.5x that of the first five, or 1 s). A check
    of the first and last minute alone would pass a run that stalls in between (run 3 in
    docs/RELIABILITY.md §7 reached 49 s in minute 23 and was back to 1.3 s by minute 26)."""
    full = p99s[:-1] if len(p99s) > 1 else p99s
    if not full:
        return False
    median = statistics.median(full)
    no_stall = max(full) <= max(1.0, 3 * median)
    head, tail = statistics.median(full[:5]), statistics.median(full[-5:])
    return no_stall and tail <= max(1.0, 1.5 * head)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    sub = p.add_subparsers(dest="run", required=True)
    c = sub.add_parser("crash", help="kill -9 during dispatch, K times")
    c.add_argument("--messages", type=int, default=100_000)
    c.add_argument("--kills", type=int, default=3)
    ld = sub.add_parser("load", help="70%% of capacity for a long time")
    ld.add_argument("--minutes", type=float, default=30)
    ld.add_argument("--load-fraction", type=float, default=0.7)
    ld.add_argument("--capacity-burst", type=int, default=20_000)
    args = p.parse_args()
    result = asyncio.run(crash(args) if args.run == "crash" else load(args))
    out = ROOT / "var" / f"soak-{args.run}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    print(f"written to {out}")
    raise SystemExit(0 if result.get("ok") else 1)


if __name__ == "__main__":
    main()
