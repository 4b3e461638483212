"""gateway/delivery_window.py: the SLA window as a ring of latency histograms, against the
exact figures over the same messages in PostgreSQL."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from gateway.delivery_window import (
    BASE_SECONDS,
    GROWTH,
    LAG,
    NOT_DELIVERED,
    DeliveryWindow,
    bucket_of,
    quantile,
)
from gateway.services import Services
from gateway.store.operations import OperationsStore
from tests.conftest import make_agency
from tests.test_reports import _insert, percentile_cont


def test_quantiles_are_within_a_bucket_of_the_exact_ones() -> None:
    rng = random.Random(7)
    latencies = [rng.lognormvariate(1.0, 1.2) for _ in range(5000)]
    buckets: dict[int, int] = {}
    for lat in latencies:
        buckets[bucket_of(lat)] = buckets.get(bucket_of(lat), 0) + 1
    for q in (0.5, 0.95, 0.99):
        exact = percentile_cont(latencies, q)
        got = quantile(buckets, q)
        assert got is not None
        assert abs(got - exact) <= (GROWTH - 1) * exact


def test_slices_leave_the_window_and_a_gap_rereads_it() -> None:
    w = DeliveryWindow()
    w.configure(timedelta(seconds=900))
    a = uuid.uuid4()
    t0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    since, until = w.next_range(t0)
    assert (since, until) == (t0 - LAG - timedelta(seconds=900), t0 - LAG)
    w.add(until, [(a, bucket_of(2.0), 8), (a, NOT_DELIVERED, 2)])
    since2, until2 = w.next_range(t0 + timedelta(seconds=30))
    assert since2 == until  # contiguous: nothing read twice, nothing skipped
    w.add(until2, [(a, bucket_of(4.0), 10)])
    f = w.figures((0.5,))[a]
    assert (f.finished, f.delivered) == (20, 18)
    # 900 s later the first slice is out of the window.
    _, until3 = w.next_range(t0 + timedelta(seconds=905))
    w.add(until3, [])
    f = w.figures((0.5,))[a]
    assert (f.finished, f.delivered) == (10, 10)
    # After a gap longer than the window (a node down), the whole window is read again.
    since4, until4 = w.next_range(t0 + timedelta(hours=2))
    assert until4 - since4 == timedelta(seconds=900)
    w.add(until4, [])
    assert w.figures((0.5,)) == {}


async def test_the_sql_buckets_match_the_python_ones(
    services: Services, pool: asyncpg.Pool
) -> None:
    a = await make_agency(services)
    now = datetime.now(UTC)
    latencies = [0.0004, 0.2, 1.0, 1.049, 1.051, 7.5, 300.0, 86_400.0]
    for lat in latencies:
        await _insert(pool, a, now - timedelta(days=2), "delivered", lat)
    await _insert(pool, a, now - timedelta(days=2), "undeliverable", 5.0)
    rows = await OperationsStore(services.store.db).delivery_histogram(
        now - timedelta(days=3), now, BASE_SECONDS, GROWTH
    )
    got = sorted((b, n) for agency, b, n in rows if agency == a)
    want: dict[int, int] = {NOT_DELIVERED: 1}
    for lat in latencies:
        want[bucket_of(lat)] = want.get(bucket_of(lat), 0) + 1
    assert got == sorted(want.items())
