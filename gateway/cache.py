"""Short-lived caches of rows the send path reads on every request (keys, senders, policies).

Each entry lives ``ttl`` seconds; the transaction that commits a message checks the same facts
again, so a stale entry can delay a change by at most ``ttl``, never let a refused message out.
When an entry expires under load, the requests arriving meanwhile wait for ONE lookup instead
of each running their own: without that, 64 concurrent clients turned every expiry into 64
identical queries (seen in the benchmark (a) profile, docs/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = logging.getLogger(__name__)


class ShortCache(Generic[K, V]):
    def __init__(
        self,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
        keep: Callable[[V], bool] | None = None,
        stale_for: float = 0.0,
    ) -> None:
        """``keep``: whether a loaded value is cached (e.g. not a "no such key" answer, so that
        a key created a moment later is found at once). ``stale_for``: for that long after
        expiry, the old value is still answered while one refresh runs in the background, so
        no request waits for it; only for facts that the committing transaction checks again
        (a stale entry then costs a refusal there, never a wrong acceptance)."""
        self._ttl = ttl
        self._stale_for = stale_for
        self._refreshes: set[asyncio.Task[None]] = set()  # the loop keeps weak references
        self._clock = clock
        self._max = max_entries
        self._keep = keep
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        hit = self._entries.get(key)
        if hit is not None:
            now = self._clock()
            if hit[0] > now:
                return hit[1]
            if hit[0] + self._stale_for > now:
                if key not in self._loading:
                    fut = self._begin(key)  # now, so that the next request sees it running
                    task = asyncio.get_running_loop().create_task(self._refresh(key, load, fut))
                    self._refreshes.add(task)
                    task.add_done_callback(self._refreshes.discard)
                return hit[1]
        loading = self._loading.get(key)
        if loading is not None:
            # shield: one waiter's cancellation must not cancel the lookup the others wait on.
            return await asyncio.shield(loading)
        return await self._load(key, load)

    def _begin(self, key: K) -> asyncio.Future[V]:
        fut: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = fut
        return fut

    async def _load(
        self, key: K, load: Callable[[], Awaitable[V]], fut: asyncio.Future[V] | None = None
    ) -> V:
        if fut is None:
            fut = self._begin(key)
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

    async def _refresh(
        self, key: K, load: Callable[[], Awaitable[V]], fut: asyncio.Future[V]
    ) -> None:
        try:
            await self._load(key, load, fut)
        except Exception as exc:
            # The stale value still ends at its time; the next request then loads (and sees
            # the error itself).
            log.debug("background refresh failed: %s", type(exc).__name__)

    def put(self, key: K, value: V) -> None:
        if self._keep is not None and not self._keep(value):
            self._entries.pop(key, None)
            return
        if len(self._entries) >= self._max:
            self._entries.clear()  # bounded memory; a cold cache costs one lookup per key
        self._entries[key] = (self._clock() + self._ttl, value)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
