"""The SMPP operator front for USSD: deliver_sm in, submit_sm out (SMPP 3.4 §4.6, §4.4).

A deliver_sm with ``ussd_service_op`` = PSSR indication (the user dialled ``*4NN#``) opens a
dialog in the shared session engine (the same one as the HTTP front); USSR confirm carries the
user's answer. The engine wants every input so far, so this front appends the new input to the
history stored in the session row. The screen goes back as submit_sm with USSR request
(continue) or PSSR response (end), source and destination swapped, ``its_session_info`` with the
session number received, our sequence number of the screen and end-of-session on the final one
(§5.3.2.43), UCS2 (data_coding 8) when the text needs it, else GSM 03.38 (data_coding 0, §5.2.19).

Confirmations of network-initiated pushes (USSN confirm, or USSR confirm answering a pushed
request) go to the push worker (adapters/ussd/push_worker.py) when one waits for that phone and
session number. Operations we do not take are refused with ESME_RX_R_APPN, so the SMSC does not
redeliver them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from adapters.sms.encoding import decode, encode, fits_gsm7, gsm7_length
from adapters.sms.esme import Deliver, DeliverRejected, OperatorClient, Submit
from adapters.ussd.codec import UssdCodec, codec_for
from adapters.ussd.sessions import TIMED_OUT, SessionEngine
from gateway.recipients import normalize_msisdn
from gateway.store.ussd import SessionKey

log = logging.getLogger(__name__)


class PushConfirmations(Protocol):
    async def on_confirm(self, d: Deliver, codec: UssdCodec, info: int, text: str) -> bool:
        """True when the deliver_sm confirmed (or answered) one of our pushes."""
        ...


def is_ussd(d: Deliver) -> bool:
    """True for a deliver_sm that belongs to a USSD dialog rather than to the SMS replies."""
    return d.ussd_service_op is not None


def screen_octets(text: str) -> tuple[int, bytes]:
    """(data_coding, short_message) for one screen, never split: a USSD screen is one message
    (72 UCS2 characters is 144 octets, more than an SMS part but within short_message's 254)."""
    if fits_gsm7(text) and gsm7_length(text) <= 160:
        return 0, encode(text, ref=0).parts[0]
    return 8, text.encode("utf-16-be")


def screen_submit(
    codec: UssdCodec, service: str, phone: str, text: str, op: int, info: int
) -> Submit:
    """One USSD screen as submit_sm: ``ussd_service_op`` = ``op``, session info where the
    operator's codec wants it, no delivery receipt (a screen is not an SMS)."""
    data_coding, sm = screen_octets(text)
    extra, raw = codec.tlvs(info)
    return Submit(
        source_addr=service,
        source_addr_ton=0,
        source_addr_npi=0,
        destination_addr=phone,
        data_coding=data_coding,
        short_message=sm,
        registered_delivery=0,
        extra=MappingProxyType({"ussd_service_op": op, **extra}),
        raw_tlvs=raw,
    )


class SmppUssdFront:
    def __init__(
        self,
        engine: SessionEngine,
        clients: Mapping[str, OperatorClient],
        codecs: dict[str, str],
        pushes: PushConfirmations | None = None,
    ) -> None:
        self._engine = engine
        self._clients = clients
        self._codecs = codecs
        self._pushes = pushes
        self._tasks: set[asyncio.Task[None]] = set()

    def _session_info(self, codec: UssdCodec, d: Deliver) -> int:
        if codec.standard_session:
            return d.its_session_info or 0
        raw = d.vendor_tlvs.get(codec.session_tag)
        return int.from_bytes(raw, "big") if raw else 0

    async def on_deliver(self, d: Deliver) -> None:
        """Run one step through the engine (raises, so the SMSC redelivers, if it fails), then
        send the screen in the background so the deliver_sm_resp is not held up."""
        codec = codec_for(d.operator, self._codecs)
        op = d.ussd_service_op
        info = self._session_info(codec, d)
        text = decode(d.short_message, d.data_coding, udhi=False).text.strip()
        confirm = op in (codec.ussn_confirm, codec.ussr_confirm)
        if (
            confirm
            and self._pushes is not None
            and await self._pushes.on_confirm(d, codec, info, text)
        ):
            return
        if op == codec.ussn_confirm:
            # A repeated confirmation of a push that has ended (or one we never sent): taken,
            # so the SMSC stops redelivering it, and dropped.
            log.info("%s: USSN confirm for no waiting push", d.operator)
            return
        if op not in (codec.pssr_indication, codec.ussr_confirm):
            # PSSD (0), or an op only we send (2, 3, 17…), or an unknown vendor op.
            raise DeliverRejected(f"ussd_service_op {op} not taken")
        msisdn = normalize_msisdn(d.source_addr) or d.source_addr
        key = SessionKey(d.operator, msisdn, str(codec.session_number(info)))
        store = self._engine.store
        row = await store.ussd.get_session(key)
        if op == codec.pssr_indication:
            service_code = text or d.destination_addr
            # A fresh dial reusing a session number of a finished or progressed dialog starts
            # over; a repeat of the dial itself (no inputs yet) gets the same screen again.
            if row is not None and (row.ended or row.history):
                await store.ussd.delete_session(key, row.rev)
            history: tuple[str, ...] = ()
        elif row is None:
            # An answer to a dialog we no longer have (purged after the idle timeout, or a late
            # answer to a push that timed out): say so rather than "unknown code".
            self.send(
                d.operator,
                screen_submit(
                    codec,
                    d.destination_addr,
                    d.source_addr,
                    TIMED_OUT,
                    codec.pssr_response,
                    codec.reply_info(info, True, codec.sequence(info) + 1),
                ),
            )
            return
        elif (
            codec.sequenced
            and row.history
            and codec.sequence(info) == (len(row.history) - 1) & 0x7F
            and text == row.history[-1]
        ):
            # The SMSC redelivered an answer we already took (it echoes the sequence number of
            # the screen answered, and that screen is behind us): the same reply again.
            service_code, history = "", row.history
        else:
            service_code, history = "", (*row.history, text)
        reply = await self._engine.handle(key, service_code, history)
        out_op = codec.pssr_response if reply.end else codec.ussr_request
        submit = screen_submit(
            codec,
            d.destination_addr,
            d.source_addr,
            reply.text,
            out_op,
            codec.reply_info(info, reply.end, len(history)),
        )
        self.send(d.operator, submit)

    def send(self, operator: str, submit: Submit) -> None:
        """Send a screen in the background (the deliver_sm_resp is not held up by it)."""
        client = self._clients.get(operator)
        if client is None:
            return
        task = asyncio.create_task(self._send(client, submit))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, client: OperatorClient, submit: Submit) -> None:
        result = await client.submit(submit)
        if not result.ok:
            log.warning("%s: USSD screen not submitted (%s)", client.name, result.error)
