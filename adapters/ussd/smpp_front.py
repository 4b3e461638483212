"""The SMPP operator front for USSD: deliver_sm in, submit_sm out (SMPP 3.4 §4.6, §4.4).

A deliver_sm with ``ussd_service_op`` = PSSR indication (the user dialled ``*4NN#``) opens a
dialog in the shared session engine (the same one as the HTTP front); USSR confirm carries the
user's answer. The engine wants every input so far, so this front appends the new input to the
history stored in the session row. The screen goes back as submit_sm with USSR request
(continue) or PSSR response (end), source and destination swapped, ``its_session_info`` echoed
with end-of-session set on the final screen (§5.3.2.43), UCS2 (data_coding 8) when the text
needs it, else GSM 03.38 (data_coding 0, §5.2.19).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import MappingProxyType

from adapters.sms.encoding import decode, encode, fits_gsm7, gsm7_length
from adapters.sms.esme import Deliver, OperatorClient, Submit
from adapters.ussd.codec import UssdCodec, codec_for
from adapters.ussd.sessions import SessionEngine
from gateway.recipients import normalize_msisdn
from gateway.store.ussd import SessionKey

log = logging.getLogger(__name__)


def is_ussd(d: Deliver) -> bool:
    """True for a deliver_sm that belongs to a USSD dialog rather than to the SMS replies."""
    return d.ussd_service_op is not None


def screen_octets(text: str) -> tuple[int, bytes]:
    """(data_coding, short_message) for one screen, never split: a USSD screen is one message
    (72 UCS2 characters is 144 octets, more than an SMS part but within short_message's 254)."""
    if fits_gsm7(text) and gsm7_length(text) <= 160:
        return 0, encode(text, ref=0).parts[0]
    return 8, text.encode("utf-16-be")


class SmppUssdFront:
    def __init__(
        self,
        engine: SessionEngine,
        clients: Mapping[str, OperatorClient],
        codecs: dict[str, str],
    ) -> None:
        self._engine = engine
        self._clients = clients
        self._codecs = codecs
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
        msisdn = normalize_msisdn(d.source_addr) or d.source_addr
        key = SessionKey(d.operator, msisdn, str(codec.session_number(info)))
        store = self._engine.store
        if op == codec.pssr_indication:
            service_code = text or d.destination_addr
            row = await store.ussd.get_session(key)
            # A fresh dial reusing a session number of a finished or progressed dialog starts
            # over; a repeat of the dial itself (no inputs yet) gets the same screen again.
            if row is not None and (row.ended or row.history):
                await store.ussd.delete_session(key, row.rev)
            history: tuple[str, ...] = ()
        elif op == codec.ussr_confirm:
            row = await store.ussd.get_session(key)
            if row is None:
                service_code, history = "", ()  # nothing to continue: ends as unknown
            else:
                service_code, history = "", (*row.history, text)
        else:
            log.info("%s: USSD op %s not handled", d.operator, op)
            return
        reply = await self._engine.handle(key, service_code, history)
        out_op = codec.pssr_response if reply.end else codec.ussr_request
        data_coding, sm = screen_octets(reply.text)
        submit = Submit(
            source_addr=d.destination_addr,
            source_addr_ton=0,
            source_addr_npi=0,
            destination_addr=d.source_addr,
            data_coding=data_coding,
            short_message=sm,
            registered_delivery=0,
            extra=MappingProxyType(
                {"ussd_service_op": out_op, "its_session_info": codec.reply_info(info, reply.end)}
            ),
        )
        client = self._clients.get(d.operator)
        if client is None:
            return
        task = asyncio.create_task(self._send(client, submit))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, client: OperatorClient, submit: Submit) -> None:
        result = await client.submit(submit)
        if not result.ok:
            log.warning("%s: USSD screen not submitted (%s)", client.name, result.error)
