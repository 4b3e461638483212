"""gateway/cache.py: one lookup per expiry however many requests ask, bounded life, and
"no such key" answers not kept."""

from __future__ import annotations

import asyncio

import pytest

from gateway.cache import ShortCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_misses_share_one_lookup_and_the_value_expires() -> None:
    clock = Clock()
    cache: ShortCache[str, int] = ShortCache(1.0, clock=clock)
    calls = 0
    release = asyncio.Event()

    async def load() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    waiters = [asyncio.create_task(cache.get("k", load)) for _ in range(64)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == [1] * 64
    assert calls == 1
    assert await cache.get("k", load) == 1  # still fresh
    clock.now += 1.01
    assert await cache.get("k", load) == 2
    assert calls == 2


async def test_a_failed_lookup_reaches_every_waiter_and_is_not_kept() -> None:
    cache: ShortCache[str, int] = ShortCache(1.0)
    release = asyncio.Event()
    calls = 0

    async def broken() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        raise ConnectionError("database away")

    waiters = [asyncio.create_task(cache.get("k", broken)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert calls == 1

    async def fine() -> int:
        return 7

    assert await cache.get("k", fine) == 7


async def test_one_waiter_cancelled_does_not_cancel_the_others() -> None:
    cache: ShortCache[str, int] = ShortCache(1.0)
    release = asyncio.Event()

    async def load() -> int:
        await release.wait()
        return 5

    first = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0)
    second.cancel()
    release.set()
    assert await first == 5
    with pytest.raises(asyncio.CancelledError):
        await second


async def test_values_refused_by_keep_are_looked_up_again() -> None:
    cache: ShortCache[str, int | None] = ShortCache(60.0, keep=lambda v: v is not None)
    answers: list[int | None] = [None, 3]

    async def load() -> int | None:
        return answers.pop(0)

    assert await cache.get("k", load) is None
    assert await cache.get("k", load) == 3  # not cached: the key exists now
    assert await cache.get("k", load) == 3  # cached


async def test_forget_and_bounded_size() -> None:
    cache: ShortCache[int, int] = ShortCache(60.0, max_entries=2)
    n = 0

    async def load() -> int:
        nonlocal n
        n += 1
        return n

    assert await cache.get(1, load) == 1
    cache.forget(1)
    assert await cache.get(1, load) == 2
    await cache.get(2, load)
    await cache.get(3, load)  # the third entry clears the full cache
    assert await cache.get(1, load) == 5


async def test_a_stale_value_is_answered_while_one_refresh_runs() -> None:
    clock = Clock()
    cache: ShortCache[str, int] = ShortCache(1.0, clock=clock, stale_for=1.0)
    release = asyncio.Event()
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            await release.wait()
        return calls

    assert await cache.get("k", load) == 1
    clock.now += 1.5  # expired, within the stale time
    assert [await cache.get("k", load) for _ in range(10)] == [1] * 10  # nobody waits
    await asyncio.sleep(0)
    assert calls == 2  # one refresh for all of them
    release.set()
    await asyncio.sleep(0.01)
    assert await cache.get("k", load) == 2
    clock.now += 2.5  # past the stale time too: the caller waits for a fresh value
    release.clear()
    waiter = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    release.set()
    assert await waiter == 3
