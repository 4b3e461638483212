"""The delivery worker: deposits committed letters in the e-box, with retries and backoff.

Letters are claimed with a lease (a crashed node's claims come back after it), sent with
``EboxClient.deposit`` and settled by the outcome table of adapters/kartpooshe/client.py:
deposited → the ``deposited`` event and the SMS notice; retry → again after
``retry_base_seconds · 2^attempts`` (jittered, capped); failed, or ``max_attempts`` used up → the
``failed`` event, a final state (no letter stays "pending forever").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from adapters.kartpooshe.client import DEPOSITED, FAILED, EboxClient, OutgoingFile
from gateway.config import KartpoosheConfig
from gateway.letters.chain import utc_iso
from gateway.letters.lifecycle import Lifecycle
from gateway.metrics import LETTER_DEPOSITS
from gateway.store import Store
from gateway.store.letters import Letter
from gateway.store.models import Agency

log = logging.getLogger(__name__)


def deposit_metadata(
    letter: Letter, agency: Agency, attachments: list[dict[str, object]]
) -> dict[str, object]:
    """The ``metadata`` part of docs/KARTPOOSHE_PROTOCOL.md §1."""
    return {
        "letter_id": str(letter.id),
        "tracking_number": letter.tracking_number,
        "recipient": {"kind": letter.recipient_kind, "id": letter.recipient_id},
        "agency": {"id": str(agency.id), "name_fa": agency.name_fa, "name_en": agency.name_en},
        "subject": letter.subject,
        "body": letter.body,
        "reply_allowed": letter.reply_allowed,
        "accepted_at": utc_iso(letter.accepted_at),
        "content_sha256": letter.content_sha256,
        "attachments": attachments,
    }


class DeliveryWorker:
    def __init__(
        self,
        store: Store,
        client: EboxClient,
        lifecycle: Lifecycle,
        cfg: KartpoosheConfig,
        wake: asyncio.Event,
    ) -> None:
        self._store = store
        self._client = client
        self._lifecycle = lifecycle
        self._cfg = cfg
        self._wake = wake
        self._stopping = asyncio.Event()
        self._rng = random.Random()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                n = await self.deliver_once()
            except Exception:
                log.exception("letter delivery round failed; retrying")
                n = 0
            if n == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.5)

    async def deliver_once(self, limit: int = 20) -> int:
        lease = self._cfg.request_timeout_seconds * 3
        due = await self._store.letters.claim_due(limit, lease)
        if due:
            await asyncio.gather(*(self._deliver(letter) for letter in due))
        return len(due)

    async def _deliver(self, letter: Letter) -> None:
        agency = await self._store.agencies.get(letter.agency_id)
        if agency is None:
            await self._lifecycle.failed(letter.id, "agency_gone", 0, letter.attempts)
            return
        if letter.is_test:
            # Test keys never reach the e-box (docs/API.md): the deposit is simulated, marked.
            LETTER_DEPOSITS.labels("test").inc()
            await self._lifecycle.deposited(letter.id, self._lifecycle.clock(), 0)
            return
        files = await self._store.letters.attachments(letter.id)
        result = await self._client.deposit(
            str(letter.id),
            deposit_metadata(letter, agency, [f.meta() for f in files]),
            [OutgoingFile(f.name, f.content_type, f.data) for f in files],
        )
        attempts = letter.attempts + 1
        if result.outcome == DEPOSITED:
            assert result.deposited_at is not None
            LETTER_DEPOSITS.labels("deposited").inc()
            await self._lifecycle.deposited(letter.id, result.deposited_at, result.status)
            return
        if result.outcome == FAILED or attempts >= self._cfg.max_attempts:
            LETTER_DEPOSITS.labels("failed").inc()
            reason = result.code if result.outcome == FAILED else f"gave_up:{result.code}"
            log.warning("letter %s not deposited: %s (attempt %d)", letter.id, reason, attempts)
            await self._lifecycle.failed(letter.id, reason, result.status, attempts)
            return
        LETTER_DEPOSITS.labels("retried").inc()
        delay = min(
            self._cfg.retry_max_seconds,
            self._cfg.retry_base_seconds * 2 ** min(letter.attempts, 16),
        ) * (0.5 + self._rng.random() / 2)
        await self._store.letters.retry_later(letter.id, delay, result.code)
