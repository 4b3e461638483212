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
import contextlib
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

import orjson

from gateway.auth import Authenticator, TokenUse
from gateway.errors import Problem
from gateway.metrics import ACCEPT_BATCH_SIZE, SMS_ACCEPTED
from gateway.status import PRIORITY_NAMES
from gateway.store import Store
from gateway.store.models import NewMessage
from gateway.store.verification import CodeRecord

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
    # A verification code to store in the same transaction (gateway/verification.py).
    verification: CodeRecord | None = None
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
    # Batching under load (measured with benchmark (a), docs/PERFORMANCE.md): the second
    # drainer used to take whatever had arrived since the first batch left, and a drainer
    # finishing a batch took the one or two requests that were back already, so 38 % of
    # batches held ONE message (mean 7.6) and each paid the accept function's cost per call.
    # Now a second transaction starts only once OVERLAP_MIN requests wait; and when recent
    # batches held at least LINGER_FROM requests (many clients are sending: ``_recent`` is the
    # last batch's size, or half the previous figure if that is more) and one was answered
    # less than BUSY_WITHIN seconds ago, a drainer waits up to LINGER seconds for that many
    # requests (at most OVERLAP_MIN) before it takes fewer. A lone client sending one request
    # after another makes batches of one, so its requests do not wait (after a burst, a few
    # wait at most LINGER each); idle, a request is committed at once.
    OVERLAP_MIN = 16
    LINGER_FROM = 4
    LINGER = 0.003
    BUSY_WITHIN = 0.02

    def __init__(self, store: Store, auth: Authenticator) -> None:
        self._store = store
        self._auth = auth
        self._pending: list[Pending] = []
        self._drainers = 0
        self._settling = 0  # batches between take and answer
        # Set once self._want requests wait; a lingering drainer waits on it.
        self._enough = asyncio.Event()
        self._last_done = -1e9  # loop time the last batch was answered
        self._recent = 0  # recent batch size, see above
        self.lingered = 0  # times a drainer waited for more requests (tests read it)
        self._want = self.OVERLAP_MIN
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        self._busy_dups: set[tuple[uuid.UUID, str, str]] = set()
        self._busy_jtis: set[tuple[str, str]] = set()

    async def submit(self, item: Pending) -> bytes:
        self._pending.append(item)
        if len(self._pending) >= self._want:
            self._enough.set()
        if self._drainers == 0 or (
            self._drainers < self.IN_FLIGHT and len(self._pending) >= self.OVERLAP_MIN
        ):
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
                if self._settling and len(self._pending) < self.OVERLAP_MIN:
                    return  # a batch is in flight; its drainer takes these when it is done
                want = min(self.OVERLAP_MIN, self._recent)
                if (
                    want >= self.LINGER_FROM
                    and len(self._pending) < want
                    and asyncio.get_running_loop().time() - self._last_done < self.BUSY_WITHIN
                ):
                    self._want = want
                    self.lingered += 1
                    self._enough.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.LINGER):
                            await self._enough.wait()
                    self._want = self.OVERLAP_MIN
                batch = self._take()
                if not batch:
                    return  # everything left waits on a batch in flight; its drainer goes on
                ACCEPT_BATCH_SIZE.observe(len(batch))
                dups = {_dup_key(p) for p in batch if p.duplicate_since is not None}
                jtis = {_jti_key(p) for p in batch}
                self._busy_dups |= dups
                self._busy_jtis |= jtis
                self._settling += 1
                try:
                    await self._settle(batch)
                finally:
                    self._settling -= 1
                    self._last_done = asyncio.get_running_loop().time()
                    self._recent = max(len(batch), self._recent // 2)
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
        if any(p.verification is not None for p in batch):
            # Codes must commit with their messages: one transaction around both.
            async with self._store.transaction() as tx:
                codes, created = await self._accept(tx, batch)
                await tx.verification.insert(
                    [
                        p.verification
                        for p, code in zip(batch, codes, strict=True)
                        if code is None and p.verification is not None
                    ]
                )
        else:
            codes, created = await self._accept(self._store, batch)
        refused: dict[int, Problem] = {}
        accepted: Counter[tuple[uuid.UUID, int]] = Counter()
        for p, code in zip(batch, codes, strict=True):
            if code is not None:
                refused[id(p)] = _problem(code, p)
                continue
            m = p.message
            accepted[m.agency_id, m.priority] += 1
            p.result.set_result(orjson.dumps(accepted_view(m, created)))
        # Counted once per (agency, priority) in the batch, not per message: in the
        # multiprocess mode of prometheus-client each increment is a locked write to a file.
        for (agency_id, priority), n in accepted.items():
            SMS_ACCEPTED.labels(str(agency_id), PRIORITY_NAMES[priority]).inc(n)
        return refused

    @staticmethod
    async def _accept(store: Store, batch: list[Pending]) -> tuple[list[str | None], datetime]:
        return await store.messages.accept_many(
            [p.message for p in batch],
            jtis=[p.use.jti for p in batch],
            expires=[p.use.expires for p in batch],
            check_opt_out=[p.check_opt_out for p in batch],
            duplicate_since=[p.duplicate_since for p in batch],
            days=[p.day for p in batch],
            quotas=[p.quota for p in batch],
        )


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
    """The 202 body. Datetimes are left to orjson, which writes them exactly as isoformat()
    does (RFC 3339 with the offset) without a Python call per field."""
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
        "send_at": m.send_at,
        "valid_until": m.valid_until,
        "client_ref": m.client_ref,
        "created_at": created,
    }
