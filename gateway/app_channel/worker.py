"""The push worker: due app deliveries are claimed (FOR UPDATE SKIP LOCKED, leased), pushed to
the provider as a signed POST, and confirmed, retried with backoff, or given up.

The push carries ``Payam-Signature`` exactly as agency callbacks do (gateway/callbacks.py:
HMAC-SHA256 of "<t>.<body>" under the provider's push secret) and ``Idempotency-Key`` = the
message id, so a provider that saw a retry before can tell. A 2xx answer is the confirmation
(the notice is in the citizen's app inbox), except 202: taken, and the provider confirms
delivery itself before the deadline (``POST /app/v1/notices/{id}/delivered``). Anything else
is retried after base·2^attempts
seconds (capped) until the deadline (``app.confirm_timeout_seconds`` after the first attempt);
at the deadline the delivery is given up, and the message falls back to SMS (or, asked for the
app only, ends undeliverable). Any node may run this worker; the conditional transitions in
gateway/store/app_channel.py make each outcome happen once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
from aiohttp import web

from gateway.api.http import BACKGROUND, SERVICES
from gateway.app_channel.providers import ProviderService
from gateway.app_channel.service import AppChannel, channel_event
from gateway.callbacks import SIGNATURE_HEADER, sign
from gateway.config import AppConfig, SmsConfig
from gateway.metrics import APP_FALLBACKS, APP_PUSH_LATENCY, APP_PUSHES
from gateway.status import PRIORITY_NAMES, WAITING
from gateway.store import Store
from gateway.store.app_channel import AppChannelStore, DueDelivery
from gateway.store.models import Message

log = logging.getLogger(__name__)

_CLAIM = 50


class AppPushWorker:
    def __init__(
        self,
        store: Store,
        channel: AppChannel,
        providers: ProviderService,
        cfg: AppConfig,
        sms: SmsConfig,
    ) -> None:
        self._store = store
        self._channel = channel
        self._providers = providers
        self._cfg = cfg
        self._sms = sms
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self._channel.wake.set()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._cfg.push_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._stopping.is_set():
                try:
                    n = await self.push_once(session)
                except Exception:
                    log.exception("app pushes failed; retrying")
                    n = 0
                    await asyncio.sleep(1.0)
                if n == 0 and not self._stopping.is_set():
                    self._channel.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._channel.wake.wait(), timeout=self._cfg.poll_seconds
                        )

    async def push_once(self, session: aiohttp.ClientSession) -> int:
        lease = self._cfg.push_timeout_seconds + 10.0
        due = await AppChannelStore(self._store.db).claim(_CLAIM, lease)
        if due:
            results = await asyncio.gather(
                *(self._one(session, d) for d in due), return_exceptions=True
            )
            for d, result in zip(due, results, strict=True):
                # One failure (the database, say) must not hold the others' leases: they are
                # done; this one is claimed again when its lease ends.
                if isinstance(result, Exception):
                    log.error(
                        "app delivery %s failed; retried after its lease",
                        d.message_id,
                        exc_info=result,
                    )
                elif isinstance(result, BaseException):
                    raise result
        return len(due)

    async def _one(self, session: aiohttp.ClientSession, d: DueDelivery) -> None:
        m = await self._store.messages.get(d.agency_id, d.message_id)
        if m is None or m.status not in WAITING:
            # Cancelled by the agency (or ended otherwise): nothing to push, nothing to send.
            await AppChannelStore(self._store.db).cancel(d.message_id)
            return
        reason = ""
        if d.overdue:
            reason = "not_confirmed"
        elif not d.provider_active:
            reason = "provider_unavailable"
        elif d.citizen_ref is None:
            reason = "signed_out"
        elif m.valid_until <= datetime.now(UTC):
            reason = "expired"
        if reason:
            await self.give_up(d, m, reason)
            return
        outcome, error = await self._push(session, d, m)
        if outcome == "ok":
            await self._channel.confirm(d.message_id, d.agency_id, d.provider_name, via="push")
            return
        if outcome == "accepted":
            await AppChannelStore(self._store.db).pushed(d.message_id)
            return
        delay = min(self._cfg.retry_base_seconds * 2**d.attempts, self._cfg.retry_max_seconds)
        at = min(datetime.now(UTC) + timedelta(seconds=delay), d.deadline)
        await AppChannelStore(self._store.db).retry(d.message_id, at, error)

    async def _push(
        self, session: aiohttp.ClientSession, d: DueDelivery, m: Message
    ) -> tuple[str, str]:
        """("ok" | "accepted" | "failed", error)."""
        body = orjson.dumps(
            {
                "type": "notice",
                "id": str(m.id),
                "citizen_ref": d.citizen_ref,
                "agency": {
                    "id": str(d.agency_id),
                    "name_fa": d.agency_name_fa,
                    "name_en": d.agency_name_en,
                },
                "sender": m.sender,
                "text": m.body,
                "priority": PRIORITY_NAMES[m.priority],
                "mandatory": m.mandatory,
                "created_at": m.created_at.isoformat(),
                "valid_until": m.valid_until.isoformat(),
            }
        )
        secret = self._providers.push_secret(d.provider_id, d.push_secret_sealed)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body),
            "Idempotency-Key": str(m.id),
        }
        started = time.monotonic()
        agency = str(d.agency_id)
        # Never wait past the deadline: the fallback must not be late by a slow provider.
        left = (d.deadline - datetime.now(UTC)).total_seconds()
        timeout = aiohttp.ClientTimeout(total=max(0.05, min(self._cfg.push_timeout_seconds, left)))
        try:
            async with session.post(
                d.push_url, data=body, headers=headers, timeout=timeout
            ) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            APP_PUSHES.labels(d.provider_name, agency, "error").inc()
            log.info("push to app provider %s failed: %s", d.provider_name, type(exc).__name__)
            return "failed", type(exc).__name__
        finally:
            APP_PUSH_LATENCY.labels(d.provider_name).observe(time.monotonic() - started)
        if status == 202:
            # Taken, to be confirmed by the provider (POST /app/v1/notices/{id}/delivered).
            APP_PUSHES.labels(d.provider_name, agency, "accepted").inc()
            return "accepted", ""
        if 200 <= status < 300:
            APP_PUSHES.labels(d.provider_name, agency, "ok").inc()
            return "ok", ""
        APP_PUSHES.labels(d.provider_name, agency, "refused").inc()
        log.info("app provider %s answered a push with HTTP %d", d.provider_name, status)
        return "failed", f"http_{status}"

    async def give_up(self, d: DueDelivery, m: Message, reason: str) -> None:
        detail = channel_event(provider=d.provider_name, reason=reason)
        async with self._store.transaction() as tx:
            app = AppChannelStore(tx.db)
            fallback = await app.give_up(d.message_id, reason)
            if fallback is None:
                return  # confirmed or given up meanwhile, by this node or another
            if fallback == "sms":
                await app.add_event(
                    d.message_id,
                    "app_fallback",
                    channel_event(provider=d.provider_name, reason=reason, next="sms"),
                )
                await tx.messages.notify_queued(m.priority == 0)
            elif await app.fail_message(d.message_id, f"app_{reason}", detail):
                await tx.callbacks.enqueue_status(
                    [d.message_id],
                    datetime.now(UTC) + timedelta(hours=self._sms.callback_retry_hours),
                )
        APP_FALLBACKS.labels(d.provider_name, str(d.agency_id), reason).inc()
        log.info(
            "app delivery given up (%s, provider %s): %s",
            reason,
            d.provider_name,
            "SMS next" if fallback == "sms" else "no next channel",
        )


async def app_push_jobs(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the push worker of this process (the one that runs background jobs)."""
    services = app[SERVICES]
    if not app[BACKGROUND] or services.app_channel is None or services.app_providers is None:
        yield
        return
    worker = AppPushWorker(
        services.store,
        services.app_channel,
        services.app_providers,
        services.config.app,
        services.config.sms,
    )
    task = asyncio.create_task(worker.run(), name="app-pushes")
    yield
    worker.stop()
    try:
        await asyncio.wait_for(task, timeout=5.0)
    except (TimeoutError, asyncio.CancelledError):
        task.cancel()
