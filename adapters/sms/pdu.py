"""SMPP 3.4 framing over asyncio streams, with smpplib as the PDU codec.

smpplib's blocking client is not for asyncio, so we use only its codec: ``build`` and ``parse``.
Two smpplib quirks are handled here once: ``make_pdu(sequence=…)`` does not set the sequence
(the attribute must be assigned after construction), and parsing must allow unknown optional
parameters, since operators' SMSCs send vendor TLVs (SMPP 3.4 §3.2.1 says to ignore them).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, TypeAlias

import smpplib.command_codes
import smpplib.consts
import smpplib.smpp

HEADER_LEN = 16
# SMPP 3.4 sets no upper bound; real PDUs stay far below this, and a bound keeps a broken peer
# from making us allocate gigabytes.
MAX_PDU_LEN = 64 * 1024

# smpplib.command.Command; smpplib ships no type information.
Pdu: TypeAlias = Any

# command_status values we use by name (SMPP 3.4 §5.1.3).
ESME_ROK = smpplib.consts.SMPP_ESME_ROK
ESME_RINVMSGLEN = 0x00000001
ESME_RINVCMDLEN = 0x00000002
ESME_RINVCMDID = 0x00000003
ESME_RINVBNDSTS = 0x00000004
ESME_RALYBND = 0x00000005
ESME_RSYSERR = 0x00000008
ESME_RINVSRCADR = 0x0000000A
ESME_RINVDSTADR = 0x0000000B
ESME_RBINDFAIL = 0x0000000D
ESME_RINVPASWD = 0x0000000E
ESME_RINVSYSID = 0x0000000F
ESME_RMSGQFUL = 0x00000014
ESME_RTHROTTLED = 0x00000058
ESME_RINVESMCLASS = 0x00000043
ESME_RSUBMITFAIL = 0x00000045
ESME_RX_T_APPN = 0x00000064
ESME_RX_P_APPN = 0x00000065
ESME_RX_R_APPN = 0x00000066
ESME_RINVDCS = 0x00000104


class PduError(Exception):
    """The peer sent bytes that are not a valid PDU; the connection should be dropped."""


def command_id(name: str) -> int:
    return int(smpplib.command_codes.get_command_code(name))


def build(command: str, sequence: int, **fields: Any) -> bytes:
    """Encode one PDU. ``fields`` are SMPP parameter names (strings may be str or bytes)."""
    pdu = smpplib.smpp.make_pdu(command, sequence=sequence, **fields)
    pdu.sequence = sequence  # make_pdu ignores it (smpplib quirk)
    data: bytes = pdu.generate()
    return data


def build_response(request: Pdu, status: int = ESME_ROK, **fields: Any) -> bytes:
    """Encode the response to ``request`` with the same sequence number."""
    name = f"{request.command}_resp"
    pdu = smpplib.smpp.make_pdu(name, sequence=request.sequence, status=status, **fields)
    pdu.sequence = request.sequence
    pdu.status = status
    data: bytes = pdu.generate()
    return data


def generic_nack(sequence: int, status: int) -> bytes:
    """generic_nack (SMPP 3.4 §4.3): header only."""
    return struct.pack(">LLLL", HEADER_LEN, command_id("generic_nack"), status, sequence)


def header(frame: bytes) -> tuple[int, int, int, int]:
    length, cmd, status, seq = struct.unpack(">LLLL", frame[:HEADER_LEN])
    return length, cmd, status, seq


def parse(frame: bytes) -> Pdu:
    """Decode one whole frame (header included)."""
    try:
        pdu: Pdu = smpplib.smpp.parse_pdu(frame, sequence=0, allow_unknown_opt_params=True)
    except Exception as exc:  # smpplib raises assorted errors on malformed bodies
        raise PduError(f"cannot parse PDU: {type(exc).__name__}") from None
    if pdu is None:
        raise PduError(f"unknown command id 0x{header(frame)[1]:08x}")
    return pdu


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """Read one PDU frame; raises IncompleteReadError at EOF, PduError on a bad length."""
    head = await reader.readexactly(4)
    (length,) = struct.unpack(">L", head)
    if not HEADER_LEN <= length <= MAX_PDU_LEN:
        raise PduError(f"bad command_length {length}")
    return head + await reader.readexactly(length - 4)


def text(value: Any) -> str:
    """smpplib returns C-octet strings as bytes; addresses and ids are ASCII."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)
