"""Delivery tracking: receipts from the operators into the durable inbox, then matched to
submitted parts in batches; a message is final when every part is.

``on_deliver`` is what the SMPP client calls for every deliver_sm. It returns only after a
receipt is committed, so the SMSC gets deliver_sm_resp (SMPP 3.4 §4.6.2) for receipts we hold;
if the database is down the call fails, the client answers an error, and the SMSC redelivers.
Receipts are written in small groups (one INSERT for all that arrive within a few ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from adapters.sms.dlr import (
    FINAL_STATES,
    IdFormat,
    canonical_id,
    receipt_from_deliver,
    status_table,
)
from adapters.sms.esme import Deliver
from gateway.config import Config, OperatorConfig
from gateway.metrics import RECEIPT_LATENCY, RECEIPTS, RECEIPTS_UNMATCHED, SMS_FINAL
from gateway.pipeline import Batcher
from gateway.status import combine
from gateway.store import Store
from gateway.store.receipts import InboxReceipt

log = logging.getLogger(__name__)

_FINAL = sorted(FINAL_STATES)
_STATUS = {
    "delivered": "delivered",
    "undeliverable": "undeliverable",
    "expired": "expired",
    "rejected": "rejected",
}

InboundHandler = Callable[[Deliver], Awaitable[None]]
Finalized = Callable[[list[uuid.UUID]], Awaitable[None]]


class Tracker:
    def __init__(
        self,
        store: Store,
        config: Config,
        on_inbound: InboundHandler | None = None,
        on_final: Finalized | None = None,
    ) -> None:
        self._store = store
        self._cfg = config.sms
        self._ops: dict[str, OperatorConfig] = {o.name: o for o in config.operators}
        self._on_inbound = on_inbound
        self._on_final = on_final
        self._inbox: Batcher[InboxReceipt] = Batcher(self._store_receipts, max_items=500)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    async def on_deliver(self, d: Deliver) -> None:
        op = self._ops.get(d.operator)
        table = status_table(op.status_table if op else "default")
        receipt = receipt_from_deliver(
            esm_class=d.esm_class,
            short_message=d.short_message,
            receipted_message_id=d.receipted_message_id,
            message_state=d.message_state,
            network_error_code=d.network_error_code,
            table=table,
        )
        if receipt is None:
            if self._on_inbound is not None:
                await self._on_inbound(d)
            return
        RECEIPTS.labels(d.operator, receipt.state).inc()
        fmt: IdFormat = op.dlr_id_format if op else "str"  # type: ignore[assignment]
        try:
            smsc_id = canonical_id(receipt.message_id, fmt)
        except ValueError:
            smsc_id = receipt.message_id.strip().lower()
        await self._inbox.submit(
            InboxReceipt(d.operator, smsc_id, receipt.state, receipt.stat, receipt.error)
        )
        self._wake.set()

    async def _store_receipts(self, receipts: list[InboxReceipt]) -> None:
        await self._store.receipts.add(receipts)

    async def run(self) -> None:
        last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                n = await self.match_once()
                if loop.time() - last_sweep > 30:
                    last_sweep = loop.time()
                    await self.sweep()
            except Exception:
                log.exception("receipt matching failed; retrying")
                n = 0
                await asyncio.sleep(1.0)
            if n == 0:
                self._wake.clear()
                # Receipts wake us at once; the timeout catches early receipts whose parts were
                # stored by another node.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)

    def wake(self) -> None:
        """Parts were just stored: waiting early receipts may match now."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def match_once(self, limit: int = 2000) -> int:
        """Match waiting receipts to parts; finish messages whose parts are all final."""
        async with self._store.transaction() as tx:
            matched = await tx.receipts.matched(limit)
            if not matched:
                return 0
            # Several receipts for one part (duplicates, ENROUTE then DELIVRD): a final one wins
            # over a non-final one; among finals the first stands.
            best: dict[tuple[uuid.UUID, int], str] = {}
            for r in matched:
                key = (r.message_id, r.part_no)
                if r.part_state in FINAL_STATES:
                    continue
                current = best.get(key)
                if current is None or (current not in FINAL_STATES and r.state in FINAL_STATES):
                    best[key] = r.state
            changed = await tx.receipts.apply(
                [r.inbox_id for r in matched],
                [(k[0], k[1], s) for k, s in best.items()],
                _FINAL,
            )
            outcomes: list[tuple[uuid.UUID, str]] = []
            finished: list[tuple[str, str, float]] = []
            if changed:
                now = datetime.now(UTC)
                for c in await tx.receipts.completions(changed, _FINAL):
                    status = combine([_STATUS[s] for s in c.part_states])
                    outcomes.append((c.message_id, status))
                    finished.append((c.operator, status, (now - c.submitted_at).total_seconds()))
                if outcomes:
                    await tx.receipts.finish(outcomes)
                    await tx.callbacks.enqueue_status(
                        [o[0] for o in outcomes],
                        datetime.now(UTC) + timedelta(hours=self._cfg.callback_retry_hours),
                    )
        for operator, status, latency in finished:
            SMS_FINAL.labels(operator, status).inc()
            RECEIPT_LATENCY.labels(operator).observe(latency)
        if outcomes and self._on_final is not None:
            await self._on_final([o[0] for o in outcomes])
        return len(matched)

    async def sweep(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(seconds=self._cfg.receipt_wait_seconds)
        async with self._store.transaction() as tx:
            expired = await tx.receipts.expire_unreceipted(cutoff)
            if expired:
                await tx.callbacks.enqueue_status(
                    expired, datetime.now(UTC) + timedelta(hours=self._cfg.callback_retry_hours)
                )
        if expired:
            SMS_FINAL.labels("none", "expired").inc(len(expired))
            log.warning(
                "%d submitted messages had no receipt after validity: expired", len(expired)
            )
        dropped = await self._store.receipts.drop_stale(cutoff)
        if dropped:
            RECEIPTS_UNMATCHED.labels("all").inc(dropped)
            log.warning("dropped %d receipts that never matched a submitted part", dropped)
