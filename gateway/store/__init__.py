"""The storage layer: the only package that holds SQL.

``Store`` groups the repositories over one executor. ``store.transaction()`` yields a Store whose
repositories all run in the same database transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from gateway.store.agencies import AgencyStore
from gateway.store.audit import AuditStore
from gateway.store.callbacks import CallbackStore
from gateway.store.credentials import CredentialStore
from gateway.store.db import Executor, transaction
from gateway.store.letters import LetterStore
from gateway.store.messages import MessageStore
from gateway.store.numbering import NumberingStore
from gateway.store.queue import QueueStore
from gateway.store.receipts import ReceiptStore
from gateway.store.replies import ReplyStore
from gateway.store.ussd import UssdStore


class Store:
    def __init__(self, pool: asyncpg.Pool, executor: Executor | None = None) -> None:
        self.pool = pool
        self.db = executor or Executor(pool)
        self.agencies = AgencyStore(self.db)
        self.credentials = CredentialStore(self.db)
        self.numbering = NumberingStore(self.db)
        self.audit = AuditStore(self.db)
        self.messages = MessageStore(self.db)
        self.queue = QueueStore(self.db)
        self.receipts = ReceiptStore(self.db)
        self.replies = ReplyStore(self.db)
        self.callbacks = CallbackStore(self.db)
        self.ussd = UssdStore(self.db)
        self.letters = LetterStore(self.db)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Store]:
        async with transaction(self.pool) as tx:
            yield Store(self.pool, tx)

    async def ping(self) -> bool:
        value = await self.db.fetchval("ping", "SELECT 1")
        return bool(value == 1)


__all__ = ["Store"]
