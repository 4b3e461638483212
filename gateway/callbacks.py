"""Signed callbacks to agencies (status changes and replies), retried with backoff.

Header ``Payam-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` with the agency's
webhook secret — the Stripe scheme, so agencies can verify with a few lines in any language and
reject replays by checking ``t``. Network errors, 5xx and 429 are retried with exponential
backoff for ``sms.callback_retry_hours``; other 4xx are final. Delivery runs in its own worker
and never slows dispatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from datetime import UTC, datetime

import aiohttp

from gateway.agencies import AgencyService
from gateway.config import SmsConfig
from gateway.metrics import CALLBACKS
from gateway.store import Store
from gateway.store.callbacks import DueCallback

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Payam-Signature"
_MAX_DELAY = 3600.0


def sign(secret: str, body: bytes, at: int | None = None) -> str:
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """What an agency does on receipt (also used by our tests)."""
    fields = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class CallbackWorker:
    def __init__(self, store: Store, agencies: AgencyService, cfg: SmsConfig) -> None:
        self._store = store
        self._agencies = agencies
        self._cfg = cfg
        self._stopping = asyncio.Event()
        self._rng = random.Random()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._cfg.callback_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._stopping.is_set():
                try:
                    n = await self.deliver_once(session)
                except Exception:
                    log.exception("callback round failed; retrying")
                    n = 0
                if n == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=0.2)

    async def deliver_once(self, session: aiohttp.ClientSession, limit: int = 100) -> int:
        due = await self._store.callbacks.claim(limit, self._cfg.callback_timeout_seconds * 3)
        if due:
            await asyncio.gather(*(self._deliver(session, c) for c in due))
        return len(due)

    async def _deliver(self, session: aiohttp.ClientSession, c: DueCallback) -> None:
        agency = await self._store.agencies.get(c.agency_id)
        if agency is None:
            await self._store.callbacks.finish(c.id, "dropped", "agency gone")
            return
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._agencies.webhook_secret(agency), c.body),
            "User-Agent": "PayamIran-Callbacks/1",
        }
        error = ""
        try:
            async with session.post(c.url, data=c.body, headers=headers) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, error = 0, type(exc).__name__
        if 200 <= status < 300:
            CALLBACKS.labels("delivered").inc()
            await self._store.callbacks.finish(c.id, "delivered", "")
            return
        error = error or f"HTTP {status}"
        retryable = status == 0 or status == 429 or status >= 500 or status == 408
        if not retryable:
            CALLBACKS.labels("refused").inc()
            await self._store.callbacks.finish(c.id, "refused", error)
            return
        delay = min(_MAX_DELAY, 2.0 * (2 ** min(c.attempts, 12))) * (0.5 + self._rng.random())
        if datetime.now(UTC).timestamp() + delay > c.give_up_at.timestamp():
            CALLBACKS.labels("expired").inc()
            await self._store.callbacks.finish(c.id, "expired", error)
            return
        CALLBACKS.labels("retried").inc()
        await self._store.callbacks.retry(c.id, delay, error)
