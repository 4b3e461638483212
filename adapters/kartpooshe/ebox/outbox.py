"""Delivering opened/replied events to the gateway (EBOX-PROTOCOL §2), durably, at least once.

Events are written to the ``events`` table in the same transaction as the opening or reply that
caused them, so none is lost if the gateway is down or the e-box restarts. This loop claims due
events, POSTs them and retries with exponential backoff until a 2xx; a 4xx other than 401/429 is
final (kept as failed). The gateway treats a repeated ``event_id`` as already received, which is
what makes at-least-once sending arrive exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.kartpooshe.ebox.gateway_client import GatewayClient, Outcome
from adapters.kartpooshe.ebox.metrics import EVENT_DELIVERIES
from adapters.kartpooshe.ebox.models import OutboxEvent
from adapters.kartpooshe.ebox.store import EboxStore

log = logging.getLogger(__name__)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class EventOutbox:
    def __init__(
        self,
        store: EboxStore,
        client: GatewayClient,
        *,
        retry_base_seconds: float,
        retry_max_seconds: float,
        poll_seconds: float,
        lease_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._client = client
        self._base = retry_base_seconds
        self._max = retry_max_seconds
        self._poll = poll_seconds
        self._lease = lease_seconds
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A new event was queued: deliver it now rather than at the next poll."""
        self._wake.set()

    def backoff(self, attempts: int) -> float:
        """Seconds before try ``attempts + 1``: base·2^attempts, capped."""
        return float(min(self._base * (2 ** min(attempts, 30)), self._max))

    async def body(self, event: OutboxEvent) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_id": str(event.event_id),
            "letter_id": event.letter_id,
            "type": event.type,
            "at": iso(event.at),
            "actor": {"kind": event.actor},
        }
        if event.type == "replied" and event.reply_id is not None:
            reply = await self._store.letters.reply(event.reply_id)
            assert reply is not None, "an event's reply is written in the same transaction"
            attachments = []
            if reply.attachment_data is not None:
                attachments.append(
                    {
                        "name": reply.attachment_name,
                        "content_type": reply.attachment_type,
                        "data_base64": base64.b64encode(reply.attachment_data).decode(),
                    }
                )
            body["reply"] = {
                "reply_id": str(reply.reply_id),
                "text": reply.text,
                "attachments": attachments,
            }
        return body

    async def deliver_due(self, limit: int = 50) -> int:
        """One round: send every due event once; returns how many were tried."""
        now = self._clock()
        events = await self._store.outbox.claim_due(
            now, now + timedelta(seconds=self._lease), limit
        )
        for event in events:
            outcome, reason = await self._client.send_event(await self.body(event))
            EVENT_DELIVERIES.labels(event.type, outcome.value).inc()
            if outcome is Outcome.DELIVERED:
                await self._store.outbox.delivered(event.event_id, self._clock())
            elif outcome is Outcome.RETRY:
                delay = self.backoff(event.attempts)
                await self._store.outbox.retry_at(
                    event.event_id, self._clock() + timedelta(seconds=delay), reason
                )
                log.info(
                    "event %s (%s) not delivered (%s); retry in %.0f s",
                    event.event_id,
                    event.type,
                    reason,
                    delay,
                )
            else:
                await self._store.outbox.failed(event.event_id, reason)
                log.warning(
                    "event %s (%s) refused by the gateway: %s", event.event_id, event.type, reason
                )
        return len(events)

    async def run(self) -> None:
        while True:
            # Cleared before the round, so a wake() during the round starts another at once.
            self._wake.clear()
            try:
                tried = await self.deliver_due()
            except Exception:
                log.exception("event outbox round failed")
                tried = 0
            if tried:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
