"""USSD in the SMSC simulator: the screens the ESME submits (submit_sm carrying
``ussd_service_op`` 2 USSR request or 17 PSSR response, SMPP 3.4 §5.3.2.44) kept per phone, and
a phone's dial (PSSR indication, 1) and answer (USSR confirm, 18) injected as deliver_sm with the
session's ``its_session_info`` (§5.3.2.43)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adapters.sms import pdu

if TYPE_CHECKING:
    from adapters.sms.simulator import SmscSimulator

PSSR_INDICATION, USSR_REQUEST, PSSR_RESPONSE, USSR_CONFIRM = 1, 2, 17, 18


@dataclass(frozen=True, slots=True)
class UssdScreen:
    phone: str
    service: str
    text: str
    op: int
    its_session_info: int | None
    data_coding: int

    @property
    def end(self) -> bool:
        return self.op == PSSR_RESPONSE


class UssdPhones:
    def __init__(self, sim: SmscSimulator) -> None:
        self._sim = sim
        self.screens: list[UssdScreen] = []
        self._changed = asyncio.Event()

    def record(self, p: pdu.Pdu) -> None:
        """One USSD submit_sm from the ESME (already answered with submit_sm_resp)."""
        from adapters.sms.simulator import decode_text

        info = p.its_session_info
        self.screens.append(
            UssdScreen(
                phone=pdu.text(p.destination_addr),
                service=pdu.text(p.source_addr),
                text=decode_text(p.data_coding, p.short_message or b""),
                op=int(p.ussd_service_op),
                its_session_info=None if info is None else int(info),
                data_coding=int(p.data_coding),
            )
        )
        self._changed.set()

    async def dial(self, phone: str, code: str, session: int) -> None:
        """The phone dials ``code``: PSSR indication, session number in the high octet."""
        await self._sim.inject_mo(
            phone,
            code,
            code,
            ussd_service_op=PSSR_INDICATION,
            its_session_info=(session & 0xFF) << 8,
        )

    async def answer(self, phone: str, text: str) -> None:
        """The phone answers its current screen: USSR confirm with the same session info."""
        last = next((s for s in reversed(self.screens) if s.phone == phone), None)
        if last is None or last.end:
            raise ValueError("no open USSD screen on this phone")
        info = (last.its_session_info or 0) & 0xFFFE
        await self._sim.inject_mo(
            phone, last.service, text, ussd_service_op=USSR_CONFIRM, its_session_info=info
        )

    async def next_screen(self, phone: str, after: int, timeout: float = 10.0) -> UssdScreen:
        """The first screen for ``phone`` beyond the first ``after`` screens of that phone."""
        async with asyncio.timeout(timeout):
            while True:
                mine = [s for s in self.screens if s.phone == phone]
                if len(mine) > after:
                    return mine[after]
                self._changed.clear()
                await self._changed.wait()

    def as_json(self, phone: str | None) -> list[dict[str, Any]]:
        return [
            {
                "phone": s.phone,
                "service": s.service,
                "text": s.text,
                "op": s.op,
                "its_session_info": s.its_session_info,
                "end": s.end,
            }
            for s in self.screens
            if phone is None or s.phone == phone
        ]
