"""The gauges gateway/ops_metrics.py samples from the database, against known rows; and the
operations flags reaching another node through the database."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from gateway import ops_metrics
from gateway.api.app import build_app
from gateway.config import Config
from gateway.runtime import DEPTH_BUDGET, GAUGE_PERIOD, SmsRuntime, next_depth_delay
from gateway.sealing import Sealer
from gateway.sending import tehran_day
from gateway.services import Services, build_services
from gateway.store import Store
from tests.conftest import make_agency
from tests.sms_harness import sms_config, wait_for
from tests.test_reports import _insert, percentile_cont


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_sampled_gauges_match_the_database(services: Services, pool: asyncpg.Pool) -> None:
    a = await make_agency(services, daily_fragment_quota=200)
    now = datetime.now(UTC)
    assert await services.store.messages.reserve_fragments(a, tehran_day(now), 50, 200)
    await services.store.messages.set_opt_out(a, "+989121111111", True)
    await services.store.operations.set_sla(a, 7.5, 0.8)
    latencies = [float(i) for i in range(1, 41)]
    for lat in latencies:
        await _insert(pool, a, now - timedelta(seconds=100), "delivered", lat)
    for _ in range(10):
        await _insert(pool, a, now - timedelta(seconds=100), "undeliverable", 5.0)
    await _insert(pool, a, now - timedelta(hours=3), "undeliverable", 5.0)  # outside the window
    await ops_metrics.sample(services)
    agency = str(a)
    assert _value("payam_database_up") == 1
    assert _value("payam_agency_quota_used_ratio", agency=agency) == 0.25
    assert _value("payam_agency_opt_outs", agency=agency) == 1
    assert _value("payam_agency_suspended", agency=agency) == 0
    assert _value("payam_agency_sla_latency_seconds", agency=agency) == 7.5
    assert _value("payam_agency_sla_delivery_ratio", agency=agency) == 0.8
    assert _value("payam_agency_delivery_ratio", agency=agency) == 40 / 50
    for q in (0.5, 0.95, 0.99):
        got = _value("payam_agency_delivery_latency_seconds", agency=agency, quantile=str(q))
        assert got is not None
        # Histogram buckets 5 % wide (gateway/delivery_window.py).
        assert abs(got - percentile_cont(latencies, q)) <= 0.05 * percentile_cont(latencies, q)
    # The next sample reads only what finished since; the window's figures stay.
    await ops_metrics.sample(services)
    assert _value("payam_agency_delivery_ratio", agency=agency) == 40 / 50
    # Once nothing of the agency finished in the window, its old figures are gone.
    window = timedelta(seconds=services.config.ops.sample_window_seconds)
    later = now + window + timedelta(minutes=5)
    await ops_metrics.sample(services, now=later)
    assert _value("payam_agency_delivery_ratio", agency=agency) is None
    assert _value("payam_agency_delivery_latency_seconds", agency=agency, quantile="0.95") is None
    # The quota is per day in Tehran: if `later` is past midnight there, the new day's quota is
    # untouched. (CI once ran this twenty minutes before midnight in Tehran.)
    same_day = tehran_day(later) == tehran_day(now)
    assert _value("payam_agency_quota_used_ratio", agency=agency) == (0.25 if same_day else 0.0)


async def test_database_down_is_reported_not_hidden(config: Config, sealer: Sealer) -> None:
    pool = await asyncpg.create_pool(config.database.url, min_size=1, max_size=1)
    assert pool is not None
    await pool.close()
    await ops_metrics.sample(build_services(config, Store(pool), sealer))
    assert _value("payam_database_up") == 0


async def test_a_pause_set_on_one_node_holds_on_another(
    config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any
) -> None:
    cfg = sms_config(config, 1)
    cfg = replace(cfg, ops=replace(cfg.ops, refresh_seconds=0.2))
    one = build_services(cfg, Store(pool), sealer)
    other = build_services(cfg, Store(pool), sealer)
    await aiohttp_client(build_app(other))  # its background refresh runs
    await one.ops.set_operator_paused("mci", True, "", actor="t", addr="")
    await one.ops.set_crisis(True, "", actor="t", addr="")

    async def seen() -> bool:
        return "mci" in other.ops.state.paused and other.ops.state.crisis

    await wait_for(seen, timeout=5)
    await one.ops.set_operator_paused("mci", False, "", actor="t", addr="")
    await one.ops.set_crisis(False, "", actor="t", addr="")

    async def cleared() -> bool:
        return not other.ops.state.paused and not other.ops.state.crisis

    await wait_for(cleared, timeout=5)


def test_a_slow_queue_count_is_taken_less_often() -> None:
    assert next_depth_delay(0.01) == GAUGE_PERIOD
    # 234 ms: the count with 1,000,000 queued, measured; at most 5 % of the time.
    assert next_depth_delay(0.234) == pytest.approx(0.234 / DEPTH_BUDGET)
    assert 0.234 / next_depth_delay(0.234) <= DEPTH_BUDGET


async def test_the_gauge_loop_backs_off_from_a_slow_count(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real count against the database, made slow: in 3 s the loop counts once, not twice,
    while the in-memory gauges keep their 2 s period."""
    queue = services.store.queue
    real = queue.depths
    calls: list[float] = []

    async def slow_depths() -> list[tuple[int, int, float]]:
        calls.append(asyncio.get_running_loop().time())
        rows = await real()
        await asyncio.sleep(0.3)  # as if the queue held about 1.3 million rows
        return rows

    monkeypatch.setattr(queue, "depths", slow_depths)
    task = asyncio.create_task(SmsRuntime(services)._gauges())
    await asyncio.sleep(3.0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(calls) == 1
    assert _value("payam_sms_queue_depth", lane="crisis") == 0
