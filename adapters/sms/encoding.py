"""Text to SMPP ``short_message`` parts and back: GSM 03.38 or UCS2, with concatenation UDH.

We split texts ourselves because smpplib's ``make_parts`` cuts by octet count. That can leave
a GSM escape (0x1B) at the end of one part and its extension code at the start of the next.
It can also cut a UTF-16 surrogate pair in two. Either way the handset shows garbage.
Here a part boundary always falls between whole characters, so ``plan`` (count only) and
``encode`` (build bytes) share one greedy rule rather than dividing a length.

Wire forms:
* GSM 7-bit (3GPP TS 23.038 §6.2.1) goes **unpacked**: one septet value per octet, and an
  extension character as 0x1B followed by its code. SMPP data_coding 0 carries this form
  (SMPP 3.4 §5.2.19); septet packing is the SMSC's job on the air interface.
* UCS2 is UTF-16BE (data_coding 8). Characters outside the BMP (emoji) take two code units.
* A multipart message starts each part with a UDH (3GPP TS 23.040 §9.2.2.1, §9.2.3.24.1):
  ``05 00 03 ref total seq``. The submitter sets esm_class |= 0x40 (UDHI, SMPP 3.4 §5.2.12).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

Encoding: TypeAlias = Literal["gsm7", "ucs2"]

# SMPP 3.4 §5.2.19 data_coding values.
DC_DEFAULT = 0x00  # SMSC default alphabet: GSM 03.38 for the SMSCs we connect to
DC_IA5 = 0x01  # IA5/ASCII; some SMSCs expect GSM 03.38 under this value, so we treat it alike
DC_LATIN1 = 0x03
DC_UCS2 = 0x08

# 3GPP TS 23.040 §9.2.3.24.1: the concatenation IE counts parts in one octet.
MAX_PARTS = 255

# Message capacity (3GPP TS 23.040 §9.2.3.16: 140 octets of TP-UD). A 6-octet UDH
# (05 00 03 ref total seq) leaves 134 octets. That is 153 septets (134*8/7, rounded down)
# or 67 UTF-16 code units.
GSM7_SINGLE = 160
GSM7_PER_PART = 153
UCS2_SINGLE = 70
UCS2_PER_PART = 67

_ESC = 0x1B

# 3GPP TS 23.038 §6.2.1 default alphabet. The index is the septet value. 0x1B is the escape
# to the extension table, not a character, so it is left out of the encoding map below.
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# 3GPP TS 23.038 §6.2.1.1 extension table, reached by 0x1B. Each character costs 2 septets.
_GSM_EXT_BY_CODE: dict[int, str] = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_GSM_BASIC_MAP: dict[str, int] = {ch: i for i, ch in enumerate(_GSM_BASIC) if i != _ESC}
_GSM_EXT_MAP: dict[str, int] = {ch: code for code, ch in _GSM_EXT_BY_CODE.items()}
_GSM_EXT_CHARS = frozenset(_GSM_EXT_MAP)
_GSM_CHARS = frozenset(_GSM_BASIC_MAP) | _GSM_EXT_CHARS


class TooManyParts(ValueError):
    """The text needs more than MAX_PARTS parts. The message says only counts, never the text."""

    def __init__(self, encoding: Encoding, parts: int) -> None:
        super().__init__(f"{encoding} message needs {parts} parts; at most {MAX_PARTS} allowed")
        self.encoding = encoding
        self.parts = parts


@dataclass(frozen=True, slots=True)
class Encoded:
    encoding: Encoding
    data_coding: int
    # Each item is the complete short_message octets, UDH included when udhi is True.
    parts: tuple[bytes, ...]
    # True when multipart: the submitter must set esm_class |= 0x40 (SMPP 3.4 §5.2.12).
    udhi: bool
    # Septets (gsm7) or UTF-16 code units (ucs2) of the whole text, without UDH.
    units: int


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    # (reference, total, sequence) from a concatenation IE, else None.
    concat: tuple[int, int, int] | None


# --- GSM 03.38 -------------------------------------------------------------------------------


def fits_gsm7(text: str) -> bool:
    """True when every character is in the GSM 03.38 default or extension table."""
    return _GSM_CHARS.issuperset(text)


def gsm7_length(text: str) -> int:
    """Septets needed for ``text``. Extension characters count 2 (escape plus code).

    Raises ValueError if a character is not in GSM 03.38.
    """
    if not fits_gsm7(text):
        raise ValueError("text contains characters outside GSM 03.38")
    return _units(text, "gsm7")


def _gsm7_cost(ch: str) -> int:
    return 2 if ch in _GSM_EXT_CHARS else 1


def _ucs2_cost(ch: str) -> int:
    # Outside the BMP, UTF-16 needs a surrogate pair (RFC 2781 §2.1).
    return 2 if ord(ch) > 0xFFFF else 1


def _gsm7_bytes(text: str) -> bytes:
    out = bytearray()
    for ch in text:
        code = _GSM_BASIC_MAP.get(ch)
        if code is None:
            out.append(_ESC)
            out.append(_GSM_EXT_MAP[ch])
        else:
            out.append(code)
    return bytes(out)


def _ucs2_bytes(text: str) -> bytes:
    # surrogatepass: a lone surrogate in the input costs one unit in _ucs2_cost, and it goes
    # out as that one unit instead of raising deep in a send path.
    return text.encode("utf-16-be", "surrogatepass")


def _gsm7_text(data: bytes) -> str:
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == _ESC:
            # Extension table (TS 23.038 §6.2.1.1). 0x1B 0x1B (a second extension table)
            # and undefined codes become '?'. So does a trailing lone escape.
            nxt = data[i + 1] if i + 1 < n else -1
            out.append(_GSM_EXT_BY_CODE.get(nxt, "?"))
            i += 2
            continue
        # Octets above 0x7F are not septets; unpacked GSM never carries them.
        out.append(_GSM_BASIC[b] if b < 0x80 else "?")
        i += 1
    return "".join(out)


# --- splitting -------------------------------------------------------------------------------


def _limits(encoding: Encoding) -> tuple[Callable[[str], int], int, int]:
    """(cost of one character, units in a single message, units per part)."""
    if encoding == "gsm7":
        return _gsm7_cost, GSM7_SINGLE, GSM7_PER_PART
    return _ucs2_cost, UCS2_SINGLE, UCS2_PER_PART


def _split(text: str, cost: Callable[[str], int], per_part: int) -> list[str]:
    """Greedy split into parts of at most ``per_part`` units.

    A 2-unit character (escape pair or surrogate pair) that does not fit moves whole to the
    next part. So a part may hold one unit less than ``per_part``.
    """
    parts: list[str] = []
    start = used = 0
    for i, ch in enumerate(text):
        w = cost(ch)
        if used + w > per_part:
            parts.append(text[start:i])
            start, used = i, 0
        used += w
    parts.append(text[start:])
    return parts


def _count(text: str, cost: Callable[[str], int], per_part: int, units: int) -> int:
    if units == len(text):
        # Every character is one unit, so no pair can straddle a boundary.
        return -(-units // per_part)
    count, used = 1, 0
    for ch in text:
        w = cost(ch)
        if used + w > per_part:
            count += 1
            used = 0
        used += w
    return count


def _units(text: str, encoding: Encoding) -> int:
    # Counted by C loops (str.count, the UTF-16 codec) rather than a generator per character:
    # this runs for every message the HTTP API accepts.
    if encoding == "gsm7":
        return len(text) + sum(map(text.count, _GSM_EXT_CHARS))
    # UCS2 units are UTF-16 code units: a character outside the BMP is a surrogate pair
    # (RFC 2781 §2.1); a lone surrogate, passed through, is one unit.
    return len(text.encode("utf-16-le", "surrogatepass")) >> 1


def _resolve(text: str, force_ucs2: bool, data_coding: int | None) -> tuple[Encoding, int]:
    """Pick the encoding and the data_coding value to send.

    An override of 8 forces UCS2. An override of 0 or 1 applies to GSM text. Text that needs
    UCS2 always goes as 8, because the octets must match data_coding (SMPP 3.4 §5.2.19).
    Other values (for example 3, Latin-1) have no splitter here and are refused.
    """
    if data_coding is not None and data_coding not in (DC_DEFAULT, DC_IA5, DC_UCS2):
        raise ValueError(f"unsupported data_coding override 0x{data_coding:02x}")
    if force_ucs2 or data_coding == DC_UCS2 or not fits_gsm7(text):
        return "ucs2", DC_UCS2
    return "gsm7", DC_DEFAULT if data_coding is None else data_coding


def plan(
    text: str, *, force_ucs2: bool = False, data_coding: int | None = None
) -> tuple[Encoding, int]:
    """(encoding, number of parts) for ``text``, counted the way ``encode`` splits it.

    No bytes are built; the HTTP accept path uses this to count fragments. The keywords mean
    what they mean for ``encode``. Raises TooManyParts (a ValueError) when ``encode`` would
    refuse the text. An empty text is one empty gsm7 part.
    """
    encoding = _resolve(text, force_ucs2, data_coding)[0]
    cost, single, per_part = _limits(encoding)
    units = _units(text, encoding)
    count = 1 if units <= single else _count(text, cost, per_part, units)
    if count > MAX_PARTS:
        raise TooManyParts(encoding, count)
    return encoding, count


def encode(
    text: str, *, ref: int, force_ucs2: bool = False, data_coding: int | None = None
) -> Encoded:
    """Encode ``text`` as one or more complete short_message values.

    ``ref`` is the concatenation reference. Only ``ref & 0xFF`` goes on the wire (8-bit
    reference IE, 3GPP TS 23.040 §9.2.3.24.1). The caller should vary it per destination, so
    that parts of two long messages to one handset do not mix.
    ``data_coding`` is a per-operator override; see ``_resolve``.
    """
    encoding, dc = _resolve(text, force_ucs2, data_coding)
    cost, single, per_part = _limits(encoding)
    units = _units(text, encoding)
    to_bytes = _gsm7_bytes if encoding == "gsm7" else _ucs2_bytes
    if units <= single:
        return Encoded(encoding, dc, (to_bytes(text),), udhi=False, units=units)
    chunks = _split(text, cost, per_part)
    total = len(chunks)
    if total > MAX_PARTS:
        raise TooManyParts(encoding, total)
    r = ref & 0xFF
    parts = tuple(
        bytes((0x05, 0x00, 0x03, r, total, seq)) + to_bytes(chunk)
        for seq, chunk in enumerate(chunks, start=1)
    )
    return Encoded(encoding, dc, parts, udhi=True, units=units)


# --- decoding --------------------------------------------------------------------------------


def _parse_udh(udh: bytes) -> tuple[int, int, int] | None:
    """Find the concatenation IE in a UDH (3GPP TS 23.040 §9.2.3.24). Other IEs are skipped."""
    concat: tuple[int, int, int] | None = None
    i = 0
    while i + 2 <= len(udh):
        iei, iel = udh[i], udh[i + 1]
        body = udh[i + 2 : i + 2 + iel]
        if len(body) < iel:
            break  # truncated IE: ignore it and anything after it
        found: tuple[int, int, int] | None = None
        if iei == 0x00 and iel == 3:  # §9.2.3.24.1, 8-bit reference
            found = (body[0], body[1], body[2])
        elif iei == 0x08 and iel == 4:  # §9.2.3.24.8, 16-bit reference
            found = ((body[0] << 8) | body[1], body[2], body[3])
        # §9.2.3.24.1: total 0, or seq 0 or above total, means "ignore the whole IE".
        # §9.2.3.24: if a non-repeatable IE repeats, the last occurrence is used.
        if found is not None and found[1] != 0 and 1 <= found[2] <= found[1]:
            concat = found
        i += 2 + iel
    return concat


def _utf16(data: bytes) -> str:
    # surrogatepass: a part cut inside a surrogate pair by another splitter keeps its half.
    # join_parts then rejoins the halves across parts.
    even = len(data) - len(data) % 2
    text = data[:even].decode("utf-16-be", "surrogatepass")
    return text + "?" if even != len(data) else text


def decode(short_message: bytes, data_coding: int, udhi: bool) -> Decoded:
    """Decode one received short_message (MO messages from operators, and the simulator).

    data_coding 0 and 1: GSM 03.38 unpacked. 8: UTF-16BE. 3: Latin-1. Any other value:
    UTF-16BE if the length is even, else Latin-1. Raises ValueError if the UDH length
    octet points past the end of the message.
    """
    concat = None
    body = short_message
    if udhi:
        if not short_message or 1 + short_message[0] > len(short_message):
            raise ValueError("UDH length exceeds short_message")
        udh_len = short_message[0]
        concat = _parse_udh(short_message[1 : 1 + udh_len])
        body = short_message[1 + udh_len :]
    if data_coding in (DC_DEFAULT, DC_IA5):
        text = _gsm7_text(body)
    elif data_coding == DC_UCS2:
        text = _utf16(body)
    elif data_coding == DC_LATIN1:
        text = body.decode("latin-1")
    elif len(body) % 2 == 0:
        text = _utf16(body)
    else:
        text = body.decode("latin-1")
    return Decoded(text, concat)


def join_parts(parts: Mapping[int, str], total: int) -> str | None:
    """The whole text once parts 1..total are all present, else None.

    Keys are sequence numbers (1-based). A surrogate pair that another splitter cut across two
    parts is joined again.
    """
    if total < 1 or any(seq not in parts for seq in range(1, total + 1)):
        return None
    joined = "".join(parts[seq] for seq in range(1, total + 1))
    # Round trip through UTF-16: a high half at the end of one part and a low half at the
    # start of the next become one code point. Well-formed text is unchanged.
    return joined.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")
