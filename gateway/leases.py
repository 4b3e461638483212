"""Several gateway nodes on one database: each SMPP bind is held by exactly one node.

Every configured bind of every operator is a slot ``smpp:<operator>:<n>`` in the ``leases``
table (gateway/store/leases.py). Each node renews a heartbeat ``node:<holder>`` and, every
third of the lease time, renews the slots it holds and takes free or expired ones up to its
fair share (ceil(slots / live nodes)), giving one back per round when it holds more (a node
joined). A node that dies stops renewing: after the lease time the others take its slots, and
its claimed messages come back to the queue after ``sms.lease_seconds`` (store/queue.py).

Safety: a node stops a bind as soon as it fails to renew it, and when the database cannot be
reached it stops every bind before its leases could have expired (a margin of one renewal
round), so two nodes never believe they hold the same bind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
from collections.abc import Mapping

from adapters.sms.esme import OperatorClient
from gateway.store import Store

log = logging.getLogger(__name__)

SLOT_PREFIX = "smpp:"
NODE_PREFIX = "node:"


def node_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class BindLeases:
    def __init__(
        self,
        store: Store,
        clients: Mapping[str, OperatorClient],
        ttl_seconds: float,
        holder: str | None = None,
    ) -> None:
        self._store = store
        self._clients = clients
        self._ttl = ttl_seconds
        self._every = ttl_seconds / 3
        self.holder = holder or node_identity()
        self._slots = [
            (f"{SLOT_PREFIX}{name}:{i}", name, i)
            for name, client in clients.items()
            for i in range(len(client.settings.binds))
        ]
        self._held: dict[str, float] = {}  # slot → local deadline to stop by
        self._stopping = asyncio.Event()

    @property
    def held(self) -> list[str]:
        return sorted(self._held)

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.round()
            except Exception as exc:
                log.warning("bind lease round failed: %s", type(exc).__name__)
                await self._expire_local()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._every)

    async def round(self) -> None:
        loop = asyncio.get_running_loop()
        leases = self._store.leases
        await leases.acquire(NODE_PREFIX + self.holder, self.holder, self._ttl)
        nodes = max(1, len(await leases.live(NODE_PREFIX)))
        share = math.ceil(len(self._slots) / nodes)
        # Stop by one renewal round before the lease can expire in the database.
        deadline = loop.time() + self._ttl - self._every
        for slot, operator, index in self._slots:
            if slot in self._held:
                if await leases.acquire(slot, self.holder, self._ttl):
                    self._held[slot] = deadline
                else:  # someone else has it (we were too slow to renew): stop at once
                    await self._drop(slot, operator, index, release=False)
        if len(self._held) > share:  # a node joined: hand one slot back per round
            slot = max(self._held)
            _, operator, index = next(s for s in self._slots if s[0] == slot)
            await self._drop(slot, operator, index, release=True)
        for slot, operator, index in self._slots:
            if len(self._held) >= share:
                break
            if slot not in self._held and await leases.acquire(slot, self.holder, self._ttl):
                self._held[slot] = deadline
                log.info("bind lease %s taken by this node", slot)
                await self._clients[operator].start_bind(index)

    async def _drop(self, slot: str, operator: str, index: int, *, release: bool) -> None:
        self._held.pop(slot, None)
        log.info("bind lease %s given up by this node", slot)
        await self._clients[operator].stop_bind(index)
        if release:
            await self._store.leases.release(slot, self.holder)

    async def _expire_local(self) -> None:
        """The database is unreachable: stop binds whose lease may lapse before we renew."""
        now = asyncio.get_running_loop().time()
        for slot, operator, index in self._slots:
            if slot in self._held and now >= self._held[slot]:
                self._held.pop(slot, None)
                log.warning("bind lease %s not renewed in time; unbinding", slot)
                await self._clients[operator].stop_bind(index)

    async def stop(self) -> None:
        """Release every lease so the other nodes take the binds at once (graceful stop)."""
        self._stopping.set()
        for slot in list(self._held):
            with contextlib.suppress(Exception):
                await self._store.leases.release(slot, self.holder)
        self._held.clear()
        with contextlib.suppress(Exception):
            await self._store.leases.release(NODE_PREFIX + self.holder, self.holder)
