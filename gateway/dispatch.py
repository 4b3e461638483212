"""The dispatcher: claim → route → encode → submit → record, in batches.

Several workers run the loop at once (``sms.dispatch_workers``); each claims its own leased batch
(SKIP LOCKED keeps them disjoint), so database round trips of one overlap the SMSC round trips
of another. Results of a whole batch are written in one transaction.

Lanes: ``crisis`` is claimed first and may take the whole batch; what is left is shared by
``high``, ``normal`` and ``bulk`` (50/35/15, unused shares passed on), so bulk never starves the
others and is never starved itself. Within a lane, the order is the virtual time ``vt`` set at
accept (weighted fair queuing between agencies, see gateway/batches.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

import asyncpg

from adapters.sms import errors as send_errors
from adapters.sms.dlr import IdFormat, canonical_id
from adapters.sms.encoding import encode
from adapters.sms.esme import Submit, SubmitResult
from gateway.config import Config, OperatorConfig
from gateway.gate import PriorityGate
from gateway.metrics import (
    SMPP_SUBMIT_LATENCY,
    SMPP_THROTTLED,
    SMS_FINAL,
    SMS_RETRIES,
    SMS_SUBMITTED,
)
from gateway.recipients import smpp_address
from gateway.routing import Router
from gateway.status import DELIVERED, EXPIRED, PRIORITY_NAMES, REJECTED
from gateway.store import Store
from gateway.store.availability import DATABASE_DOWN
from gateway.store.models import Claimed
from gateway.store.queue import Final, Retry, Submitted

log = logging.getLogger(__name__)

LANES = (0, 1, 2, 3)
CRISIS_CHANNEL = "payam_crisis"
QUEUE_CHANNEL = "payam_queue"
_SHARES = {1: 0.50, 2: 0.35, 3: 0.15}
# Link-level errors: the message did nothing wrong, so they do not use up its attempts; it
# waits (until valid_until) for the operator to come back.
_LINK_ERRORS = frozenset({"NO_BIND", "BIND_DOWN", "OPERATOR_PAUSED"})
# When the queue is empty, workers wait for a NOTIFY from an accepting transaction, or at most
# this long (scheduled messages become due without a notification).
_IDLE_WAIT = 0.5
# Alphanumeric senders go as TON 5 (SMPP 3.4 §5.2.5); numeric shortcodes as TON 0 / NPI 0,
# which is how Iranian SMSCs expect 4040… short numbers.
TON_ALPHANUMERIC = 5
# Errors after which storing a round's results is tried again.
_RECORD_RETRYABLE: tuple[type[BaseException], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    *DATABASE_DOWN,
)


class OperatorLink(Protocol):
    async def submit(self, s: Submit) -> SubmitResult: ...


Finalized = Callable[[list[uuid.UUID]], Awaitable[None]]


class LaneBudget(Protocol):
    """Limits the non-crisis lanes' claims (crisis mode, gateway/operations.py)."""

    async def lane_budget(self, lane: int, want: int) -> int: ...
    async def lane_refund(self, lane: int, unused: int) -> None: ...


def _shares(remaining: int) -> dict[int, int]:
    return {lane: max(1, int(remaining * share)) for lane, share in _SHARES.items()}


class Dispatcher:
    def __init__(
        self,
        store: Store,
        config: Config,
        router: Router,
        links: Mapping[str, OperatorLink],
        on_final: Finalized | None = None,
        on_submitted: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._cfg = config.sms
        self._ops: dict[str, OperatorConfig] = {o.name: o for o in config.operators}
        self._router = router
        self._links = links
        self._on_final = on_final
        self._on_submitted = on_submitted
        self._stopping = asyncio.Event()
        self._rng = random.Random()
        self._gates = {o.name: PriorityGate(o.binds * o.window) for o in config.operators}
        self._crisis = asyncio.Event()
        self._work = asyncio.Event()
        self.budget: LaneBudget | None = None

    async def run(self) -> None:
        workers = [
            asyncio.create_task(self._worker(poller=i == 0), name=f"dispatch-{i}")
            for i in range(self._cfg.dispatch_workers)
        ]
        # One worker only for the crisis lane, woken by NOTIFY from the accept transaction:
        # a crisis message never waits for a bulk round to finish before it is claimed.
        workers.append(asyncio.create_task(self._crisis_worker(), name="dispatch-crisis"))
        workers.append(asyncio.create_task(self._scheduler(), name="dispatch-scheduler"))
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()

    async def _crisis_worker(self) -> None:
        async with self._store.pool.acquire() as conn:
            await conn.add_listener(CRISIS_CHANNEL, self._on_notify)
            await conn.add_listener(QUEUE_CHANNEL, self._on_queue_notify)
            try:
                while not self._stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._crisis.wait(), timeout=0.5)
                    self._crisis.clear()
                    try:
                        while await self.round(lanes=(0,)):
                            pass
                    except Exception:
                        log.exception("crisis dispatch round failed; retrying")
                        await asyncio.sleep(0.5)
            finally:
                await conn.remove_listener(CRISIS_CHANNEL, self._on_notify)
                await conn.remove_listener(QUEUE_CHANNEL, self._on_queue_notify)

    def _on_notify(self, *_: object) -> None:
        self._crisis.set()
        self._work.set()

    def _on_queue_notify(self, *_: object) -> None:
        self._work.set()

    async def _scheduler(self) -> None:
        """Scheduled messages whose time came are shown as queued."""
        while not self._stopping.is_set():
            try:
                await self._store.queue.mark_queued(datetime.now(UTC))
            except Exception:
                log.exception("marking due scheduled messages failed")
            # Woken by stop(): a shutdown does not wait out the second.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=1.0)

    def stop(self) -> None:
        self._stopping.set()
        self._work.set()  # idle workers wait on it without a timeout
        self._crisis.set()  # the crisis worker too, so that stopping takes no poll interval

    async def _worker(self, *, poller: bool) -> None:
        """Claim rounds while there is work. When the queue is empty, only the poller looks
        again every _IDLE_WAIT (for messages that fall due without a NOTIFY: schedules,
        retries); the others sleep until a NOTIFY or the poller finds work. Idle, four workers
        polling seven lane queries each were a tenth of the gateway's CPU under accept load."""
        while not self._stopping.is_set():
            try:
                done = await self.round()
            except Exception:
                log.exception("dispatch round failed; retrying")
                done = 0
                await asyncio.sleep(1.0)
            if done:
                self._work.set()  # wake idle peers: there is more where that came from
                continue
            self._work.clear()
            if poller:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work.wait(), timeout=_IDLE_WAIT)
            else:
                await self._work.wait()

    async def claim(self, lanes: tuple[int, ...] = LANES) -> list[Claimed]:
        limit, lease = self._cfg.claim_batch, self._cfg.lease_seconds
        claimed = await self._store.queue.claim(0, limit, lease)
        remaining = limit - len(claimed)
        if remaining <= 0 or lanes == (0,):
            return claimed
        saturated = False
        for lane, share in _shares(remaining).items():
            want = await self._granted(lane, min(share, remaining))
            got = await self._store.queue.claim(lane, want, lease) if want else []
            await self._refund(lane, want - len(got))
            claimed += got
            remaining -= len(got)
            saturated = saturated or (want > 0 and len(got) == want)
        for lane in (1, 2, 3):  # pass unused shares on, in priority order
            if remaining <= 0 or not saturated:  # no lane had more than its share
                break
            want = await self._granted(lane, remaining)
            got = await self._store.queue.claim(lane, want, lease) if want else []
            await self._refund(lane, want - len(got))
            claimed += got
            remaining -= len(got)
        return claimed

    async def _granted(self, lane: int, want: int) -> int:
        return want if self.budget is None else await self.budget.lane_budget(lane, want)

    async def _refund(self, lane: int, unused: int) -> None:
        if self.budget is not None:
            await self.budget.lane_refund(lane, unused)

    async def round(self, lanes: tuple[int, ...] = LANES) -> int:
        """One claim-send-record cycle; returns how many messages it handled."""
        # Results may be stored until shortly before the claim's lease runs out; after that
        # another worker may claim the messages again (store/queue.py).
        record_by = time.monotonic() + self._cfg.lease_seconds * 0.9
        claimed = await self.claim(lanes)
        if not claimed:
            return 0
        now = datetime.now(UTC)
        finals: list[Final] = []
        live: list[Claimed] = []
        for m in claimed:
            if m.valid_until <= now:
                finals.append(Final(m.id, EXPIRED, "valid_until_passed"))
            elif m.is_test:
                # Test keys never reach an operator (Art: test traffic is marked and kept apart).
                finals.append(Final(m.id, DELIVERED, "test"))
            else:
                live.append(m)
        routes = await self._router.route(self._store, [m.recipient for m in live])
        submitted: list[Submitted] = []
        retries: list[Retry] = []
        sends = []
        for m in live:
            op = routes.get(m.recipient)
            if op is None or op not in self._links:
                finals.append(Final(m.id, REJECTED, "no_route"))
                continue
            sends.append(self._send(m, op))
        for outcome in await asyncio.gather(*sends):
            if isinstance(outcome, Submitted):
                submitted.append(outcome)
            elif isinstance(outcome, Retry):
                retries.append(outcome)
            else:
                finals.append(outcome)
        done = await self._record(submitted, retries, finals, record_by)
        if submitted and self._on_submitted is not None:
            self._on_submitted()
        priority = {m.id: lane_name(m.priority) for m in claimed}
        for s in submitted:
            if s.complete:
                SMS_SUBMITTED.labels(s.operator, priority[s.message_id]).inc()
        for f in finals:
            SMS_FINAL.labels("none", f.status).inc()
        if done and self._on_final is not None:
            await self._on_final(done)
        return len(claimed)

    async def _send(self, m: Claimed, operator: str) -> Submitted | Retry | Final:
        op = self._ops[operator]
        link = self._links[operator]
        try:
            encoded = encode(
                m.body,
                ref=self._rng.randrange(256),
                data_coding=None if op.data_coding < 0 else op.data_coding,
            )
        except ValueError:
            return Final(m.id, REJECTED, "encoding")
        alnum = not m.sender.isdigit()
        part_nos: list[int] = []
        smsc_ids: list[str] = []
        for part_no, short_message in enumerate(encoded.parts, start=1):
            if part_no in m.done_parts:
                continue
            gate = self._gates[operator]
            await gate.acquire(m.priority)
            started = time.perf_counter()
            try:
                result = await link.submit(
                    Submit(
                        source_addr=m.sender,
                        source_addr_ton=TON_ALPHANUMERIC if alnum else 0,
                        source_addr_npi=0,
                        destination_addr=smpp_address(m.recipient),
                        esm_class=0x40 if encoded.udhi else 0,
                        data_coding=encoded.data_coding,
                        short_message=short_message,
                        registered_delivery=1,
                    )
                )
            finally:
                gate.release()
            SMPP_SUBMIT_LATENCY.labels(operator).observe(time.perf_counter() - started)
            if result.ok:
                part_nos.append(part_no)
                smsc_ids.append(self._canonical(op, result.message_id))
                continue
            error = result.error or send_errors.NO_BIND
            if error.throttle:
                SMPP_THROTTLED.labels(operator).inc()
            if part_nos:
                return Submitted(m.id, operator, part_nos, smsc_ids, complete=False)
            return self._failed(m, operator, error)
        return Submitted(m.id, operator, part_nos, smsc_ids, complete=True)

    def _failed(self, m: Claimed, operator: str, error: send_errors.SendError) -> Retry | Final:
        SMS_RETRIES.labels(operator, error.code).inc()
        if not error.retryable:
            return Final(m.id, REJECTED, error.code)
        counts = error.code not in _LINK_ERRORS
        if counts and m.attempts + 1 >= self._cfg.max_attempts:
            return Final(m.id, REJECTED, f"retries_exhausted:{error.code}")
        base = self._cfg.retry_base_seconds
        delay = base * (2 ** min(m.attempts, 10)) if counts else base
        return Retry(m.id, delay * (0.5 + self._rng.random()), error.code, counts)

    async def _record(
        self,
        submitted: list[Submitted],
        retries: list[Retry],
        finals: list[Final],
        record_by: float,
    ) -> list[uuid.UUID]:
        """Store a round's results. The messages were handed to the SMSC already, so giving up
        here sends them again after the lease: retry transient database errors, and while the
        database is away, until just before the lease ends. (Five quick tries, as before, gave
        up within 1.5 s of a PostgreSQL restart and resent whole rounds: 732 duplicates in
        tests/test_database_outage.py.)"""
        attempt = 0
        while True:
            try:
                async with self._store.transaction() as tx:
                    done = await tx.queue.record(submitted, retries, finals)
                    if done:
                        await tx.callbacks.enqueue_status(done, self._give_up())
                return done
            except _RECORD_RETRYABLE as exc:
                attempt += 1
                delay = min(1.0, 0.05 * 2**attempt)
                # Stopping: the runtime waits only briefly for this round (runtime.py), so try
                # as often as before the change, then give up.
                if time.monotonic() + delay > record_by or (
                    self._stopping.is_set() and attempt >= 5
                ):
                    raise RuntimeError("could not store dispatch results") from exc
                log.warning(
                    "storing dispatch results failed (%s); retry %d", type(exc).__name__, attempt
                )
                await asyncio.sleep(delay)

    def _give_up(self) -> datetime:
        return datetime.now(UTC) + timedelta(hours=self._cfg.callback_retry_hours)

    @staticmethod
    def _canonical(op: OperatorConfig, raw: str) -> str:
        fmt: IdFormat = op.resp_id_format  # type: ignore[assignment]
        try:
            return canonical_id(raw, fmt)
        except ValueError:
            log.warning("operator %s sent a message id not in %s format", op.name, fmt)
            return raw.strip().lower()


def lane_name(lane: int) -> str:
    return PRIORITY_NAMES.get(lane, str(lane))
