"""Group commit for single messages: the hot path of POST /v1/messages.

Each request is checked on its own (token signature, fields, recipient, sender, parts); what
needs the database is done for many requests at once, in ONE call and one transaction
(``payam_accept_messages``, migration accept_function): record the tokens' ``jti`` (replays
refused), re-check that keys are live and agencies active, that senders are still allocated,
opt-outs, duplicates and quotas, then insert messages and queue rows. Every request gets its
own answer — 202 only once that transaction has committed, or its own refusal code. Under
load this turns ~8 round trips and a commit per message into one round trip per batch; idle,
a request is committed at once with no added wait.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

import orjson

from gateway.auth import Authenticator, TokenUse
from gateway.errors import Problem
from gateway.metrics import SMS_ACCEPTED
from gateway.status import PRIORITY_NAMES
from gateway.store import Store
from gateway.store.models import NewMessage

log = logging.getLogger(__name__)

MAX_BATCH = 256


@dataclass(eq=False)
class Pending:
    use: TokenUse
    message: NewMessage
    check_opt_out: bool
    duplicate_since: datetime | None
    day: date
    quota: int
    result: asyncio.Future[bytes] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _dup_key(p: Pending) -> tuple[uuid.UUID, str, str]:
    return (p.message.agency_id, p.message.recipient, p.message.body)


def _jti_key(p: Pending) -> tuple[str, str]:
    return (p.use.principal.key.key_id, p.use.jti)


class SendPipeline:
    """Up to IN_FLIGHT transactions at once: while one waits for its commit (the WAL flush),
    the next batch is already being admitted and inserted, so the event loop is not idle.

    Two batches in flight must not hide a duplicate or a replay from each other (READ
    COMMITTED does not see the other's rows). In the database, the jti's primary key and an
    advisory lock per (agency, recipient, text) make the second wait for the first's commit,
    which also holds between processes and nodes; here, a request whose text-and-recipient or
    token id is in a batch still in flight waits for the next batch, so that it does not wait
    on a lock inside the database. Quota rows are locked in one order (agency, day) so that
    two transactions never deadlock on them."""

    IN_FLIGHT = 2

    def __init__(self, store: Store, auth: Authenticator) -> None:
        self._store = store
        self._auth = auth
        self._pending: list[Pending] = []
        self._drainers = 0
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        self._busy_dups: set[tuple[uuid.UUID, str, str]] = set()
        self._busy_jtis: set[tuple[str, str]] = set()

    async def submit(self, item: Pending) -> bytes:
        self._pending.append(item)
        if self._drainers < self.IN_FLIGHT:
            self._drainers += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await item.result

    def _take(self) -> list[Pending]:
        batch: list[Pending] = []
        held: list[Pending] = []
        for p in self._pending:
            if len(batch) >= MAX_BATCH or (
                _jti_key(p) in self._busy_jtis
                or (p.duplicate_since is not None and _dup_key(p) in self._busy_dups)
            ):
                held.append(p)
                continue
            batch.append(p)
        self._pending = held
        return batch

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._take()
                if not batch:
                    return  # everything left waits on a batch in flight; its drainer goes on
                dups = {_dup_key(p) for p in batch if p.duplicate_since is not None}
                jtis = {_jti_key(p) for p in batch}
                self._busy_dups |= dups
                self._busy_jtis |= jtis
                try:
                    await self._settle(batch)
                finally:
                    self._busy_dups -= dups
                    self._busy_jtis -= jtis
        finally:
            self._drainers -= 1

    async def _settle(self, batch: list[Pending]) -> None:
        try:
            refused = await self._commit(batch)
        except Exception as exc:
            log.exception("send batch of %d failed", len(batch))
            for p in batch:
                if not p.result.done():
                    p.result.set_exception(Problem("service_unavailable", type(exc).__name__))
            return
        for p in batch:
            problem = refused.get(id(p))
            if problem is not None:
                if problem.code in _AUTH_CODES:
                    await self._auth.refused(
                        problem,
                        key_id=p.use.principal.key.key_id,
                        client_addr=p.use.client_addr,
                    )
                p.result.set_exception(problem)

    async def _commit(self, batch: list[Pending]) -> dict[int, Problem]:
        """One database call, one transaction, for the whole batch (``accept_many``): token
        ids recorded, keys, agencies, senders and opt-outs checked, duplicates, messages and
        queue rows inserted, quotas counted last in (agency, day) order."""
        codes, created = await self._store.messages.accept_many(
            [p.message for p in batch],
            jtis=[p.use.jti for p in batch],
            expires=[p.use.expires for p in batch],
            check_opt_out=[p.check_opt_out for p in batch],
            duplicate_since=[p.duplicate_since for p in batch],
            days=[p.day for p in batch],
            quotas=[p.quota for p in batch],
        )
        refused: dict[int, Problem] = {}
        for p, code in zip(batch, codes, strict=True):
            if code is not None:
                refused[id(p)] = _problem(code, p)
                continue
            m = p.message
            SMS_ACCEPTED.labels(str(m.agency_id), PRIORITY_NAMES[m.priority]).inc()
            p.result.set_result(orjson.dumps(accepted_view(m, created)))
        return refused


_DETAILS = {
    "token_replayed": "every request needs a fresh jti",
    "sender_not_registered": "the sender was released",
    "recipient_opted_out": "the recipient opted out of this agency's messages",
    "duplicate_message": "same text to the same recipient",
}


def _problem(code: str, p: Pending) -> Problem:
    if code == "daily_quota_exceeded":
        return Problem(code, f"daily quota of {p.quota} fragments")
    detail = _DETAILS.get(code)
    return Problem(code, detail) if detail else Problem(code)


_AUTH_CODES = frozenset({"token_replayed", "key_revoked", "agency_suspended"})


def accepted_view(m: NewMessage, created: datetime) -> dict[str, object]:
    return {
        "id": str(m.id),
        "status": m.status,
        "recipient": m.recipient,
        "sender": m.sender,
        "parts": m.parts,
        "encoding": m.encoding,
        "priority": PRIORITY_NAMES[m.priority],
        "mandatory": m.mandatory,
        "test": m.is_test,
        "send_at": m.send_at.isoformat() if m.send_at else None,
        "valid_until": m.valid_until.isoformat(),
        "client_ref": m.client_ref,
        "created_at": created.isoformat(),
    }
