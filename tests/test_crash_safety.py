"""Crash safety (issue 9, item 1): ``payam serve`` as a real process, kill -9 while it
dispatches, restart, and prove from the database and the SMSC's own ledger that every accepted
message ends in exactly one final state and that resubmits are bounded by the dispatch window.

The window: a dispatch round claims up to ``claim_batch`` messages, submits them, and stores the
results in one transaction. A kill between the submit_sm_resp and that commit loses the record
of submits the SMSC already has; after the lease those messages are claimed and sent again. So
at most (dispatch_workers + 1 crisis worker) × claim_batch messages can be sent twice per crash.
The figure measured goes in docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg

from adapters.sms.simulator import SimulatorSettings, SmscSimulator
from tests.gateway_process import GatewayProcess, free_port, gateway_env, operator
from tests.reliability_setup import ledger_problems, make_tenant, post_batch, wait_all_final

N = 3000
WORKERS, CLAIM_BATCH, LEASE = 2, 64, 3


async def test_kill9_while_dispatching_nothing_lost_duplicates_bounded(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    key_file = tmp_path / "master.key"
    tenant = await make_tenant(pool, database_url, key_file)
    sim = SmscSimulator(SimulatorSettings(port=0, seed=9, dlr_delay_seconds=0.05))
    await sim.start()
    env = gateway_env(
        database_url,
        str(key_file),
        free_port(),
        [operator(sim.port, tps=600.0, window=20)],
        PAYAM_SMS_DISPATCH_WORKERS=str(WORKERS),
        PAYAM_SMS_CLAIM_BATCH=str(CLAIM_BATCH),
        PAYAM_SMS_LEASE_SECONDS=str(LEASE),
    )
    gw = GatewayProcess(env, tmp_path / "gateway.log")
    try:
        gw.start()
        await gw.wait_ready()
        await post_batch(gw.url, tenant, 0, N)
        # Kill in the middle of the stream of submits, not before it starts or after it ends.
        deadline = time.monotonic() + 60
        while sim.ledger.messages < N // 3:
            assert time.monotonic() < deadline, f"dispatch stalled at {sim.submits}"
            await asyncio.sleep(0.01)
        gw.kill9()
        at_kill = sim.ledger.messages
        assert at_kill < N, "the kill came after dispatch ended; it proves nothing"
        gw.start()
        await gw.wait_ready()
        recover = await wait_all_final(pool, N, timeout=120)
        problems = await ledger_problems(pool)
        assert problems == {"not_final": 0, "final_events_not_one": 0, "queue": 0}
        delivered = await pool.fetchval("SELECT count(*) FROM messages WHERE status='delivered'")
        assert delivered == N  # the simulator delivers everything: none expired or rejected
        assert sim.ledger.messages == N  # the SMSC saw every message
        bound = (WORKERS + 1) * CLAIM_BATCH
        duplicates = sim.ledger.duplicates
        assert duplicates <= bound, (duplicates, bound)
        print(
            f"\nRELIABILITY crash: N={N} killed_at={at_kill} duplicates={duplicates} "
            f"bound={bound} recover_s={recover:.1f}"
        )
    finally:
        gw.stop()
        await sim.stop()
