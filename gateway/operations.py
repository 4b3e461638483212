"""Administrators' controls over the running platform (issue 8), each one audited:

* pause / resume an operator: its submits wait (link error, attempts not used up) until resumed;
* drain / undrain one bind of an operator: no new submits on it, in-flight ones answered, then
  unbind until undrained (every node drains its own session of that bind);
* crisis mode: the non-crisis lanes together get ``ops.crisis_share`` of the operators' contract
  capacity, so crisis traffic has the rest (the Council's goal "reach people fast in a crisis");
* cancel or re-send an agency's batch.

Agency suspension lives in gateway/agencies.py (it also holds the agency's queue here).
The flags are stored in ``ops_flags`` and every node re-reads them each ``ops.refresh_seconds``
(``OpsState.refresh``); the node that took the action applies it at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.sms.errors import SendError
from adapters.sms.esme import Submit, SubmitResult
from gateway.config import Config
from gateway.errors import Problem
from gateway.metrics import ADMIN_OPERATIONS, CRISIS_MODE, OPERATOR_PAUSED
from gateway.store import Store
from gateway.tariffs import load_tariffs

# A paused operator answers every submit with this: retryable, and (gateway/dispatch.py) a
# link-level error, so waiting messages do not use up their attempts while it is paused.
OPERATOR_PAUSED_ERROR = SendError("OPERATOR_PAUSED", retryable=True)
CRISIS_FLAG = "crisis"


def operator_flag(name: str) -> str:
    return f"operator:{name}"


class CrisisBudget:
    """The non-crisis lanes' claims while crisis mode is on: ``rate`` messages per second for
    the whole platform, at most one second's worth banked. The bucket is a row in the database
    shared by every node (gateway/store/operations.py), so N nodes together get ``rate``, not
    N × ``rate`` (issue 8 part 7: crisis traffic must have the operators' capacity)."""

    def __init__(self, store: Store, rate: float) -> None:
        self._store = store
        self.rate = rate

    async def reset(self) -> None:
        await self._store.operations.reset_crisis_budget(self.rate)

    async def take(self, want: int) -> int:
        granted = await self._store.operations.take_crisis_budget(self.rate, want)
        if granted is None:  # crisis mode was switched on before this node saw the row
            await self.reset()
            granted = await self._store.operations.take_crisis_budget(self.rate, want)
        return granted or 0

    async def refund(self, n: int) -> None:
        await self._store.operations.refund_crisis_budget(self.rate, n)


class OpsState:
    """This node's view of the operations flags."""

    def __init__(self, store: Store, config: Config) -> None:
        self._store = store
        self.operators = tuple(o.name for o in config.operators)
        self.paused: frozenset[str] = frozenset()
        self.crisis = False
        capacity = sum(o.tps for o in config.operators if o.tps > 0)
        self.crisis_rate = config.ops.crisis_share * (capacity or config.ops.crisis_capacity_tps)
        self.budget = CrisisBudget(store, self.crisis_rate)
        self.binds = {o.name: o.binds for o in config.operators}
        # This node's SMPP clients (adapters/sms/esme.OperatorClient), set by gateway/runtime.py;
        # drained binds are applied to them.
        self.clients: Mapping[str, Any] = {}
        self.drained: dict[str, frozenset[int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._flags: dict[str, dict[str, Any]] = {}

    def attach(self, clients: Mapping[str, Any]) -> None:
        """This node's SMPP clients: binds drained before they existed are drained now."""
        self.clients = clients
        self.drained = {}
        self.apply(self._flags)

    def apply(self, flags: Mapping[str, dict[str, Any]]) -> None:
        self._flags = dict(flags)
        self.paused = frozenset(
            name for name in self.operators if flags.get(operator_flag(name), {}).get("paused")
        )
        for name in self.operators:
            want = frozenset(flags.get(operator_flag(name), {}).get("drained_binds", []))
            have = self.drained.get(name, frozenset())
            self.drained[name] = want
            client = self.clients.get(name)
            if client is None or want == have:
                continue
            for index in sorted(have - want):
                client.undrain(index)
            for index in sorted(want - have):
                task = asyncio.get_running_loop().create_task(client.drain(index))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        crisis = bool(flags.get(CRISIS_FLAG, {}).get("on"))
        self.crisis = crisis
        CRISIS_MODE.set(1 if crisis else 0)
        for name in self.operators:
            OPERATOR_PAUSED.labels(name).set(1 if name in self.paused else 0)

    async def refresh(self) -> None:
        self.apply(await self._store.operations.flags())

    async def lane_budget(self, lane: int, want: int) -> int:
        """How many of ``want`` messages a non-crisis lane may claim now (all, outside crisis
        mode). The crisis lane is never limited."""
        if lane == 0 or not self.crisis or want <= 0:
            return want
        return await self.budget.take(want)

    async def lane_refund(self, lane: int, unused: int) -> None:
        if lane != 0 and self.crisis and unused > 0:
            await self.budget.refund(unused)


class GuardedLink:
    """An operator link that refuses submits while the operator is paused."""

    def __init__(self, name: str, link: Any, state: OpsState) -> None:
        self._name = name
        self._link = link
        self._state = state

    async def submit(self, s: Submit) -> SubmitResult:
        if self._name in self._state.paused:
            return SubmitResult(False, "", OPERATOR_PAUSED_ERROR, "")
        result: SubmitResult = await self._link.submit(s)
        return result


def guarded_links(links: Mapping[str, Any], state: OpsState) -> dict[str, GuardedLink]:
    return {name: GuardedLink(name, link, state) for name, link in links.items()}


class OperationsService:
    def __init__(self, store: Store, config: Config, state: OpsState) -> None:
        self._store = store
        self._cfg = config
        self.state = state
        # Read once at start: a broken tariff file fails the start, naming the key.
        self.tariffs = load_tariffs(config.ops.tariffs_file)

    async def _set(
        self, flag: str, value: dict[str, Any], *, action: str, target: str, actor: str, addr: str
    ) -> None:
        async with self._store.transaction() as tx:
            await tx.operations.set_flag(flag, value, actor)
            await tx.audit.record(
                actor=actor,
                action=action,
                target=target,
                outcome="ok",
                client_addr=addr,
                detail=value,
            )
            flags = await tx.operations.flags()
        self.state.apply(flags)
        ADMIN_OPERATIONS.labels(action, "ok").inc()

    async def _operator_flag(self, operator: str) -> dict[str, Any]:
        if operator not in self.state.operators:
            raise Problem("not_found", f"no operator {operator!r} is configured")
        flags = await self._store.operations.flags()
        return dict(flags.get(operator_flag(operator), {}))

    async def set_operator_paused(
        self, operator: str, paused: bool, reason: str, *, actor: str, addr: str
    ) -> None:
        value = await self._operator_flag(operator)
        await self._set(
            operator_flag(operator),
            {**value, "paused": paused, "reason": reason},
            action="operator.pause" if paused else "operator.resume",
            target=operator,
            actor=actor,
            addr=addr,
        )

    async def set_bind_drained(
        self, operator: str, index: int, drained: bool, reason: str, *, actor: str, addr: str
    ) -> None:
        value = await self._operator_flag(operator)
        if not 0 <= index < self.state.binds[operator]:
            raise Problem("not_found", f"operator {operator} has no bind {index}")
        binds = set(value.get("drained_binds", []))
        binds = binds | {index} if drained else binds - {index}
        await self._set(
            operator_flag(operator),
            {**value, "drained_binds": sorted(binds), "reason": reason},
            action="bind.drain" if drained else "bind.undrain",
            target=f"{operator}:{index}",
            actor=actor,
            addr=addr,
        )

    async def set_crisis(self, on: bool, reason: str, *, actor: str, addr: str) -> None:
        if on and not self.state.crisis:
            await self.state.budget.reset()  # crisis mode starts with one second banked
        await self._set(
            CRISIS_FLAG,
            {"on": on, "reason": reason},
            action="crisis.on" if on else "crisis.off",
            target="platform",
            actor=actor,
            addr=addr,
        )

    def status(self) -> dict[str, Any]:
        return {
            "crisis": {
                "on": self.state.crisis,
                "non_crisis_rate_per_second": round(self.state.crisis_rate, 3),
            },
            "operators": [
                {
                    "name": name,
                    "paused": name in self.state.paused,
                    "binds": self.state.binds[name],
                    "drained_binds": sorted(self.state.drained.get(name, ())),
                }
                for name in self.state.operators
            ],
        }

    async def set_sla(
        self, agency_id: uuid.UUID, latency_p95: float, ratio: float, *, actor: str, addr: str
    ) -> None:
        """The agency's SLA targets (Art 9), read by the SLA report and the SLA alerts."""
        async with self._store.transaction() as tx:
            if not await tx.operations.set_sla(agency_id, latency_p95, ratio):
                raise Problem("not_found", f"agency {agency_id}")
            await tx.audit.record(
                actor=actor,
                action="agency.sla",
                target=str(agency_id),
                outcome="ok",
                client_addr=addr,
                detail={"latency_p95_seconds": latency_p95, "delivery_ratio": ratio},
            )
        ADMIN_OPERATIONS.labels("agency.sla", "ok").inc()

    async def cancel_batch(self, batch_id: uuid.UUID, reason: str, *, actor: str, addr: str) -> int:
        async with self._store.transaction() as tx:
            batch = await tx.operations.batch(batch_id)
            if batch is None:
                raise Problem("not_found", f"batch {batch_id}")
            n = await tx.messages.cancel_batch(batch.agency_id, batch_id)
            await tx.audit.record(
                actor=actor,
                action="batch.cancel",
                target=str(batch_id),
                outcome="ok",
                client_addr=addr,
                detail={"agency_id": str(batch.agency_id), "cancelled": n, "reason": reason},
            )
        ADMIN_OPERATIONS.labels("batch.cancel", "ok").inc()
        return n

    async def resend_batch(self, batch_id: uuid.UUID, reason: str, *, actor: str, addr: str) -> int:
        valid_until = datetime.now(UTC) + timedelta(hours=self._cfg.sms.default_validity_hours)
        async with self._store.transaction() as tx:
            batch = await tx.operations.batch(batch_id)
            if batch is None:
                raise Problem("not_found", f"batch {batch_id}")
            if batch.cancelled_at is not None:
                raise Problem("batch_cancelled", f"batch {batch_id} was cancelled")
            n = await tx.operations.resend_batch(batch_id, valid_until)
            await tx.audit.record(
                actor=actor,
                action="batch.resend",
                target=str(batch_id),
                outcome="ok",
                client_addr=addr,
                detail={"agency_id": str(batch.agency_id), "requeued": n, "reason": reason},
            )
        ADMIN_OPERATIONS.labels("batch.resend", "ok").inc()
        return n
