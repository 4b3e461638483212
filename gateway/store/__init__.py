"""The storage layer: the only package that holds SQL.

``Store`` groups the repositories over one executor. ``store.transaction()`` yields a Store whose
repositories all run in the same database transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import asyncpg

from gateway.store.agencies import AgencyStore
from gateway.store.audit import AuditChainStore, AuditStore
from gateway.store.callbacks import CallbackStore
from gateway.store.credentials import CredentialStore
from gateway.store.data_keys import DataKeyStore
from gateway.store.db import Executor, transaction
from gateway.store.leases import LeaseStore
from gateway.store.letters import LetterStore
from gateway.store.messages import MessageStore
from gateway.store.numbering import NumberingStore
from gateway.store.operations import OperationsStore
from gateway.store.queue import QueueStore
from gateway.store.receipts import ReceiptStore
from gateway.store.replies import ReplyStore
from gateway.store.reports import ReportStore
from gateway.store.ussd import UssdStore
from gateway.store.ussd_push import UssdPushStore
from gateway.store.verification import VerificationStore

if TYPE_CHECKING:
    from gateway.vault import Vault


class Store:
    def __init__(
        self, pool: asyncpg.Pool, executor: Executor | None = None, vault: Vault | None = None
    ) -> None:
        self.pool = pool
        self.db = executor or Executor(pool)
        self.agencies = AgencyStore(self.db)
        self.credentials = CredentialStore(self.db)
        self.numbering = NumberingStore(self.db)
        self.audit = AuditStore(self.db)
        self.audit_chain = AuditChainStore(self.db)
        self.messages = MessageStore(self.db)
        self.queue = QueueStore(self.db)
        self.receipts = ReceiptStore(self.db)
        self.replies = ReplyStore(self.db)
        self.callbacks = CallbackStore(self.db)
        self.ussd = UssdStore(self.db)
        self.operations = OperationsStore(self.db)
        self.reports = ReportStore(self.db)
        self.letters = LetterStore(self.db)
        self.ussd_pushes = UssdPushStore(self.db)
        self.verification = VerificationStore(self.db)
        self.leases = LeaseStore(self.db)
        self.data_keys = DataKeyStore(self.db)
        self.vault: Vault | None = None
        if vault is not None:
            self.use_vault(vault)

    def use_vault(self, vault: Vault) -> None:
        """Seal texts from now on (encryption at rest, docs/TRUST.md); transactions inherit it."""
        self.vault = vault
        for repo in (self.messages, self.queue, self.replies, self.letters, self.callbacks):
            repo.vault = vault

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Store]:
        async with transaction(self.pool) as tx:
            yield Store(self.pool, tx, self.vault)

    async def ping(self) -> bool:
        value = await self.db.fetchval("ping", "SELECT 1")
        return bool(value == 1)


__all__ = ["Store"]
