"""A priority gate: at most ``capacity`` holders; waiters are served by priority, then arrival.

The dispatcher holds one slot per submit_sm in flight to an operator, so the client's window
never queues more than it can send, and a crisis message waiting for a slot goes ahead of the
bulk messages already waiting (the lane's pre-emption reaches down to the wire).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class PriorityGate:
    def __init__(self, capacity: int) -> None:
        self._free = capacity
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, priority: int) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed to us just as we were cancelled
            else:
                self._waiters = [w for w in self._waiters if w[2] is not fut]
                heapq.heapify(self._waiters)
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # the slot passes straight to the next waiter
                return
        self._free += 1
