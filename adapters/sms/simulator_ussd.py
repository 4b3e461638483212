"""USSD in the SMSC simulator: phones that dial, answer, and take network-initiated pushes.

The ESME's USSD submit_sm (``ussd_service_op`` 2 USSR request, 17 PSSR response, 3 USSN
request; SMPP 3.4 §5.3.2.44) are kept per phone as screens; a phone's dial (PSSR indication, 1)
and answer (USSR confirm, 18) go to the ESME as deliver_sm with the session's
``its_session_info`` (§5.3.2.43), echoing the session number and the sequence number of the
screen answered. Op values and the session-info TLV follow the codec of the simulated operator
(``SimulatorSettings.ussd_codec``, the same catalogue as the gateway's adapters/ussd/codec.py).

Each phone holds at most one USSD dialog, as a real handset does. A push (USSN, or a USSR that
opens a dialog) to a phone already in a dialog is refused the way a network refuses it: the
SMSC took the submit_sm (submit_sm_resp ESME_ROK), then the confirmation comes back as
deliver_sm with the confirm op (19, or 18 for a USSR) and ``network_error_code`` = GSM (3),
MAP error 72 ``ussd-Busy`` (SMPP 3.4 §5.3.2.31; 3GPP TS 29.002 MAP-Errors, local value 72,
among the errors of unstructuredSS-Notify and unstructuredSS-Request). A phone marked
unreachable never confirms (the gateway times the push out); one marked busy is busy whatever
its dialog state.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adapters.sms import pdu
from adapters.sms.esme import decode_deliver
from adapters.ussd.codec import CODECS, MAP_USSD_BUSY, NETWORK_GSM, UssdCodec

if TYPE_CHECKING:
    from adapters.sms.simulator import SmscSimulator

# A dialog left unanswered this long is over on the network side (MISSION §3: ~180 s).
DIALOG_SECONDS = 180.0


@dataclass(frozen=True, slots=True)
class UssdScreen:
    phone: str
    service: str
    text: str
    op: int
    its_session_info: int | None
    data_coding: int
    end: bool
    push: bool  # network-initiated (USSN, or a USSR that opened a dialog)


@dataclass(slots=True)
class _Dialog:
    session: int
    service: str
    since: float


class UssdPhones:
    def __init__(self, sim: SmscSimulator) -> None:
        self._sim = sim
        self.screens: list[UssdScreen] = []
        self._changed = asyncio.Event()
        # Open dialogs per phone by session number: one on a real handset; tests may open more
        # by dialling with explicit session numbers.
        self._dialogs: dict[str, dict[int, _Dialog]] = {}
        self.busy: set[str] = set()
        self.unreachable: set[str] = set()

    @property
    def codec(self) -> UssdCodec:
        return CODECS[self._sim.settings.ussd_codec]

    def in_dialog(self, phone: str) -> bool:
        now = time.monotonic()
        open_ = self._dialogs.get(phone, {})
        for session in [n for n, d in open_.items() if now - d.since > DIALOG_SECONDS]:
            del open_[session]
        return phone in self.busy or bool(open_)

    def record(self, p: pdu.Pdu) -> None:
        """One USSD submit_sm from the ESME (already answered with submit_sm_resp)."""
        from adapters.sms.simulator import decode_text

        c = self.codec
        # submit_sm and deliver_sm share their mandatory fields (SMPP 3.4 §4.4.1, §4.6.1).
        d = decode_deliver(p.raw_frame, "", "")
        op = d.ussd_service_op or 0
        if c.standard_session:
            info = d.its_session_info
        else:
            raw = d.vendor_tlvs.get(c.session_tag)
            info = int.from_bytes(raw, "big") if raw else None
        phone, service = d.destination_addr, d.source_addr
        session = c.session_number(info or 0)
        open_ = self._dialogs.setdefault(phone, {})
        ours = session in open_
        push = op == c.ussn_request or (op == c.ussr_request and not ours)
        if push and self.in_dialog(phone):
            self._confirm_later(phone, service, op, info or 0, busy=True)
            return
        if push and phone in self.unreachable:
            return  # never shown, never confirmed
        end = op in (c.pssr_response, c.ussn_request) or bool((info or 0) & 1)
        if end:
            open_.pop(session, None)
        elif op != c.ussn_request:
            open_[session] = _Dialog(session, service, time.monotonic())
        self.screens.append(
            UssdScreen(
                phone=phone,
                service=service,
                text=decode_text(d.data_coding, d.short_message),
                op=op,
                its_session_info=info,
                data_coding=d.data_coding,
                end=end,
                push=push,
            )
        )
        self._changed.set()
        if op == c.ussn_request:
            self._confirm_later(phone, service, op, info or 0, busy=False)

    def _confirm_later(self, phone: str, service: str, op: int, info: int, busy: bool) -> None:
        """The phone's confirmation, after the submit_sm_resp has gone (as on a network)."""
        c = self.codec
        confirm = c.ussn_confirm if op == c.ussn_request else c.ussr_confirm
        error = bytes((NETWORK_GSM,)) + MAP_USSD_BUSY.to_bytes(2, "big") if busy else None

        async def later() -> None:
            await asyncio.sleep(0.02)
            await self.send(phone, service, "", confirm, info & 0xFFFE, network_error=error)

        self._sim._spawn(later())

    async def send(
        self,
        phone: str,
        service: str,
        text: str,
        op: int,
        info: int,
        network_error: bytes | None = None,
    ) -> None:
        """One deliver_sm from the phone's side with ``op`` and the session info in the
        codec's place."""
        from adapters.sms.simulator import SimulatorError, split_text

        c = self.codec
        coding, parts = split_text(text, 0)
        fields: dict[str, Any] = {
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": phone,
            "destination_addr": service,
            "data_coding": coding,
            "short_message": parts[0],
        }
        raw = struct.pack(">HHB", 0x0501, 1, op)
        if c.standard_session:
            fields["its_session_info"] = info
        else:
            raw += struct.pack(">HHH", c.session_tag, 2, info)
        if network_error is not None:
            fields["network_error_code"] = network_error

        def build(seq: int) -> bytes:
            # smpplib's DeliverSM drops ussd_service_op (SMPP 3.4 §5.3.2.44): append by hand.
            frame = pdu.build("deliver_sm", seq, **fields) + raw
            return struct.pack(">L", len(frame)) + frame[4:]

        if self._sim._receiver(None) is None:
            raise SimulatorError("no receiver or transceiver is bound")
        if op == c.pssr_indication:
            dialog = _Dialog(c.session_number(info), service, time.monotonic())
            self._dialogs.setdefault(phone, {})[dialog.session] = dialog
        if not await self._sim._deliver(build, None):
            raise SimulatorError("the ESME did not accept the message")

    async def dial(self, phone: str, code: str, session: int) -> None:
        """The phone dials ``code``: PSSR indication, session number in the high octet."""
        await self.send(phone, code, code, self.codec.pssr_indication, (session & 0xFF) << 8)

    async def answer(self, phone: str, text: str) -> None:
        """The phone answers its current screen: USSR confirm with the session number and the
        sequence number of that screen, end-of-session clear."""
        last = next((s for s in reversed(self.screens) if s.phone == phone), None)
        if last is None or last.end:
            raise ValueError("no open USSD screen on this phone")
        info = (last.its_session_info or 0) & 0xFFFE
        await self.send(phone, last.service, text, self.codec.ussr_confirm, info)

    async def next_screen(self, phone: str, after: int, timeout: float = 10.0) -> UssdScreen:
        """The first screen for ``phone`` beyond the first ``after`` screens of that phone."""
        async with asyncio.timeout(timeout):
            while True:
                mine = [s for s in self.screens if s.phone == phone]
                if len(mine) > after:
                    return mine[after]
                self._changed.clear()
                await self._changed.wait()

    def hang_up(self, phone: str) -> None:
        """The user leaves the dialog (the network would release it)."""
        self._dialogs.pop(phone, None)

    def as_json(self, phone: str | None) -> list[dict[str, Any]]:
        return [
            {
                "phone": s.phone,
                "service": s.service,
                "text": s.text,
                "op": s.op,
                "its_session_info": s.its_session_info,
                "end": s.end,
                "push": s.push,
            }
            for s in self.screens
            if phone is None or s.phone == phone
        ]
