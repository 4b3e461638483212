"""Short-lived caches of rows the send path reads on every request (keys, senders, policies).

Each entry lives ``ttl`` seconds; the transaction that commits a message checks the same facts
again, so a stale entry can delay a change by at most ``ttl``, never let a refused message out.
When an entry expires under load, the requests arriving meanwhile wait for ONE lookup instead
of each running their own: without that, 64 concurrent clients turned every expiry into 64
identical queries (seen in the benchmark (a) profile, docs/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ShortCache(Generic[K, V]):
    def __init__(
        self,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
        keep: Callable[[V], bool] | None = None,
    ) -> None:
        """``keep``: whether a loaded value is cached (e.g. not a "no such key" answer, so that
        a key created a moment later is found at once)."""
        self._ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._keep = keep
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        hit = self._entries.get(key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        loading = self._loading.get(key)
        if loading is not None:
            # shield: one waiter's cancellation must not cancel the lookup the others wait on.
            return await asyncio.shield(loading)
        fut: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = fut
        try:
            value = await load()
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters re-raise it, no "never retrieved" warning
            raise
        finally:
            self._loading.pop(key, None)
        fut.set_result(value)
        self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        if self._keep is not None and not self._keep(value):
            self._entries.pop(key, None)
            return
        if len(self._entries) >= self._max:
            self._entries.clear()  # bounded memory; a cold cache costs one lookup per key
        self._entries[key] = (self._clock() + self._ttl, value)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
