"""Asyncio SMPP 3.4 ESME (client) for one mobile operator: several binds, windowing, pacing.

Shape: an ``OperatorClient`` owns one ``_Link`` per SMPP session (a transceiver, or a transmitter
and a receiver per configured bind). Each link has a supervisor task that connects, binds, waits
for the session to end and reconnects with backoff; each live ``_Session`` has a reader task that
dispatches responses by sequence number and answers the SMSC's requests, and a keepalive task.

Hot path: submit_sm is encoded by hand (smpplib builds ~45 attributes per PDU, ~100 µs; the
equivalence is tested byte for byte) and responses are matched on the header alone; smpplib
(through ``pdu``) is used for the rare PDUs (binds) and for submits carrying extra fields.
deliver_sm is decoded here because smpplib's DeliverSM lacks ussd_service_op (SMPP 3.4 §5.3.2.44)
and fails on it, which the USSD channel needs.

The window is a per-bind in-flight counter plus one FIFO queue of waiters for the whole operator
(a semaphore per bind could not hand a waiter to whichever bind frees a slot first, nor move it
off a bind that went down); waiters give up after the response timeout with NO_BIND.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from adapters.sms import errors, pdu
from adapters.sms.errors import SendError

log = logging.getLogger(__name__)

_SUBMIT_SM = pdu.command_id("submit_sm")
_SUBMIT_SM_RESP = pdu.command_id("submit_sm_resp")
_DELIVER_SM = pdu.command_id("deliver_sm")
_DELIVER_SM_RESP = pdu.command_id("deliver_sm_resp")
_ENQUIRE_LINK = pdu.command_id("enquire_link")
_ENQUIRE_LINK_RESP = pdu.command_id("enquire_link_resp")
_UNBIND = pdu.command_id("unbind")
_UNBIND_RESP = pdu.command_id("unbind_resp")
_GENERIC_NACK = pdu.command_id("generic_nack")
_ALERT_NOTIFICATION = pdu.command_id("alert_notification")
_RESPONSE_BIT = 0x80000000
_MAX_SEQUENCE = 0x7FFFFFFF  # SMPP 3.4 §3.2: sequence_number 0x00000001..0x7FFFFFFF
_HIGH_WATER = 256 * 1024  # await drain() only once this much is buffered in the transport
_MAX_THROTTLE_PAUSE = 60.0
_TIMER_SLACK = 0.001  # expire up to 1 ms early rather than re-arm a timer that fired early
_HEAD = struct.Struct(">LLLL")
_CMD_STATUS = struct.Struct(">LL")
_TLV = struct.Struct(">HH")
# submit_sm body (SMPP 3.4 §4.4.1) with the fields we never set left at their defaults:
# service_type "", protocol_id 0, priority_flag 0, schedule_delivery_time "", validity_period ""
# (SMSC default), replace_if_present_flag 0, sm_default_msg_id 0.
_SUBMIT_BODY = b"\x00%c%c%b\x00%c%c%b\x00%c\x00\x00\x00\x00%c\x00%c\x00%c%b"
_BIND_COMMAND = {"trx": "bind_transceiver", "tx": "bind_transmitter", "rx": "bind_receiver"}
_DROPPED = b""  # a pending request's result when its connection went away (None = timed out)

Role = Literal["trx", "tx", "rx"]


@dataclass(frozen=True, slots=True)
class BindSettings:
    host: str
    port: int
    system_id: str
    password: str = field(repr=False)
    system_type: str = ""
    mode: Literal["trx", "tx_rx"] = "trx"
    window: int = 10
    enquire_link_seconds: float = 30
    response_timeout_seconds: float = 10
    reconnect_min_seconds: float = 0.5
    reconnect_max_seconds: float = 30
    throttle_backoff_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    name: str
    binds: tuple[BindSettings, ...]
    tps: float = 0  # operator contract: submits per second across all binds, 0 = unlimited
    burst: int | None = None  # submits allowed back to back; None = 1 (strict pacing)


@dataclass(frozen=True, slots=True, kw_only=True)
class Submit:
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    esm_class: int = 0
    data_coding: int = 0
    short_message: bytes = b""
    registered_delivery: int = 1
    # Further submit_sm fields or TLVs by smpplib name (ussd_service_op, its_session_info, …).
    extra: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    # Encoded vendor-specific TLVs (tags 0x1400..0x3FFF, §3.2.1.1) smpplib has no name for,
    # appended as they are (per-operator USSD codecs).
    raw_tlvs: bytes = b""


@dataclass(frozen=True, slots=True)
class SubmitResult:
    ok: bool
    message_id: str  # as the SMSC wrote it in submit_sm_resp; "" on error
    error: SendError | None
    bind: str


@dataclass(frozen=True, slots=True)
class Deliver:
    source_addr: str
    destination_addr: str
    esm_class: int
    data_coding: int
    short_message: bytes
    receipted_message_id: str | None
    message_state: int | None
    network_error_code: bytes | None
    ussd_service_op: int | None
    its_session_info: int | None
    sar_msg_ref_num: int | None
    sar_total_segments: int | None
    sar_segment_seqnum: int | None
    message_payload: bytes | None
    operator: str
    bind: str
    # Vendor-specific TLVs (tags 0x1400..0x3FFF, SMPP 3.4 §3.2.1.1) by tag, for per-operator
    # USSD codecs that keep the session number there.
    vendor_tlvs: Mapping[int, bytes] = field(default_factory=lambda: MappingProxyType({}))


def header_only(command: int, status: int, sequence: int) -> bytes:
    """A PDU without a body (enquire_link, unbind and their responses; SMPP 3.4 §4.2, §4.11)."""
    return _HEAD.pack(16, command, status, sequence)


def encode_submit(sequence: int, s: Submit) -> bytes:
    """submit_sm (SMPP 3.4 §4.4.1); byte-identical to smpplib's encoding of the same fields."""
    if s.extra or s.raw_tlvs:
        # Submit's field names are smpplib's parameter names.
        fields = {
            f.name: getattr(s, f.name)
            for f in dataclasses.fields(s)
            if f.name not in ("extra", "raw_tlvs")
        }
        frame = pdu.build("submit_sm", sequence, **fields, **s.extra) + s.raw_tlvs
        return struct.pack(">L", len(frame)) + frame[4:]
    sm = s.short_message
    if len(sm) > 254:  # SMPP 3.4 §5.2.21; longer texts are split or go in message_payload
        raise ValueError("short_message longer than 254 octets")
    body = _SUBMIT_BODY % (
        s.source_addr_ton,
        s.source_addr_npi,
        s.source_addr.encode("latin-1"),
        s.dest_addr_ton,
        s.dest_addr_npi,
        s.destination_addr.encode("latin-1"),
        s.esm_class,
        s.registered_delivery,
        s.data_coding,
        len(sm),
        sm,
    )
    return _HEAD.pack(16 + len(body), _SUBMIT_SM, 0, sequence) + body


def decode_deliver(frame: bytes, operator: str, bind: str) -> Deliver:
    """deliver_sm (SMPP 3.4 §4.6.1): mandatory fields, then TLVs (§3.2.1, unknown ones skipped)."""
    try:
        pos = frame.index(0, 16) + 3  # service_type, source_addr_ton, source_addr_npi
        end = frame.index(0, pos)
        source = frame[pos:end].decode("latin-1")
        pos = end + 3  # NUL, dest_addr_ton, dest_addr_npi
        end = frame.index(0, pos)
        destination = frame[pos:end].decode("latin-1")
        esm_class = frame[end + 1]
        pos = frame.index(0, end + 4) + 1  # esm_class, protocol_id, priority_flag, schedule…
        pos = frame.index(0, pos) + 1  # validity_period
        data_coding = frame[pos + 2]  # after registered_delivery, replace_if_present_flag
        sm_end = pos + 5 + frame[pos + 4]  # sm_default_msg_id, sm_length
        if sm_end > len(frame):
            raise IndexError
        short_message = frame[pos + 5 : sm_end]
        tlvs: dict[int, bytes] = {}
        pos = sm_end
        while pos < len(frame):
            tag, length = _TLV.unpack_from(frame, pos)
            if pos + 4 + length > len(frame):
                raise IndexError
            tlvs[tag] = frame[pos + 4 : pos + 4 + length]
            pos += 4 + length
    except (ValueError, IndexError, struct.error):
        raise pdu.PduError("malformed deliver_sm") from None

    def num(tag: int) -> int | None:
        value = tlvs.get(tag)
        return int.from_bytes(value, "big") if value else None

    receipted = tlvs.get(0x001E)  # a C-Octet String: strip its NUL
    return Deliver(
        source_addr=source,
        destination_addr=destination,
        esm_class=esm_class,
        data_coding=data_coding,
        short_message=short_message,
        receipted_message_id=None
        if receipted is None
        else receipted.rstrip(b"\0").decode("latin-1"),
        message_state=num(0x0427),
        network_error_code=tlvs.get(0x0423),
        ussd_service_op=num(0x0501),
        its_session_info=num(0x1383),
        sar_msg_ref_num=num(0x020C),
        sar_total_segments=num(0x020E),
        sar_segment_seqnum=num(0x020F),
        message_payload=tlvs.get(0x0424),
        operator=operator,
        bind=bind,
        vendor_tlvs=MappingProxyType({t: v for t, v in tlvs.items() if 0x1400 <= t <= 0x3FFF}),
    )


class DeliverRejected(Exception):
    """Raised by an on_deliver handler for a deliver_sm that must not be redelivered (an
    operation we do not take): answered ESME_RX_R_APPN (SMPP 3.4 §5.1.3) instead of
    ESME_RX_T_APPN."""


class _BindRejected(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"status 0x{status:08x}")
        self.status = status


class _Session:
    """One bound TCP connection: sequence numbers, outstanding requests, reader and keepalive.

    Every request of a session has the same response timeout, so deadlines come in FIFO order:
    one deque and one timer per session replace a timer per PDU (heap operations showed in
    profiles). Writes made in one loop iteration go out in one ``writer.write`` (one syscall).
    """

    def __init__(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.link = link
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.loop = asyncio.get_running_loop()
        self.timeout = link.settings.response_timeout_seconds
        self.sequence = 1  # the bind used 1
        self.pending: dict[int, asyncio.Future[bytes | None]] = {}
        self.deadlines: deque[tuple[float, asyncio.Future[bytes | None], int]] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.out: list[bytes] = []
        self.bound = True
        self.closed = asyncio.Event()
        self.last_rx = self.loop.time()
        self.deliveries: set[asyncio.Task[None]] = set()
        self.tasks = [
            asyncio.create_task(self._read_loop(), name=f"smpp-read-{link.name}"),
            asyncio.create_task(self._keepalive(), name=f"smpp-keepalive-{link.name}"),
        ]

    def next_sequence(self) -> int:
        seq = self.sequence
        while True:
            seq = seq + 1 if seq < _MAX_SEQUENCE else 1
            if seq not in self.pending:  # after a wrap, skip numbers still outstanding
                self.sequence = seq
                return seq

    def send(self, frame: bytes) -> None:
        if not self.out:
            self.loop.call_soon(self.flush)
        self.out.append(frame)

    def flush(self) -> None:
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            if not self.transport.is_closing():
                self.writer.write(data)

    def send_now(self, frame: bytes) -> None:
        self.out.append(frame)
        self.flush()

    def request(self, frame: bytes) -> asyncio.Future[bytes | None]:
        """Send a request (its sequence number already in ``frame``); the future gets the
        response frame, None on timeout, or b"" if the connection drops."""
        seq = _HEAD.unpack_from(frame)[3]
        fut: asyncio.Future[bytes | None] = self.loop.create_future()
        self.pending[seq] = fut
        deadline = self.loop.time() + self.timeout
        self.deadlines.append((deadline, fut, seq))
        if self.timer is None:
            self.timer = self.loop.call_at(deadline, self._expire)
        self.send(frame)
        return fut

    def forget(self, seq: int) -> None:
        fut = self.pending.pop(seq, None)
        if fut is not None:
            fut.cancel()

    def _expire(self) -> None:
        self.timer = None
        now = self.loop.time() + _TIMER_SLACK
        deadlines = self.deadlines
        while deadlines:
            deadline, fut, seq = deadlines[0]
            if not fut.done():
                if deadline > now:
                    self.timer = self.loop.call_at(deadline, self._expire)
                    return
                del self.pending[seq]
                fut.set_result(None)
            deadlines.popleft()

    async def _read_loop(self) -> None:
        name = self.link.name
        pending, deadlines = self.pending, self.deadlines
        try:
            while True:
                frame = await pdu.read_frame(self.reader)
                self.last_rx = self.loop.time()
                _, cmd, _, seq = _HEAD.unpack_from(frame)
                if cmd & _RESPONSE_BIT:
                    fut = pending.pop(seq, None)
                    if fut is None:  # late (timed out) or never sent: nothing waits for it
                        self.link.op.unknown_responses += 1
                        log.debug("%s: response 0x%08x to unknown sequence %d", name, cmd, seq)
                        continue
                    if not fut.done():
                        fut.set_result(frame)
                    while deadlines and deadlines[0][1].done():  # keep the deque short
                        deadlines.popleft()
                elif cmd == _DELIVER_SM:
                    task = asyncio.create_task(self._deliver(frame, seq))
                    self.deliveries.add(task)
                    task.add_done_callback(self.deliveries.discard)
                elif cmd == _ENQUIRE_LINK:
                    self.send(header_only(_ENQUIRE_LINK_RESP, pdu.ESME_ROK, seq))
                elif cmd == _UNBIND:  # SMPP 3.4 §4.2: the SMSC ends the session; we reconnect
                    log.info("%s: unbind from the SMSC (sequence %d)", name, seq)
                    self.bound = False
                    self.send_now(header_only(_UNBIND_RESP, pdu.ESME_ROK, seq))
                    return
                elif cmd != _ALERT_NOTIFICATION:  # §4.12: alert_notification has no response
                    log.info("%s: unsupported command 0x%08x, sequence %d", name, cmd, seq)
                    self.send(pdu.generic_nack(seq, pdu.ESME_RINVCMDID))
        except (asyncio.IncompleteReadError, OSError) as exc:
            if self.bound:  # else we asked for the end (unbind)
                log.warning("%s: connection lost (%s)", name, type(exc).__name__)
        except pdu.PduError as exc:
            self.link.op.malformed += 1
            log.warning("%s: dropping connection: %s", name, exc)
        except Exception:
            log.exception("%s: reader failed", name)
        finally:
            self._teardown()

    def _teardown(self) -> None:
        """Every outstanding request completes as dropped; the supervisor reconnects."""
        self.bound = False
        self.tasks[1].cancel()  # keepalive
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for fut in self.pending.values():
            if not fut.done():
                fut.set_result(_DROPPED)
        self.pending.clear()
        self.deadlines.clear()
        self.flush()
        self.writer.close()  # sends what is buffered (an unbind_resp) before closing
        self.closed.set()

    async def _deliver(self, frame: bytes, seq: int) -> None:
        link = self.link
        op = link.op
        try:
            deliver = decode_deliver(frame, op.name, link.name)
        except pdu.PduError:
            op.malformed += 1
            log.warning("%s: malformed deliver_sm, sequence %d", link.name, seq)
            self.send(pdu.generic_nack(seq, pdu.ESME_RINVCMDLEN))
            return
        status = pdu.ESME_ROK
        try:
            await op.on_deliver(deliver)
            op.delivers += 1
        except DeliverRejected as exc:
            log.info("%s: deliver_sm %d rejected (%s)", link.name, seq, exc)
            op.deliver_errors += 1
            status = pdu.ESME_RX_R_APPN
        except Exception as exc:
            # Not acknowledged as delivered: ESME_RX_T_APPN (SMPP 3.4 §5.1.3) makes the SMSC
            # deliver it again later. Only the type is logged: the text may hold personal data.
            log.warning("%s: deliver_sm %d not taken (%s)", link.name, seq, type(exc).__name__)
            op.deliver_errors += 1
            status = pdu.ESME_RX_T_APPN
        # Acknowledge only now that the core has the receipt or message (SMPP 3.4 §4.6.2);
        # the body is message_id, unused and set to NULL.
        self.send(_HEAD.pack(17, _DELIVER_SM_RESP, status, seq) + b"\0")

    async def _keepalive(self) -> None:
        """enquire_link after enquire_link_seconds without traffic (SMPP 3.4 §4.11)."""
        interval = self.link.settings.enquire_link_seconds
        while True:
            idle = self.loop.time() - self.last_rx
            if idle < interval:
                await asyncio.sleep(interval - idle)
                continue
            result = await self.request(header_only(_ENQUIRE_LINK, 0, self.next_sequence()))
            if result is None:
                log.warning("%s: no enquire_link_resp; dropping the connection", self.link.name)
                self.transport.abort()
                return
            if result == _DROPPED:
                return

    async def unbind(self, timeout: float) -> None:
        """Graceful end (SMPP 3.4 §4.2): unbind, wait for unbind_resp, close."""
        self.bound = False
        fut = self.request(header_only(_UNBIND, pdu.ESME_ROK, self.next_sequence()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await fut
        self.flush()
        self.writer.close()

    async def close(self) -> None:
        tasks = [*self.tasks, *self.deliveries]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._teardown()  # again, in case the reader was cancelled before it ran
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class _Link:
    """One SMPP session of a bind (trx, tx or rx) and the supervisor that keeps it bound."""

    def __init__(self, op: OperatorClient, settings: BindSettings, name: str, role: Role) -> None:
        self.op = op
        self.settings = settings
        self.name = name
        self.role = role
        self.window = settings.window
        self.session: _Session | None = None
        self.in_flight = 0
        self.paused_until = 0.0
        self.throttle_pause = settings.throttle_backoff_seconds
        self.task: asyncio.Task[None] | None = None
        # Drained by an administrator (OperatorClient.drain): no submits, unbound, not
        # re-bound until undrained.
        self.draining = False
        self.undrained = asyncio.Event()
        self.undrained.set()

    async def run(self) -> None:
        attempt = 0
        while not self.op.stopping:
            if self.draining:
                await self.undrained.wait()
                continue
            session: _Session | None = None
            try:
                session = await self._open()
            except _BindRejected as exc:
                self.op.bind_failures += 1
                log.warning("%s: bind rejected, %s", self.name, exc)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, pdu.PduError) as exc:
                self.op.bind_failures += 1
                log.warning("%s: cannot bind: %s", self.name, exc or type(exc).__name__)
            except Exception:  # never let the supervisor die: the bind would stay down
                self.op.bind_failures += 1
                log.exception("%s: cannot bind", self.name)
            if session is not None:
                log.info("%s: bound", self.name)
                attempt = 0
                self.session = session
                self.op.link_up(self)
                try:
                    await session.closed.wait()
                finally:
                    self.session = None
                    await session.close()
                if self.op.stopping:
                    return
                self.op.reconnects += 1
            attempt += 1
            # Exponential backoff with full jitter, so binds dropped together do not reconnect
            # together (and an SMSC that drops us right after bind is not hammered).
            lo, hi = self.settings.reconnect_min_seconds, self.settings.reconnect_max_seconds
            await asyncio.sleep(random.uniform(lo, min(hi, lo * 2 ** min(attempt, 30))))

    async def _open(self) -> _Session:
        s = self.settings
        async with asyncio.timeout(s.response_timeout_seconds):
            reader, writer = await asyncio.open_connection(s.host, s.port)
        command = _BIND_COMMAND[self.role]
        try:
            writer.write(
                pdu.build(
                    command,
                    1,
                    system_id=s.system_id,
                    password=s.password,
                    system_type=s.system_type,
                    interface_version=0x34,  # SMPP 3.4 §5.2.4
                )
            )
            async with asyncio.timeout(s.response_timeout_seconds):
                frame = await pdu.read_frame(reader)
            _, cmd, status, _ = pdu.header(frame)
            if cmd != pdu.command_id(command + "_resp") or status != pdu.ESME_ROK:
                raise _BindRejected(status)
        except BaseException:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            raise
        return _Session(self, reader, writer)

    async def submit(self, s: Submit) -> SubmitResult:
        session = self.session
        assert session is not None  # the caller picked a bound link in this same step
        self.in_flight += 1
        seq = session.next_sequence()
        try:
            fut = session.request(encode_submit(seq, s))
            if session.transport.get_write_buffer_size() > _HIGH_WATER:
                with contextlib.suppress(ConnectionError):  # the reader fails the request
                    await session.writer.drain()
            frame = await fut
        finally:
            self.in_flight -= 1
            session.forget(seq)
            self.op.slot_freed()
        return self._result(frame, seq)

    def _result(self, frame: bytes | None, seq: int) -> SubmitResult:
        op = self.op
        if frame is None:
            log.debug("%s: no submit_sm_resp for sequence %d", self.name, seq)
            op.timeouts += 1
            error = errors.TIMEOUT
        elif frame == _DROPPED:
            error = errors.BIND_DOWN
        else:
            cmd, status = _CMD_STATUS.unpack_from(frame, 4)
            if cmd == _SUBMIT_SM_RESP and status == pdu.ESME_ROK:
                self.throttle_pause = self.settings.throttle_backoff_seconds
                op.submits_ok += 1
                end = frame.find(0, 16)
                message_id = frame[16 : end if end >= 0 else None].decode("latin-1")
                return SubmitResult(True, message_id, None, self.name)
            error = errors.from_status(status)
            # Some SMSCs throttle with a generic_nack carrying ESME_RTHROTTLED (SMPP 3.4 §4.3).
            if cmd == _GENERIC_NACK and not error.throttle:
                error = errors.GENERIC_NACK
            if error.throttle:
                self._pause()
            log.debug("%s: submit sequence %d failed, status 0x%08x", self.name, seq, status)
        op.submits_failed += 1
        return SubmitResult(False, "", error, self.name)

    def _pause(self) -> None:
        """Stop using this bind for a while; repeats double the pause, a success resets it."""
        self.op.throttles += 1
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now < self.paused_until:  # responses to submits sent before the pause began
            return
        log.info("%s: throttled by the SMSC, pausing %.2f s", self.name, self.throttle_pause)
        self.paused_until = now + self.throttle_pause
        self.throttle_pause = min(self.throttle_pause * 2, _MAX_THROTTLE_PAUSE)
        loop.call_at(self.paused_until, self.op.wake, self.window)


class _Pacer:
    """Token bucket as GCRA (virtual scheduling): each submit reserves the next slot."""

    def __init__(self, tps: float, burst: int | None) -> None:
        self.interval = 1.0 / tps
        self.tolerance = (max(1, burst or 1) - 1) * self.interval
        self.tat = 0.0  # theoretical arrival time of the next submit

    def delay(self, now: float) -> float:
        tat = max(self.tat, now)
        self.tat = tat + self.interval
        return tat - self.tolerance - now


class OperatorClient:
    """The SMPP client for one operator. ``submit`` never raises for protocol problems."""

    def __init__(
        self, settings: OperatorSettings, on_deliver: Callable[[Deliver], Awaitable[None]]
    ) -> None:
        if not settings.binds:
            raise ValueError(f"operator {settings.name!r} has no binds")
        self.settings = settings
        self.name = settings.name
        self.on_deliver = on_deliver
        self.submits_ok = 0
        self.submits_failed = 0
        self.throttles = 0
        self.timeouts = 0
        self.reconnects = 0
        self.delivers = 0
        self.deliver_errors = 0
        self.unknown_responses = 0
        self.bind_failures = 0  # bind refused, or the connection or bind exchange failed
        self.malformed = 0  # PDUs from the SMSC we could not parse
        self.stopping = False
        # Set by closing(): submits that would wait for a bind or a window slot fail at once
        # (NO_BIND, retried later) while bound links finish what they carry.
        self._closing = False
        self._links: list[_Link] = []
        self._bind_links: list[list[_Link]] = []  # the sessions of each configured bind
        for i, b in enumerate(settings.binds):
            if b.mode == "trx":
                links = [_Link(self, b, f"{self.name}:{i}", "trx")]
            else:
                links = [
                    _Link(self, b, f"{self.name}:{i}:tx", "tx"),
                    _Link(self, b, f"{self.name}:{i}:rx", "rx"),
                ]
            self._bind_links.append(links)
            self._links.extend(links)
        self._tx_links = [link for link in self._links if link.role != "rx"]
        self._wait_limit = max(b.response_timeout_seconds for b in settings.binds)
        self._pacer = _Pacer(settings.tps, settings.burst) if settings.tps > 0 else None
        self._waiters: deque[tuple[float, asyncio.Future[bool]]] = deque()
        self._waiter_timer: asyncio.TimerHandle | None = None
        self._n_waiting = 0
        self._bound_changed = asyncio.Event()

    @property
    def binds_up(self) -> int:
        """SMPP sessions currently bound (a tx_rx bind counts as two)."""
        return sum(1 for link in self._links if link.session is not None and link.session.bound)

    @property
    def in_flight(self) -> int:
        return sum(link.in_flight for link in self._tx_links)

    async def start(self) -> None:
        """Start every bind's supervisor; binding goes on in the background."""
        if any(link.task is not None for link in self._links):
            return
        for link in self._links:
            link.task = asyncio.create_task(link.run(), name=f"smpp-bind-{link.name}")

    def bind_running(self, index: int) -> bool:
        return any(link.task is not None for link in self._bind_links[index])

    async def start_bind(self, index: int) -> None:
        """Start one configured bind (for nodes that share binds through leases)."""
        for link in self._bind_links[index]:
            if link.task is None and not self.stopping:
                link.task = asyncio.create_task(link.run(), name=f"smpp-bind-{link.name}")

    async def stop_bind(self, index: int, unbind_timeout: float = 2.0) -> None:
        """Unbind one configured bind and stop its supervisor; its in-flight submits end as
        BIND_DOWN and are retried (on whichever node then holds a bind)."""
        for link in self._bind_links[index]:
            task, link.task = link.task, None
            session = link.session
            if session is not None and session.bound:
                with contextlib.suppress(Exception):
                    await session.unbind(unbind_timeout)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def wait_bound(self, timeout: float, count: int | None = None) -> bool:
        """Wait until ``count`` sessions (default: all) are bound."""
        need = len(self._links) if count is None else count
        try:
            async with asyncio.timeout(timeout):
                while self.binds_up < need:
                    self._bound_changed.clear()
                    await self._bound_changed.wait()
        except TimeoutError:
            return False
        return True

    async def submit(self, s: Submit) -> SubmitResult:
        if self._pacer is not None and not self.stopping:
            delay = self._pacer.delay(asyncio.get_running_loop().time())
            if delay > 0 and self._closing:  # shutting down: retried later, within the TPS
                self.submits_failed += 1
                return SubmitResult(False, "", errors.NO_BIND, "")
            if delay > 0:
                await asyncio.sleep(delay)
        # While others wait for a slot, queue behind them (FIFO) rather than take a freed slot.
        link = None if self._n_waiting else self._pick()
        if link is None:
            link = await self._acquire()
            if link is None:
                self.submits_failed += 1
                return SubmitResult(False, "", errors.NO_BIND, "")
        return await link.submit(s)

    def _pick(self) -> _Link | None:
        """The bound, unpaused transmitting link with the fewest submits in flight."""
        if self.stopping:
            return None
        best: _Link | None = None
        now = -1.0
        for link in self._tx_links:
            session = link.session
            if session is None or not session.bound or link.in_flight >= link.window:
                continue
            if link.draining:
                continue
            if link.paused_until:
                if now < 0:
                    now = asyncio.get_running_loop().time()
                if now < link.paused_until:
                    continue
            if best is None or link.in_flight < best.in_flight:
                best = link
        return best

    async def _acquire(self) -> _Link | None:
        """Wait in FIFO order for a window slot on any bind (or for a bind to come up), up to the
        response timeout. Waits share one timer: their deadlines come in order."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_limit
        again = False
        self._n_waiting += 1
        try:
            while not self.stopping and not self._closing:
                fut: asyncio.Future[bool] = loop.create_future()
                if again:  # woken first but the slot went elsewhere: keep the head of the queue
                    self._waiters.appendleft((deadline, fut))
                else:
                    self._waiters.append((deadline, fut))
                timer = self._waiter_timer
                if timer is None or timer.when() > deadline:
                    if timer is not None:
                        timer.cancel()
                    self._waiter_timer = loop.call_at(deadline, self._expire_waiters)
                try:
                    if not await fut:
                        return None
                except asyncio.CancelledError:
                    if fut.done() and not fut.cancelled() and fut.result():
                        self.wake(1)  # woken but leaving: hand the wake-up to the next waiter
                    raise
                link = self._pick()
                if link is not None:
                    return link
                again = True
            return None
        finally:
            self._n_waiting -= 1

    def _expire_waiters(self) -> None:
        loop = asyncio.get_running_loop()
        self._waiter_timer = None
        now = loop.time() + _TIMER_SLACK
        waiters = self._waiters
        while waiters:
            deadline, fut = waiters[0]
            if not fut.done():
                if deadline > now:
                    self._waiter_timer = loop.call_at(deadline, self._expire_waiters)
                    return
                fut.set_result(False)
            waiters.popleft()

    def wake(self, n: int) -> None:
        waiters = self._waiters
        while n > 0 and waiters:
            fut = waiters.popleft()[1]
            if not fut.done():
                fut.set_result(True)
                n -= 1

    def slot_freed(self) -> None:
        if self._waiters:
            self.wake(1)

    def link_up(self, link: _Link) -> None:
        self._bound_changed.set()
        self.wake(link.window)

    def _links_of(self, index: int) -> list[_Link]:
        """The sessions of bind ``index`` (one trx, or a tx and an rx)."""
        if not 0 <= index < len(self._bind_links):
            raise ValueError(f"operator {self.name!r} has no bind {index}")
        return self._bind_links[index]

    async def drain(self, index: int) -> None:
        """Take bind ``index`` out of service gracefully: no new submits on it, its in-flight
        submits answered (up to the response timeout), then unbind (SMPP 3.4 §4.2) and stay
        unbound until ``undrain``. The other binds carry the traffic meanwhile."""
        links = self._links_of(index)
        for link in links:
            link.draining = True
            link.undrained.clear()
        pending = [f for link in links if link.session for f in link.session.pending.values()]
        if pending:
            await asyncio.wait(pending, timeout=self._wait_limit)
        for link in links:
            session = link.session
            if link.draining and session is not None and session.bound:
                await session.unbind(min(2.0, self._wait_limit))
        log.info("operator %s: bind %d drained", self.name, index)

    def undrain(self, index: int) -> None:
        for link in self._links_of(index):
            link.draining = False
            link.undrained.set()

    def drained(self) -> list[int]:
        return sorted(
            {
                i
                for i in range(len(self.settings.binds))
                for link in self._links_of(i)
                if link.draining
            }
        )

    def closing(self) -> None:
        """Shutdown has begun: no submit waits any more for a bind or a window slot, so a
        dispatcher round with every bind down ends at once (its messages are retried after
        restart) instead of holding the shutdown for the wait limit."""
        self._closing = True
        self.wake(len(self._waiters))

    async def stop(self) -> None:
        """Let in-flight submits and deliveries finish (short grace), unbind every session."""
        if self.stopping:
            return
        self.stopping = True
        self.wake(len(self._waiters))
        if self._waiter_timer is not None:
            self._waiter_timer.cancel()
        sessions = [link.session for link in self._links if link.session is not None]
        outstanding: list[asyncio.Future[Any]] = [f for s in sessions for f in s.pending.values()]
        outstanding += [t for s in sessions for t in s.deliveries]
        if outstanding:
            await asyncio.wait(outstanding, timeout=min(5.0, self._wait_limit))
        unbind_timeout = min(2.0, self._wait_limit)
        await asyncio.gather(
            *(
                link.session.unbind(unbind_timeout)
                for link in self._links
                if link.session is not None and link.session.bound
            ),
            return_exceptions=True,
        )
        tasks = [link.task for link in self._links if link.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info("operator %s: stopped", self.name)
