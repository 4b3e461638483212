"""Fault injection and the submit ledger of the SMSC simulator (adapters/sms/simulator.py).

The ledger counts every whole message the simulator accepted by its reference (source,
destination, text), so a test can count messages an ESME submitted more than once — after a
crash, a resubmit is indistinguishable on the wire from a new message except by this.

Faults that are *settings* (lost responses, nacks, throttling, drops) live in
``SimulatorSettings``; the ones here are *actions* a test triggers over the control API
(``POST /inject {"kind": …, "count": n}``) or directly, each a way real SMSCs have failed us:

- ``throttle_burst``: the next ``count`` submit_sm are answered ESME_RTHROTTLED (§5.1.3)
- ``bind_refuse``: the next ``count`` binds are refused with ESME_RBINDFAIL
- ``reset``: every bound connection is closed with a TCP RST (SO_LINGER 0), not a FIN
- ``unbind``: the SMSC unbinds every session (§4.2) with submits possibly in flight
- ``unknown_receipts``: ``count`` delivery receipts for message ids never issued
- ``malformed_pdu``: a deliver_sm whose body is cut short (its command_length is honest)
- ``absurd_length``: a PDU header claiming command_length 0xFFFFFFFF
"""

from __future__ import annotations

import socket
import struct
from collections import Counter
from typing import TYPE_CHECKING, Any

from adapters.sms import pdu

if TYPE_CHECKING:
    from adapters.sms.simulator import SmscSimulator, _Conn

KINDS = (
    "throttle_burst",
    "bind_refuse",
    "reset",
    "unbind",
    "unknown_receipts",
    "malformed_pdu",
    "absurd_length",
)


class SubmitLedger:
    """How many times each whole message was accepted, by (source, destination, text)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def add(self, source: str, destination: str, text: str) -> None:
        self.counts[(source, destination, text)] += 1

    @property
    def messages(self) -> int:
        return len(self.counts)

    @property
    def duplicates(self) -> int:
        """Submits beyond the first of each message."""
        return sum(n - 1 for n in self.counts.values() if n > 1)

    def as_json(self) -> dict[str, int]:
        return {
            "messages": self.messages,
            "submits": sum(self.counts.values()),
            "duplicates": self.duplicates,
        }


class Faults:
    """Pending one-shot faults and the injectors that act at once."""

    def __init__(self, sim: SmscSimulator) -> None:
        self.sim = sim
        self.throttle_next = 0
        self.refuse_binds = 0
        self.injected: Counter[str] = Counter()

    def take_throttle(self) -> bool:
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return True
        return False

    def take_bind_refusal(self) -> bool:
        if self.refuse_binds > 0:
            self.refuse_binds -= 1
            return True
        return False

    def inject(self, kind: str, count: int = 1) -> int:
        """Trigger a fault; returns how many connections or PDUs it touched."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        self.injected[kind] += count
        if kind == "throttle_burst":
            self.throttle_next += count
            return count
        if kind == "bind_refuse":
            self.refuse_binds += count
            return count
        conns = self.sim.bound_conns()
        for conn in conns:
            if kind == "reset":
                _reset(conn)
            elif kind == "unbind":
                self.sim.unbind(conn)
            elif kind == "unknown_receipts":
                for _ in range(count):
                    self.sim.unknown_receipt(conn)
            elif kind == "malformed_pdu":
                for _ in range(count):
                    conn.write(_malformed_deliver(conn.next_sequence()))
            elif kind == "absurd_length":
                conn.write(struct.pack(">LLLL", 0xFFFFFFFF, pdu.command_id("deliver_sm"), 0, 1))
        return len(conns)

    def as_json(self) -> dict[str, Any]:
        return {
            "throttle_next": self.throttle_next,
            "refuse_binds": self.refuse_binds,
            "injected": dict(self.injected),
        }


def _reset(conn: _Conn) -> None:
    """Close with RST: SO_LINGER on with a zero timeout makes close() abort the connection."""
    sock = conn.writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _malformed_deliver(seq: int) -> bytes:
    """deliver_sm with service_type and source_addr but nothing after: a body cut short."""
    body = b"\x00\x01\x01" + b"98912" + b"\x00"
    return struct.pack(">LLLL", 16 + len(body), pdu.command_id("deliver_sm"), 0, seq) + body
