"""SMSC simulator (``payam smsc-sim``): a real SMPP 3.4 server for tests and local runs.

It binds ESMEs (transceiver, transmitter, receiver), answers submit_sm with message ids in hex or
decimal, sends delivery receipts (SMPP 3.4 Appendix B text and the receipted_message_id /
message_state TLVs), injects citizens' messages (MO) as deliver_sm, reassembles the concatenated
messages it receives, and injects faults (throttling, generic_nack, lost responses, dropped
connections, SMSC-initiated unbind). It decodes with smpplib (through ``pdu``), independently of
the client's hand-written hot path, so the tests cross-check both codecs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import random
import signal
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from aiohttp import web

from adapters.sms import pdu
from adapters.sms.simulator_faults import KINDS, Faults, SubmitLedger
from adapters.sms.simulator_ussd import UssdPhones

log = logging.getLogger(__name__)

IRAN = timezone(timedelta(hours=3, minutes=30), "IRST")  # no DST since 2022
# message_state (SMPP 3.4 §5.2.28) and an err: code for each receipt stat (Appendix B).
STATES = {
    "DELIVRD": (2, "000"),
    "EXPIRED": (3, "027"),
    "UNDELIV": (5, "001"),
    "REJECTD": (8, "002"),
}
_RESPONSE_BIT = 0x80000000
_STATS: tuple[str, ...] = ("submits", "binds", "bind_failures", "enquire_links", "unbinds")
_STATS += ("unbind_resps", "in_flight", "max_in_flight", "throttled", "nacked", "swallowed")
_STATS += ("drops", "deliver_sent", "deliver_acks", "receipts")
_LOST = -1  # a deliver_sm's "status" when its connection went away

# GSM 03.38 default alphabet and its 0x1B extension table (3GPP TS 23.038 §6.2.1).
_GSM = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXT = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~"}
_GSM_EXT |= {0x3E: "]", 0x40: "|", 0x65: "€"}
_TO_GSM = {c: bytes((i,)) for i, c in enumerate(_GSM) if i != 0x1B}
_TO_GSM |= {c: bytes((0x1B, i)) for i, c in _GSM_EXT.items()}


def split_text(text: str, ref: int) -> tuple[int, list[bytes]]:
    """(data_coding, short_message parts): GSM 03.38 unpacked septets (0) if every character has
    one, else UCS2 (8); several parts carry the 8-bit-reference concatenation UDH (TS 23.040
    §9.2.3.24.1). Escape pairs and surrogate pairs are never split."""
    try:
        units, coding, single, multi = [_TO_GSM[c] for c in text], 0, 160, 153
    except KeyError:
        units, coding, single, multi = [c.encode("utf-16-be") for c in text], 8, 140, 134
    if sum(map(len, units)) <= single:
        return coding, [b"".join(units)]
    parts: list[bytes] = []
    current = b""
    for unit in units:
        if len(current) + len(unit) > multi:
            parts.append(current)
            current = b""
        current += unit
    parts.append(current)
    udh = bytes((5, 0, 3, ref & 0xFF, len(parts)))
    return coding, [udh + bytes((i,)) + part for i, part in enumerate(parts, 1)]


def decode_text(data_coding: int, data: bytes) -> str:
    if data_coding == 8:
        return data.decode("utf-16-be", errors="replace")
    if data_coding in (1, 3):  # IA5 / Latin-1
        return data.decode("latin-1")
    if data_coding != 0:
        return data.hex()
    out: list[str] = []
    escape = False
    for octet in data:
        if escape:
            out.append(_GSM_EXT.get(octet & 0x7F, " "))
            escape = False
        elif octet & 0x7F == 0x1B:
            escape = True
        else:
            out.append(_GSM[octet & 0x7F])
    return "".join(out)


def parse_udh(sm: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    """(reference, total, sequence) from a concatenation IE (8- or 16-bit reference), payload."""
    if not sm or sm[0] + 1 > len(sm):
        return None, sm
    ies, payload = sm[1 : sm[0] + 1], sm[sm[0] + 1 :]
    concat = None
    i = 0
    while i + 2 <= len(ies):
        iei, length = ies[i], ies[i + 1]
        v = ies[i + 2 : i + 2 + length]
        if iei == 0x00 and length == 3:
            concat = (v[0], v[1], v[2])
        elif iei == 0x08 and length == 4:
            concat = ((v[0] << 8) | v[1], v[2], v[3])
        i += 2 + length
    return concat, payload


@dataclass
class SimulatorSettings:
    host: str = "127.0.0.1"
    port: int = 2775  # 0 = ephemeral
    system_id: str = "payam"
    password: str = "secret"
    id_format: Literal["hex", "dec"] = "hex"  # message_id in submit_sm_resp
    dlr_id_format: Literal["same", "hex", "dec"] = "same"  # the id in receipts (text and TLV)
    dlr_id_uppercase: bool = False
    dlr_id_zero_pad: int = 0  # receipts' ids left-padded with zeros to this width
    dlr_delay_seconds: float = 0.2
    outcomes: dict[str, float] = field(default_factory=lambda: {"DELIVRD": 1.0})
    dlr_duplicate_pct: float = 0.0
    dlr_early: bool = False  # the receipt goes out before the submit_sm_resp
    response_delay_seconds: float = 0.0
    throttle_pct: float = 0.0  # answer ESME_RTHROTTLED
    nack_pct: float = 0.0  # answer generic_nack
    no_response_pct: float = 0.0  # never answer
    drop_after: int | None = None  # close a connection at its Nth submit_sm (unanswered)
    unbind_after: int | None = None  # send unbind after answering a connection's Nth submit_sm
    ignore_enquire_link: bool = False
    redeliver_attempts: int = 3  # further tries of a deliver_sm answered with an error
    redeliver_delay_seconds: float = 0.1
    deliver_timeout_seconds: float = 5.0
    hold_seconds: float = 30.0  # keep a deliver_sm this long while no receiver is bound
    max_received: int = 100_000  # a long load run keeps only the newest received messages
    # USSD op values and session-info TLV of the simulated operator (adapters/ussd/codec.py).
    ussd_codec: str = "standard"
    seed: int | None = None


_RUNTIME: dict[str, tuple[type, ...]] = {
    "id_format": (str,),
    "dlr_id_format": (str,),
    "dlr_id_uppercase": (bool,),
    "dlr_id_zero_pad": (int,),
    "dlr_delay_seconds": (int, float),
    "outcomes": (dict,),
    "dlr_duplicate_pct": (int, float),
    "dlr_early": (bool,),
    "response_delay_seconds": (int, float),
    "throttle_pct": (int, float),
    "nack_pct": (int, float),
    "no_response_pct": (int, float),
    "drop_after": (int, type(None)),
    "unbind_after": (int, type(None)),
    "ignore_enquire_link": (bool,),
    "ussd_codec": (str,),
}


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    source: str
    destination: str
    text: str
    parts: int
    data_coding: int
    message_ids: tuple[str, ...]


class SimulatorError(Exception):
    pass


class _Conn:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.mode = ""  # "", "tx", "rx", "trx"
        self.sequence = 0
        self.pending: dict[int, asyncio.Future[int]] = {}
        self.submits = 0
        self.closed = False

    def write(self, frame: bytes) -> None:
        if not self.closed:
            self.writer.write(frame)

    def next_sequence(self) -> int:
        self.sequence = self.sequence % 0x7FFFFFFF + 1
        return self.sequence

    def close(self) -> None:
        self.closed = True
        for fut in self.pending.values():
            if not fut.done():
                fut.set_result(_LOST)
        if not self.writer.transport.is_closing():  # else an unbind_resp may still be queued
            self.writer.transport.abort()


class SmscSimulator:
    def __init__(self, settings: SimulatorSettings | None = None, http_port: int | None = None):
        self.settings = settings or SimulatorSettings()
        self.port = 0
        self.http_port = http_port
        self.rng = random.Random(self.settings.seed)
        self.received: list[ReceivedMessage] = []
        self.deliver_errors: list[int] = []  # error statuses of deliver_sm_resp / generic_nack
        self.submits = self.binds = self.bind_failures = self.enquire_links = self.unbinds = 0
        self.unbind_resps = self.in_flight = self.max_in_flight = self.throttled = self.nacked = 0
        self.swallowed = self.drops = self.deliver_sent = self.deliver_acks = self.receipts = 0
        self._next_id = self.rng.randrange(0x10000000, 0x40000000)
        self._mo_ref = self.rng.randrange(256)
        self._partial: dict[tuple[str, str, int, int], dict[int, tuple[bytes, str]]] = {}
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Set by stop(): redelivery and store-and-forward loops end. Cancelling alone is not
        # enough on Python 3.11: closing a connection completes the futures its tasks wait on,
        # and wait_for then swallows the cancellation (bpo-42130), so a _deliver task went on
        # holding a receipt for hold_seconds per attempt (90 s of test teardown).
        self._stopping = False
        self._server: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None
        self.ussd = UssdPhones(self)
        self.ledger = SubmitLedger()
        self.faults = Faults(self)
        self._unknown_id = 0xF0000000

    @property
    def bound(self) -> int:
        return sum(1 for c in self._conns if c.mode and not c.closed)

    async def start(self) -> None:
        s = self.settings
        self._server = await asyncio.start_server(self._serve, s.host, s.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.http_port is not None:
            self._runner = web.AppRunner(self._http_app(), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, s.host, self.http_port)
            await site.start()
            self.http_port = self._runner.addresses[0][1]
        log.info("SMSC simulator listening on %s:%d (HTTP %s)", s.host, self.port, self.http_port)

    async def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Conn(writer)
        self._conns.add(conn)
        try:
            while not conn.closed:
                frame = await pdu.read_frame(reader)
                _, cmd, status, seq = pdu.header(frame)
                if cmd & _RESPONSE_BIT:
                    fut = conn.pending.pop(seq, None)
                    if fut is not None and not fut.done():
                        fut.set_result(status)
                    continue
                try:
                    request = pdu.parse(frame)
                except pdu.PduError:
                    conn.write(pdu.generic_nack(seq, pdu.ESME_RINVCMDLEN))
                    continue
                request.raw_frame = frame  # vendor TLVs smpplib skips (USSD codecs)
                self._request(conn, request)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except pdu.PduError as exc:
            log.warning("simulator: dropping a connection: %s", exc)
        except Exception:
            log.exception("simulator: connection handler failed")
        finally:
            self._conns.discard(conn)
            conn.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            self._tasks.discard(task)

    def _request(self, conn: _Conn, p: pdu.Pdu) -> None:
        s = self.settings
        command = p.command
        if command.startswith("bind_"):
            status = pdu.ESME_ROK
            if conn.mode:
                status = pdu.ESME_RALYBND
            elif pdu.text(p.system_id) != s.system_id:
                status = pdu.ESME_RBINDFAIL
            elif pdu.text(p.password) != s.password:
                status = pdu.ESME_RINVPASWD
            if status == pdu.ESME_ROK and self.faults.take_bind_refusal():
                status = pdu.ESME_RBINDFAIL
            if status == pdu.ESME_ROK:
                conn.mode = {"bind_transmitter": "tx", "bind_receiver": "rx"}.get(command, "trx")
                self.binds += 1
            else:
                self.bind_failures += 1
            log.info("bind %s as %s: status 0x%08x", pdu.text(p.system_id), command, status)
            conn.write(pdu.build_response(p, status, system_id="PayamSim"))
        elif command == "submit_sm":
            if conn.mode in ("tx", "trx"):
                self._submit(conn, p)
            else:  # SMPP 3.4 §4.4: only a bound transmitter or transceiver may submit
                conn.write(pdu.build_response(p, pdu.ESME_RINVBNDSTS))
        elif command == "enquire_link":
            self.enquire_links += 1
            if not s.ignore_enquire_link:
                conn.write(pdu.build_response(p))
        elif command == "unbind":
            self.unbinds += 1
            conn.write(pdu.build_response(p))
            conn.closed = True  # the writer closes after the buffered unbind_resp
            conn.writer.close()
        else:
            conn.write(pdu.generic_nack(p.sequence, pdu.ESME_RINVCMDID))

    def _submit(self, conn: _Conn, p: pdu.Pdu) -> None:
        s = self.settings
        self.submits += 1
        conn.submits += 1
        if s.drop_after is not None and conn.submits >= s.drop_after:
            log.info("fault: dropping a connection at its submit %d", conn.submits)
            self.drops += 1
            conn.close()
            return
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        roll = self.rng.random() * 100
        if roll < s.no_response_pct:
            self.swallowed += 1
            self.in_flight -= 1
            return
        status = pdu.ESME_ROK
        message_id = ""
        receipt: tuple[int, str, str, str] | None = None
        if roll < s.no_response_pct + s.throttle_pct or self.faults.take_throttle():
            status = pdu.ESME_RTHROTTLED
            self.throttled += 1
        elif roll < s.no_response_pct + s.throttle_pct + s.nack_pct:
            status = -1  # generic_nack
            self.nacked += 1
        else:
            number = self._next_id
            self._next_id += 1
            message_id = format(number, "x") if s.id_format == "hex" else str(number)
            if getattr(p, "ussd_service_op", None) is not None:  # a USSD screen, not an SMS
                self.ussd.record(p)
                text = ""
            else:
                text = self._record(p, message_id)
            stat = self.rng.choices(list(s.outcomes), weights=list(s.outcomes.values()))[0]
            wanted = p.registered_delivery & 0x03  # SMPP 3.4 §5.2.17
            if wanted == 1 or (wanted == 2 and stat != "DELIVRD"):
                receipt = (number, stat, _receipt_stamp(), text)
        unbind = conn.submits == s.unbind_after  # after answering this one
        respond = (p, status, message_id, unbind)
        if s.response_delay_seconds > 0 or (receipt is not None and s.dlr_early):
            self._spawn(self._answer_later(conn, respond, receipt))
            return
        self._respond(conn, *respond)
        if receipt is not None:
            self._spawn(self._receipt(conn, p, receipt, s.dlr_delay_seconds))

    async def _answer_later(
        self,
        conn: _Conn,
        respond: tuple[Any, int, str, bool],
        receipt: tuple[int, str, str, str] | None,
    ) -> None:
        delay = self.settings.response_delay_seconds
        if receipt is not None and self.settings.dlr_early:
            self._spawn(self._receipt(conn, respond[0], receipt, 0.0))
            delay = max(delay, 0.05)  # the receipt is written first
            receipt = None
        await asyncio.sleep(delay)
        self._respond(conn, *respond)
        if receipt is not None:
            await self._receipt(conn, respond[0], receipt, self.settings.dlr_delay_seconds)

    def _respond(self, conn: _Conn, p: pdu.Pdu, status: int, message_id: str, unbind: bool) -> None:
        self.in_flight -= 1
        if status == -1:
            conn.write(pdu.generic_nack(p.sequence, pdu.ESME_RSYSERR))
        else:
            conn.write(pdu.build_response(p, status, message_id=message_id))
        if unbind and not conn.closed:
            self._spawn(self._unbind(conn))

    async def _unbind(self, conn: _Conn) -> None:
        """SMSC-initiated unbind (SMPP 3.4 §4.2), then close."""
        seq = conn.next_sequence()
        fut = conn.pending[seq] = asyncio.get_running_loop().create_future()
        conn.write(struct.pack(">LLLL", 16, pdu.command_id("unbind"), 0, seq))
        with contextlib.suppress(TimeoutError):
            if await asyncio.wait_for(fut, 2.0) == pdu.ESME_ROK:
                self.unbind_resps += 1
        conn.close()

    def _record(self, p: pdu.Pdu, message_id: str) -> str:
        """Keep whole (reassembled) messages; returns the part's text for its receipt."""
        sm: bytes = p.short_message or b""
        concat = None
        if p.message_payload:
            sm = p.message_payload
        elif p.esm_class & 0x40:  # UDHI (SMPP 3.4 §5.2.12)
            concat, sm = parse_udh(sm)
        if concat is None and p.sar_msg_ref_num is not None and p.sar_total_segments:
            concat = (p.sar_msg_ref_num, p.sar_total_segments, p.sar_segment_seqnum or 0)
        src, dst, coding = pdu.text(p.source_addr), pdu.text(p.destination_addr), p.data_coding
        if concat is None or concat[1] <= 1:
            done = [(sm, message_id)]
        else:
            key = (src, dst, concat[0], concat[1])
            parts = self._partial.setdefault(key, {})
            parts[concat[2]] = (sm, message_id)  # a resubmitted part replaces the first
            if len(parts) < concat[1]:
                return decode_text(coding, sm)
            del self._partial[key]
            done = [parts[i] for i in sorted(parts)]
        text = decode_text(coding, b"".join(d for d, _ in done))
        ids = tuple(i for _, i in done)
        self.received.append(ReceivedMessage(src, dst, text, len(done), coding, ids))
        self.ledger.add(src, dst, text)
        if len(self.received) > self.settings.max_received:
            del self.received[: len(self.received) // 2]
        if len(self._partial) > self.settings.max_received:  # parts that never completed
            for stale in list(self._partial)[: len(self._partial) // 2]:
                del self._partial[stale]
        return decode_text(coding, sm)

    def _receipt_id(self, number: int) -> str:
        s = self.settings
        fmt = s.id_format if s.dlr_id_format == "same" else s.dlr_id_format
        text = format(number, "X" if s.dlr_id_uppercase else "x") if fmt == "hex" else str(number)
        return text.rjust(s.dlr_id_zero_pad, "0")

    async def _receipt(
        self, conn: _Conn, p: pdu.Pdu, receipt: tuple[int, str, str, str], delay: float
    ) -> None:
        """Delivery receipt (SMPP 3.4 Appendix B and §5.3.2.12/.35) for one submit_sm."""
        if delay > 0:
            await asyncio.sleep(delay)
        number, stat, submitted, part_text = receipt
        rid = self._receipt_id(number)
        state, err = STATES[stat]
        sample = "".join(c if " " <= c <= "~" else "." for c in part_text[:20])
        body = (
            f"id:{rid} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
            f"submit date:{submitted} done date:{_receipt_stamp()} stat:{stat} err:{err} "
            f"text:{sample}"
        ).encode("ascii")
        fields: dict[str, Any] = {
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": pdu.text(p.destination_addr),
            "destination_addr": pdu.text(p.source_addr),
            "esm_class": 0x04,  # SMSC delivery receipt (SMPP 3.4 §5.2.12)
            "short_message": body,
            "receipted_message_id": rid,
            "message_state": state,
        }
        if stat != "DELIVRD":
            fields["network_error_code"] = b"\x03\x00" + bytes((int(err) & 0xFF,))
        copies = 2 if self.rng.random() * 100 < self.settings.dlr_duplicate_pct else 1
        for _ in range(copies):
            self.receipts += 1
            await self._deliver(lambda seq: pdu.build("deliver_sm", seq, **fields), conn)

    def bound_conns(self) -> list[_Conn]:
        return [c for c in self._conns if c.mode and not c.closed]

    def unbind(self, conn: _Conn) -> None:
        self._spawn(self._unbind(conn))

    def unknown_receipt(self, conn: _Conn) -> None:
        """A delivery receipt for a message id this SMSC never issued (a fault)."""
        self._unknown_id += 1
        rid = format(self._unknown_id, "x")
        fields: dict[str, Any] = {
            "source_addr": "989120000000",
            "destination_addr": "404000",
            "esm_class": 0x04,
            "short_message": f"id:{rid} sub:001 dlvrd:001 stat:DELIVRD err:000".encode(),
            "receipted_message_id": rid,
            "message_state": 2,
        }
        self.receipts += 1
        self._spawn(self._deliver(lambda seq: pdu.build("deliver_sm", seq, **fields), conn))

    def _receiver(self, prefer: _Conn | None) -> _Conn | None:
        if prefer is not None and prefer.mode in ("rx", "trx") and not prefer.closed:
            return prefer
        receivers = [c for c in self._conns if c.mode in ("rx", "trx") and not c.closed]
        return self.rng.choice(receivers) if receivers else None

    async def _deliver(self, build: Callable[[int], bytes], prefer: _Conn | None) -> bool:
        """Send a deliver_sm and wait for its response; retry on error, loss or timeout."""
        s = self.settings
        loop = asyncio.get_running_loop()
        for attempt in range(1 + s.redeliver_attempts):
            if self._stopping:
                return False
            if attempt:
                await asyncio.sleep(s.redeliver_delay_seconds)
            conn = self._receiver(prefer)
            # Store and forward, like a real SMSC: with no receiver bound (the ESME is
            # reconnecting), hold the message until one binds, for a while.
            held = 0.0
            while conn is None and held < s.hold_seconds and not self._stopping:
                await asyncio.sleep(0.05)
                held += 0.05
                conn = self._receiver(prefer)
            if conn is None:
                continue
            seq = conn.next_sequence()
            fut = conn.pending[seq] = loop.create_future()
            conn.write(build(seq))
            self.deliver_sent += 1
            try:
                status = await asyncio.wait_for(fut, s.deliver_timeout_seconds)
            except TimeoutError:
                status = _LOST
            finally:
                conn.pending.pop(seq, None)
            if status == pdu.ESME_ROK:
                self.deliver_acks += 1
                return True
            if status != _LOST:
                self.deliver_errors.append(status)
        return False

    async def inject_mo(
        self,
        source: str,
        destination: str,
        text: str,
        *,
        ussd_service_op: int | None = None,
        its_session_info: int | None = None,
    ) -> None:
        """A citizen's message to the bound receivers, split into concatenated parts if long."""
        if self._receiver(None) is None:
            raise SimulatorError("no receiver or transceiver is bound")
        self._mo_ref = (self._mo_ref + 1) & 0xFF
        coding, parts = split_text(text, self._mo_ref)
        for sm in parts:
            fields: dict[str, Any] = {
                "source_addr_ton": 1,
                "source_addr_npi": 1,
                "source_addr": source,
                "destination_addr": destination,
                "esm_class": 0x40 if len(parts) > 1 else 0,  # UDHI
                "data_coding": coding,
                "short_message": sm,
                "its_session_info": its_session_info,
            }
            if not await self._deliver(_mo_builder(fields, ussd_service_op), None):
                raise SimulatorError("the ESME did not accept the message")

    def _http_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/mo", self._http_mo)
        app.router.add_get("/messages", self._http_messages)
        app.router.add_post("/faults", self._http_faults)
        app.router.add_get("/stats", self._http_stats)
        app.router.add_get("/ussd/screens", self._http_ussd_screens)
        app.router.add_post("/ussd/dial", self._http_ussd_dial)
        app.router.add_post("/ussd/answer", self._http_ussd_answer)
        app.router.add_post("/ussd/phones", self._http_ussd_phones)
        app.router.add_post("/inject", self._http_inject)
        app.router.add_get("/submits", self._http_submits)
        return app

    async def _http_mo(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        try:
            await self.inject_mo(
                str(body["from"]),
                str(body["to"]),
                str(body["text"]),
                ussd_service_op=body.get("ussd_service_op"),
                its_session_info=body.get("its_session_info"),
            )
        except KeyError as exc:
            raise web.HTTPBadRequest(text=f"missing {exc}") from None
        except SimulatorError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"ok": True})

    async def _http_messages(self, request: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(m) for m in self.received])

    async def _http_faults(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        for key, value in body.items():
            types = _RUNTIME.get(key)
            if types is None or not isinstance(value, types) or _bad_value(key, value):
                raise web.HTTPBadRequest(text=f"bad fault setting {key!r}")
        for key, value in body.items():
            setattr(self.settings, key, float(value) if float in _RUNTIME[key] else value)
        return web.json_response({k: getattr(self.settings, k) for k in _RUNTIME})

    async def _http_inject(self, request: web.Request) -> web.Response:
        """POST /inject {"kind": one of simulator_faults.KINDS, "count": n}."""
        body = await _json_object(request)
        kind, count = body.get("kind"), body.get("count", 1)
        if kind not in KINDS or not isinstance(count, int) or not 1 <= count <= 10_000:
            raise web.HTTPBadRequest(text=f"kind must be one of {', '.join(KINDS)}")
        touched = self.faults.inject(str(kind), count)
        return web.json_response({"touched": touched, **self.faults.as_json()})

    async def _http_submits(self, request: web.Request) -> web.Response:
        """GET /submits: messages accepted, submits, and submits beyond the first of each."""
        return web.json_response(self.ledger.as_json())

    async def _http_ussd_screens(self, request: web.Request) -> web.Response:
        """GET /ussd/screens?phone=…: the USSD screens sent to phones (answer with POST /mo and
        ussd_service_op 18 with the screen's its_session_info)."""
        return web.json_response(self.ussd.as_json(request.query.get("phone")))

    async def _http_ussd_dial(self, request: web.Request) -> web.Response:
        """POST /ussd/dial {"phone", "code", "session"?}: the phone dials (PSSR indication)."""
        body = await _json_object(request)
        try:
            phone, code = str(body["phone"]), str(body["code"])
            session = int(body.get("session", self.rng.randrange(1, 256)))
            await self.ussd.dial(phone, code, session)
        except (KeyError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"bad dial: {exc}") from None
        except SimulatorError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"ok": True, "session": session})

    async def _http_ussd_answer(self, request: web.Request) -> web.Response:
        """POST /ussd/answer {"phone", "text"}: the phone answers its open screen (USSR
        confirm)."""
        body = await _json_object(request)
        try:
            await self.ussd.answer(str(body["phone"]), str(body["text"]))
        except KeyError as exc:
            raise web.HTTPBadRequest(text=f"missing {exc}") from None
        except (ValueError, SimulatorError) as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"ok": True})

    async def _http_ussd_phones(self, request: web.Request) -> web.Response:
        """POST /ussd/phones {"phone", "busy"?, "unreachable"?, "hang_up"?}: a phone's state."""
        body = await _json_object(request)
        phone = str(body.get("phone", ""))
        if not phone:
            raise web.HTTPBadRequest(text="missing phone")
        for name, group in (("busy", self.ussd.busy), ("unreachable", self.ussd.unreachable)):
            if name in body:
                (group.add if body[name] else group.discard)(phone)
        if body.get("hang_up"):
            self.ussd.hang_up(phone)
        return web.json_response(
            {
                "phone": phone,
                "in_dialog": self.ussd.in_dialog(phone),
                "unreachable": phone in self.ussd.unreachable,
            }
        )

    async def _http_stats(self, request: web.Request) -> web.Response:
        stats = {n: getattr(self, n) for n in _STATS}
        stats |= {"bound": self.bound, "received": len(self.received)}
        return web.json_response(stats)


def _mo_builder(fields: dict[str, Any], ussd_service_op: int | None) -> Callable[[int], bytes]:
    def build(seq: int) -> bytes:
        frame = pdu.build("deliver_sm", seq, **fields)
        if ussd_service_op is None:
            return frame
        # smpplib's DeliverSM drops ussd_service_op (SMPP 3.4 §5.3.2.44): append the TLV.
        frame += struct.pack(">HHB", 0x0501, 1, ussd_service_op)
        return struct.pack(">L", len(frame)) + frame[4:]

    return build


def _receipt_stamp() -> str:
    return datetime.now(IRAN).strftime("%y%m%d%H%M")


def _bad_value(key: str, value: Any) -> bool:
    if isinstance(value, bool) and bool not in _RUNTIME[key]:
        return True
    if key == "id_format":
        return value not in ("hex", "dec")
    if key == "dlr_id_format":
        return value not in ("same", "hex", "dec")
    if key == "ussd_codec":
        from adapters.ussd.codec import CODECS

        return value not in CODECS
    if key == "outcomes":
        return not value or any(
            k not in STATES or not isinstance(w, int | float) or w < 0 for k, w in value.items()
        )
    return False


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="payam smsc-sim", description="SMPP 3.4 SMSC simulator")
    add = p.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=2775, help="SMPP port (0 = any free port)")
    add("--http-port", type=int, default=None, help="control endpoint port (default: none)")
    add("--system-id", default="payam")
    add("--password", default="secret")
    add("--id-format", choices=("hex", "dec"), default="hex")
    add("--dlr-id-format", choices=("same", "hex", "dec"), default="same")
    add("--dlr-id-uppercase", action="store_true")
    add("--dlr-id-zero-pad", type=int, default=0, metavar="WIDTH")
    add("--dlr-delay", dest="dlr_delay_seconds", type=float, default=0.2, metavar="SECONDS")
    add("--outcome", action="append", default=[], metavar="STAT=WEIGHT", help="e.g. UNDELIV=1")
    add("--dlr-duplicate-pct", type=float, default=0.0)
    add("--dlr-early", action="store_true")
    add("--response-delay", dest="response_delay_seconds", type=float, default=0.0)
    add("--throttle-pct", type=float, default=0.0)
    add("--nack-pct", type=float, default=0.0)
    add("--no-response-pct", type=float, default=0.0)
    add("--drop-after", type=int, default=None, metavar="N")
    add("--unbind-after", type=int, default=None, metavar="N")
    add("--ussd-codec", default="standard", help="standard, vendor_session_tag or vendor_ops")
    add("--seed", type=int, default=None)
    add("--log-level", default="INFO")
    return p


def settings_from_args(ns: argparse.Namespace) -> SimulatorSettings:
    outcomes: dict[str, float] = {}
    for item in ns.outcome:
        stat, _, weight = item.partition("=")
        if stat not in STATES:
            raise SystemExit(f"--outcome: unknown stat {stat!r} (one of {', '.join(STATES)})")
        outcomes[stat] = float(weight or 1)
    names = [f.name for f in dataclasses.fields(SimulatorSettings) if hasattr(ns, f.name)]
    return SimulatorSettings(
        **{name: getattr(ns, name) for name in names}, outcomes=outcomes or {"DELIVRD": 1.0}
    )


async def run_forever(settings: SimulatorSettings, http_port: int | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    sim = SmscSimulator(settings, http_port=http_port)
    await sim.start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    started = time.monotonic()
    try:
        await done.wait()
    finally:
        await sim.stop()
        log.info(
            "SMSC simulator stopped after %.0f s, %d submits",
            time.monotonic() - started,
            sim.submits,
        )


def main(argv: list[str] | None = None) -> int:
    ns = build_arg_parser().parse_args(argv)
    settings = settings_from_args(ns)
    logging.basicConfig(level=ns.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(run_forever(settings, ns.http_port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
