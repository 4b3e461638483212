"""The push worker of one node: sends pushes over the operator's SMPP bind, takes the phones'
confirmations, ends pushes that got none, and sends the SMS fallbacks.

Wire model (SMPP 3.4 §5.3.2.44, §5.3.2.43, §5.3.2.31):

* out: submit_sm with ``ussd_service_op`` 3 (USSN request, notify) or 2 (USSR request, an answer
  wanted), source = the agency's *4 code, ``its_session_info`` = a session number we pick in the
  high octet, sequence 0, end-of-session clear;
* the SMSC answers submit_sm_resp at once (it took the request); an error status there is a
  failed push;
* the outcome comes later as deliver_sm from the phone's side with the same session number:
  ``ussd_service_op`` 19 (USSN confirm) for a notify, 18 (USSR confirm, the citizen's text) for
  a request. A phone that could not take it carries ``network_error_code`` (type 3 = GSM, then
  the MAP error, 3GPP TS 29.002 MAP-Errors local value): 72 ``ussd-Busy`` when the phone is
  already in another USSD dialog (MISSION §3: "a push to a phone already in a USSD dialog
  fails"), any other code is a failed push;
* no confirmation within ``ussd.push_timeout_seconds``: timeout.

Busy, failed and timeout send the fallback SMS. A push may, rarely, go out twice (a node that
dies between the submit and recording it: its claim is taken over after the lease); the SMS
fallback cannot, since it is created under one idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import orjson

from adapters.sms.esme import Deliver, OperatorClient, Submit
from adapters.ussd.codec import MAP_USSD_BUSY, NETWORK_GSM, UssdCodec, codec_for, network_error
from adapters.ussd.push import fallback_body, fallback_key
from adapters.ussd.smpp_front import screen_submit
from gateway.auth import AgencyPrincipal
from gateway.errors import Problem
from gateway.metrics import USSD_PUSH_FALLBACKS, USSD_PUSHES
from gateway.persian import normalize
from gateway.recipients import normalize_msisdn, smpp_address
from gateway.services import Services
from gateway.store.ussd_push import Push

log = logging.getLogger(__name__)

# Shown after the citizen answered a pushed request: the dialog is closed with it.
ANSWER_RECEIVED = "پاسخ شما ثبت شد.\nAnswer received."
_CLAIM = 32
_LEASE_SECONDS = 30.0
_POLL_SECONDS = 0.25
_SWEEP_SECONDS = 1.0
# A fallback still pending this long after its push ended is retried by any node.
_FALLBACK_RETRY_SECONDS = 10.0


class PushWorker:
    def __init__(
        self,
        services: Services,
        clients: Mapping[str, OperatorClient],
        codecs: dict[str, str],
        wake: asyncio.Event | None = None,
    ) -> None:
        self._svc = services
        self._store = services.store
        self._clients = clients
        self._codecs = codecs
        self._wake = wake or asyncio.Event()
        self._timeout = timedelta(seconds=services.config.ussd.push_timeout_seconds)
        self._rng = random.Random()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    # -- sending ---------------------------------------------------------------------------
    async def run(self) -> None:
        last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                claimed = await self._store.ussd_pushes.claim(_CLAIM, _LEASE_SECONDS)
                await asyncio.gather(*(self._send(p) for p in claimed))
                if loop.time() - last_sweep >= _SWEEP_SECONDS:
                    last_sweep = loop.time()
                    await self.sweep()
            except Exception:
                log.exception("ussd push round failed")
                await asyncio.sleep(1.0)  # the database may be away: do not spin on it
                claimed = []
            if claimed:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=_POLL_SECONDS)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _send(self, p: Push) -> None:
        now = datetime.now(UTC)
        if p.is_test:
            # Test keys never reach an operator (as for SMS): the push is delivered at once.
            await self._finish(p, "delivered", error_code="test")
            return
        routes = await self._svc.router.route(self._store, [p.msisdn])
        operator = routes.get(p.msisdn)
        client = self._clients.get(operator) if operator else None
        if operator is None or client is None:
            await self._finish(p, "failed", error_code="no_route")
            return
        codec = codec_for(operator, self._codecs)
        session = self._rng.randrange(1, 256)
        await self._store.ussd_pushes.set_route(p.id, operator, session)
        op = codec.ussr_request if p.mode == "request" else codec.ussn_request
        submit = screen_submit(
            codec, p.service_code, smpp_address(p.msisdn), p.text, op, session << 8
        )
        result = await client.submit(submit)
        if result.ok:
            await self._store.ussd_pushes.mark_sent(p.id, now)
            log.info("ussd push %s sent on %s", p.id, operator)
            return
        code = result.error.code if result.error else "NO_BIND"
        await self._finish(p, "failed", error_code=code, operator=operator)

    # -- confirmations (called by the SMPP front, before the deliver_sm_resp) --------------
    async def on_confirm(self, d: Deliver, codec: UssdCodec, info: int, text: str) -> bool:
        msisdn = normalize_msisdn(d.source_addr) or d.source_addr
        p = await self._store.ussd_pushes.waiting_for(
            d.operator, msisdn, codec.session_number(info)
        )
        if p is None:
            return False
        error = network_error(d.network_error_code)
        answer: str | None = None
        if error == (NETWORK_GSM, MAP_USSD_BUSY):
            status, code = "busy", "ussd_busy"
        elif error is not None:
            status, code = "failed", f"network_{error[0]}_{error[1]}"
        elif d.ussd_service_op == codec.ussr_confirm and p.mode == "request":
            status, code, answer = "answered", "", normalize(text)
        else:
            status, code = "delivered", ""
        ended = await self._finish(p, status, error_code=code, answer=answer)
        if ended is not None and status == "answered":
            # Close the dialog the push opened, with the end-of-session bit (§5.3.2.43).
            client = self._clients.get(d.operator)
            if client is not None:
                screen = screen_submit(
                    codec,
                    d.destination_addr,
                    d.source_addr,
                    ANSWER_RECEIVED,
                    codec.pssr_response,
                    codec.reply_info(info, True, 1),
                )
                task = asyncio.create_task(self._close(client, screen))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return True

    @staticmethod
    async def _close(client: OperatorClient, screen: Submit) -> None:
        result = await client.submit(screen)
        if not result.ok:
            log.warning("%s: closing screen of a push not submitted", client.name)

    # -- endings and fallbacks -------------------------------------------------------------
    async def _finish(
        self,
        p: Push,
        status: str,
        *,
        error_code: str = "",
        answer: str | None = None,
        operator: str = "",
    ) -> Push | None:
        ended = await self._store.ussd_pushes.finish(
            p.id, status, error_code=error_code, answer=answer, now=datetime.now(UTC)
        )
        if ended is None:
            return None  # a repeated or late confirmation: it ended already
        USSD_PUSHES.labels(ended.operator or operator or "none", status).inc()
        log.info("ussd push %s ended: %s %s", p.id, status, error_code)
        if ended.fallback == "pending":
            await self.fallback(ended)
        return ended

    async def sweep(self) -> None:
        """Time out unconfirmed pushes; retry fallbacks a dead node left pending."""
        now = datetime.now(UTC)
        for p in await self._store.ussd_pushes.expired(now - self._timeout, now):
            USSD_PUSHES.labels(p.operator or "none", "timeout").inc()
            log.info("ussd push %s ended: timeout", p.id)
            if p.fallback == "pending":
                await self.fallback(p)
        due = now - timedelta(seconds=_FALLBACK_RETRY_SECONDS)
        for p in await self._store.ussd_pushes.fallbacks_due(due, _CLAIM):
            await self.fallback(p)

    async def fallback(self, p: Push) -> None:
        """The fallback SMS through the agency's own send path, under one idempotency key: a
        second attempt (another node, a retry) replays the first instead of sending again."""
        store = self._store
        agency = await store.agencies.get(p.agency_id)
        key = await store.credentials.get_key(p.key_id)
        message_id = None
        error = ""
        if agency is None or not agency.active:
            error = "agency_suspended"
        elif key is None or key.revoked_at is not None:
            error = "key_revoked"
        else:
            body = fallback_body(p)
            try:
                _, response = await self._svc.sending.accept_with_idempotency(
                    AgencyPrincipal(agency, key), orjson.dumps(body), body, fallback_key(p.id)
                )
                message_id = orjson.loads(response)["id"]
            except Problem as exc:
                error = exc.code
        done = await store.ussd_pushes.fallback_done(
            p.id,
            message_id=None if message_id is None else uuid.UUID(message_id),
            error=error,
            now=datetime.now(UTC),
        )
        if done:
            outcome = "refused" if message_id is None else "sms_queued"
            USSD_PUSH_FALLBACKS.labels(p.operator or "none", outcome).inc()
            log.info("ussd push %s fallback: %s %s", p.id, outcome, error)
