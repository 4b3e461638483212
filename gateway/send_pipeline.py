"""Group commit for single messages: the hot path of POST /v1/messages.

Each request is checked on its own (token signature, fields, recipient, sender, parts); what
needs the database is done for many requests at once, in ONE transaction: record the tokens'
``jti`` (replays refused), re-check that keys are live and agencies active, that senders are
still allocated, opt-outs, duplicates and quotas, then insert messages, queue rows and events.
Every request gets its own answer — 202 only once that transaction has committed, or its own
refusal code. Under load this turns ~8 round trips and a commit per message into a handful per
batch; idle, a request is committed at once with no added wait.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
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


class _OverQuota(Exception):
    """A group went over its quota in the optimistic pass: roll back, admit one by one."""


def _dup_key(p: Pending) -> tuple[uuid.UUID, str, str]:
    return (p.message.agency_id, p.message.recipient, p.message.body)


def _jti_key(p: Pending) -> tuple[str, str]:
    return (p.use.principal.key.key_id, p.use.jti)


class SendPipeline:
    """Up to IN_FLIGHT transactions at once: while one waits for its commit (the WAL flush),
    the next batch is already being admitted and inserted, so the event loop is not idle.

    Two batches in flight must not hide a duplicate or a replay from each other (READ
    COMMITTED does not see the other's rows), so a request whose text-and-recipient or token
    id is in a batch still in flight waits for the next batch. Quota rows are locked in one
    order (agency, day) so that two transactions never deadlock on them."""

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
            try:
                refused = await self._commit(batch, optimistic=True)
            except _OverQuota:
                refused = await self._commit(batch, optimistic=False)
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

    async def _commit(self, batch: list[Pending], *, optimistic: bool) -> dict[int, Problem]:
        """One transaction for the batch. ``optimistic``: quotas are counted per group as the
        last statement, so the per-agency usage row is locked only until the commit; if a
        group would go over, the transaction rolls back and the batch runs again with quotas
        counted first and one request at a time (arrival order decides who gets the rest)."""
        refused: dict[int, Problem] = {}

        def refuse(p: Pending, problem: Problem) -> None:
            refused.setdefault(id(p), problem)

        async with self._store.transaction() as tx:
            # 1. In one round trip: token ids (replays refused), keys and agencies still live,
            #    senders still allocated (Art 3), opt-outs.
            checks = await tx.messages.admission(
                [p.use.principal.key.key_id for p in batch],
                [p.use.jti for p in batch],
                [p.use.expires for p in batch],
                [p.message.agency_id for p in batch],
                [p.message.sender for p in batch],
                [p.message.recipient for p in batch],
                [p.check_opt_out for p in batch],
            )
            seen: set[tuple[str, str]] = set()
            for p, (fresh, live, active, sender_ok, opted) in zip(batch, checks, strict=True):
                k = _jti_key(p)
                if not fresh or k in seen:  # a jti twice in this batch is a replay too
                    refuse(p, Problem("token_replayed", "every request needs a fresh jti"))
                seen.add(k)
                if not live:
                    refuse(p, Problem("key_revoked"))
                if not active:
                    refuse(p, Problem("agency_suspended"))
                if not sender_ok:
                    refuse(p, Problem("sender_not_registered", "the sender was released"))
                if opted:
                    refuse(
                        p,
                        Problem(
                            "recipient_opted_out",
                            "the recipient opted out of this agency's messages",
                        ),
                    )
            todo = [p for p in batch if id(p) not in refused]
            # 2. Duplicates (same agency, recipient and text recently, or twice in this batch).
            dup_check = [p for p in todo if p.duplicate_since is not None]
            if dup_check:
                since = min(p.duplicate_since for p in dup_check if p.duplicate_since)
                dups = await tx.messages.duplicates_among(
                    [p.message.agency_id for p in dup_check],
                    [p.message.recipient for p in dup_check],
                    [p.message.body for p in dup_check],
                    since,
                )
                first: dict[tuple[uuid.UUID, str, str], Pending] = {}
                for i, p in enumerate(dup_check):
                    dk = _dup_key(p)
                    if i in dups or dk in first:
                        refuse(p, Problem("duplicate_message", "same text to the same recipient"))
                    first.setdefault(dk, p)
            todo = [p for p in todo if id(p) not in refused]
            # 3. Quotas, per agency and day, counted in fragments; rows locked in sorted order.
            groups: dict[tuple[uuid.UUID, date], list[Pending]] = defaultdict(list)
            for p in todo:
                groups[(p.message.agency_id, p.day)].append(p)
            ordered = sorted(groups.items(), key=lambda g: (str(g[0][0]), g[0][1]))
            if not optimistic:
                for (agency_id, day), items in ordered:
                    quota = items[0].quota
                    total = sum(p.message.parts for p in items)
                    if await tx.messages.reserve_fragments(agency_id, day, total, quota):
                        continue
                    for p in items:  # over quota as a group: admit one by one, in order
                        if not await tx.messages.reserve_fragments(
                            agency_id, day, p.message.parts, quota
                        ):
                            refuse(
                                p,
                                Problem(
                                    "daily_quota_exceeded", f"daily quota of {quota} fragments"
                                ),
                            )
                todo = [p for p in todo if id(p) not in refused]
            created = await tx.messages.insert_many([p.message for p in todo]) if todo else {}
            if optimistic:
                for (agency_id, day), items in ordered:
                    total = sum(p.message.parts for p in items)
                    if not await tx.messages.reserve_fragments(
                        agency_id, day, total, items[0].quota
                    ):
                        raise _OverQuota
            due = [p for p in todo if p.message.send_at is None]
            if due:
                await tx.messages.notify_queued(any(p.message.priority == 0 for p in due))
        for p in todo:
            m = p.message
            SMS_ACCEPTED.labels(str(m.agency_id), PRIORITY_NAMES[m.priority]).inc()
            p.result.set_result(orjson.dumps(accepted_view(m, created[m.id])))
        return refused


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
