"""Delivery receipts (DLRs): recognise them, parse them, map them to our outcomes.

Open-source gateways often lose messages here. The id in submit_sm_resp may be hex while the
receipt writes it in decimal (a known Kannel issue). Letter case and leading zeros vary. TLVs
and text can disagree. Receipts also come twice or out of order. So this module does four
things. ``canonical_id`` makes the single key that matches a receipt to its submit. Each
operator has its own ``StatusTable`` for its stat words. TLVs are preferred over the text.
The text parser does not require a field order. Storing outcomes so that a late or repeated
receipt never overwrites a final state is the caller's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from types import MappingProxyType
from typing import Literal, TypeAlias

Outcome: TypeAlias = Literal[
    "delivered", "undeliverable", "expired", "rejected", "enroute", "accepted", "unknown"
]
OUTCOMES: frozenset[str] = frozenset(
    {"delivered", "undeliverable", "expired", "rejected", "enroute", "accepted", "unknown"}
)
# After one of these, no later receipt changes the outcome.
FINAL_STATES: frozenset[str] = frozenset({"delivered", "undeliverable", "expired", "rejected"})

IdFormat: TypeAlias = Literal["hex", "dec", "str"]

# Iran has kept standard time (UTC+03:30) all year since daylight saving was abolished in 2022.
# SMSCs write receipt dates in local time with no zone.
IRAN_TZ = timezone(timedelta(hours=3, minutes=30), "IRST")

# esm_class bits 2-5 give the message type of a deliver_sm (SMPP 3.4 §5.2.12).
_ESM_TYPE_MASK = 0x3C
ESM_SMSC_DELIVERY_RECEIPT = 0x04

# message_state TLV values (SMPP 3.4 §5.2.28).
MESSAGE_STATE_NAMES: Mapping[int, str] = MappingProxyType(
    {
        1: "ENROUTE",
        2: "DELIVERED",
        3: "EXPIRED",
        4: "DELETED",
        5: "UNDELIVERABLE",
        6: "ACCEPTED",
        7: "UNKNOWN",
        8: "REJECTED",
    }
)


def _error_key(code: str) -> str:
    # "000", "0" and " 0 " are the same numeric code; other codes compare case-insensitively.
    code = code.strip().upper()
    return str(int(code)) if code.isascii() and code.isdigit() else code


@dataclass(frozen=True, slots=True)
class StatusTable:
    """One operator's mapping from receipt words and message_state values to our outcomes.

    Stat words are matched case-insensitively. A word or state not in the table maps to
    "unknown", which is not final, so a later correct receipt can still settle the message.
    """

    name: str
    stats: Mapping[str, Outcome]
    states: Mapping[int, Outcome]
    # Operator error code (the text's err field or network_error_code) to a reason for people.
    errors: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        bad = [v for v in (*self.stats.values(), *self.states.values()) if v not in OUTCOMES]
        if bad:
            raise ValueError(f"status table {self.name!r}: unknown outcomes {sorted(set(bad))}")
        # Normalised, read-only copies: the tables are shared by every connection.
        stats = {k.strip().upper(): v for k, v in self.stats.items()}
        errors = {_error_key(k): v for k, v in self.errors.items()}
        object.__setattr__(self, "stats", MappingProxyType(stats))
        object.__setattr__(self, "states", MappingProxyType(dict(self.states)))
        object.__setattr__(self, "errors", MappingProxyType(errors))

    def outcome_for_stat(self, word: str) -> Outcome:
        return self.stats.get(word.strip().upper(), "unknown")

    def outcome_for_state(self, state: int) -> Outcome:
        return self.states.get(state, "unknown")

    def reason(self, error: str) -> str | None:
        return self.errors.get(_error_key(error)) if error.strip() else None


# Each table is written out in full, so an operator's quirks are added to its own table and
# can be read in one place. Stat words are the 7-letter ones of SMPP 3.4 Appendix B. The full
# §5.2.28 state names are also listed, since some SMSCs print those in stat:.
# DELETED: cancelled or purged by the SMSC, so never delivered. It is final, and we count it
# as undeliverable.
# ACCEPTD: Appendix B defines it as "read on behalf of the subscriber by customer service".
# Operators send it for "accepted by the SMSC", so we do not treat it as final.
STATUS_TABLES: dict[str, StatusTable] = {
    "default": StatusTable(
        name="default",
        stats={
            "DELIVRD": "delivered",
            "DELIVERED": "delivered",
            "EXPIRED": "expired",
            "DELETED": "undeliverable",
            "UNDELIV": "undeliverable",
            "UNDELIVERABLE": "undeliverable",
            "ACCEPTD": "accepted",
            "ACCEPTED": "accepted",
            "UNKNOWN": "unknown",
            "REJECTD": "rejected",
            "REJECTED": "rejected",
            "ENROUTE": "enroute",
        },
        states={
            1: "enroute",
            2: "delivered",
            3: "expired",
            4: "undeliverable",
            5: "undeliverable",
            6: "accepted",
            7: "unknown",
            8: "rejected",
        },
    ),
    # MCI (Hamrah-e Avval). Placeholder quirk, not yet checked against MCI's interface
    # document: the misspelling DELIVERD. A word that never arrives does no harm.
    "mci": StatusTable(
        name="mci",
        stats={
            "DELIVRD": "delivered",
            "DELIVERD": "delivered",
            "DELIVERED": "delivered",
            "EXPIRED": "expired",
            "DELETED": "undeliverable",
            "UNDELIV": "undeliverable",
            "UNDELIVERABLE": "undeliverable",
            "ACCEPTD": "accepted",
            "ACCEPTED": "accepted",
            "UNKNOWN": "unknown",
            "REJECTD": "rejected",
            "REJECTED": "rejected",
            "ENROUTE": "enroute",
        },
        states={
            1: "enroute",
            2: "delivered",
            3: "expired",
            4: "undeliverable",
            5: "undeliverable",
            6: "accepted",
            7: "unknown",
            8: "rejected",
        },
    ),
    # Irancell (MTN Irancell). Placeholder quirk, not yet checked against Irancell's interface
    # document: FAILED for a failed delivery.
    "irancell": StatusTable(
        name="irancell",
        stats={
            "DELIVRD": "delivered",
            "DELIVERED": "delivered",
            "EXPIRED": "expired",
            "DELETED": "undeliverable",
            "UNDELIV": "undeliverable",
            "UNDELIVERABLE": "undeliverable",
            "FAILED": "undeliverable",
            "ACCEPTD": "accepted",
            "ACCEPTED": "accepted",
            "UNKNOWN": "unknown",
            "REJECTD": "rejected",
            "REJECTED": "rejected",
            "ENROUTE": "enroute",
        },
        states={
            1: "enroute",
            2: "delivered",
            3: "expired",
            4: "undeliverable",
            5: "undeliverable",
            6: "accepted",
            7: "unknown",
            8: "rejected",
        },
    ),
    # Rightel. No known quirks yet.
    "rightel": StatusTable(
        name="rightel",
        stats={
            "DELIVRD": "delivered",
            "DELIVERED": "delivered",
            "EXPIRED": "expired",
            "DELETED": "undeliverable",
            "UNDELIV": "undeliverable",
            "UNDELIVERABLE": "undeliverable",
            "ACCEPTD": "accepted",
            "ACCEPTED": "accepted",
            "UNKNOWN": "unknown",
            "REJECTD": "rejected",
            "REJECTED": "rejected",
            "ENROUTE": "enroute",
        },
        states={
            1: "enroute",
            2: "delivered",
            3: "expired",
            4: "undeliverable",
            5: "undeliverable",
            6: "accepted",
            7: "unknown",
            8: "rejected",
        },
    ),
}


def status_table(name: str) -> StatusTable:
    """The named operator's table; an unknown name gets the default table."""
    return STATUS_TABLES.get(name, STATUS_TABLES["default"])


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str  # raw, as received; match with canonical_id(message_id, dlr_id_format)
    state: Outcome
    stat: str  # the operator's stat word, or the message_state TLV's name
    error: str  # err field or network_error_code; "" when absent
    done_at: datetime | None  # UTC

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


# Keys of SMPP 3.4 Appendix B. A key counts only at the start of the text or after
# whitespace, so "sub:" does not match inside another word.
_KEY = re.compile(
    r"(?:^|(?<=\s))(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)\s*:",
    re.IGNORECASE,
)
_DATE = re.compile(r"[0-9]{10}(?:[0-9]{2})?")


def parse_receipt_text(text: str) -> dict[str, str]:
    """Parse the de-facto receipt text (SMPP 3.4 Appendix B)::

        id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
        stat:DDDDDDD err:E text:...

    Keys are returned lower-case ("submit date" and "done date" with a space). Fields may
    come in any order, and missing ones are simply absent. ``text`` runs to the end. If a key
    repeats, the first occurrence counts.
    """
    out: dict[str, str] = {}
    matches = list(_KEY.finditer(text))
    for k, m in enumerate(matches):
        key = m.group(1).lower().replace("_", " ")
        if key in ("submitdate", "donedate"):
            key = key[:-4] + " date"
        if key == "text":
            out.setdefault(key, text[m.end() :].strip())
            break  # whatever follows is message text, even if it looks like "id:…"
        end = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        out.setdefault(key, text[m.end() : end].strip())
    return out


def is_receipt(esm_class: int) -> bool:
    """True only for an SMSC delivery receipt (message type 0x04, SMPP 3.4 §5.2.12).

    The other deliver_sm message types are not final outcomes from the SMSC, so they are
    not receipts here: 0x08 SME delivery acknowledgement, 0x10 SME manual/user
    acknowledgement, 0x18 conversation abort, 0x20 intermediate delivery notification.
    """
    return (esm_class & _ESM_TYPE_MASK) == ESM_SMSC_DELIVERY_RECEIPT


def _local_date(value: str, tz: tzinfo) -> datetime | None:
    """YYMMDDhhmm[ss] in the SMSC's local time, returned in UTC. Returns None if malformed."""
    if not _DATE.fullmatch(value):
        return None
    d = [int(value[i : i + 2]) for i in range(0, len(value), 2)]
    try:
        local = datetime(2000 + d[0], d[1], d[2], d[3], d[4], d[5] if len(d) > 5 else 0, 0, tz)
    except ValueError:
        return None
    return local.astimezone(UTC)


def _receipt_text(short_message: bytes) -> str:
    # Receipt text is ASCII. A few SMSCs send it as UCS2: every high octet is then 0.
    if short_message and len(short_message) % 2 == 0 and not any(short_message[0::2]):
        return short_message.decode("utf-16-be")
    return short_message.decode("latin-1")


def _network_error(code: bytes | None) -> str:
    """network_error_code TLV (SMPP 3.4 §5.3.2.31): network type octet, then a 2-octet code.

    Returned as "type:code" in decimal (type 3 is GSM), for example "3:27". All zeros means
    no error and gives "".
    """
    if not code or not any(code):
        return ""
    if len(code) != 3:
        return code.hex()
    return f"{code[0]}:{int.from_bytes(code[1:], 'big')}"


def receipt_from_deliver(
    *,
    esm_class: int,
    short_message: bytes,
    receipted_message_id: str | None,
    message_state: int | None,
    network_error_code: bytes | None,
    table: StatusTable,
    tz: tzinfo = IRAN_TZ,
) -> Receipt | None:
    """Build a Receipt from a deliver_sm (or data_sm), or return None if it is not a receipt.

    The TLVs receipted_message_id (0x001E) and message_state (0x0427) win over the text's id
    and stat, because they are typed and need no parsing. The text is used when a TLV is
    absent. A message_state the table does not know also falls back to the text.
    network_error_code (0x0423) wins over the text's err unless it is absent or all zeros.
    Raises ValueError if neither the TLV nor the text has a message id; such a receipt cannot
    be matched to any submit.
    """
    if not is_receipt(esm_class):
        return None
    fields = parse_receipt_text(_receipt_text(short_message))

    if receipted_message_id is not None and receipted_message_id.strip():
        message_id = receipted_message_id
    else:
        message_id = fields.get("id", "")
    if not message_id.strip():
        raise ValueError("delivery receipt carries no message id")

    state: Outcome
    if message_state is not None and message_state in table.states:
        state = table.outcome_for_state(message_state)
        stat = MESSAGE_STATE_NAMES.get(message_state, str(message_state))
    elif fields.get("stat"):
        stat = fields["stat"]
        state = table.outcome_for_stat(stat)
    else:
        state = "unknown"
        stat = "" if message_state is None else str(message_state)

    error = _network_error(network_error_code) or fields.get("err", "")
    done = fields.get("done date")
    done_at = _local_date(done, tz) if done else None
    return Receipt(message_id, state, stat, error, done_at)


_HEX = re.compile(r"[0-9A-Fa-f]+")
_DEC = re.compile(r"[0-9]+")


def canonical_id(raw: str, fmt: IdFormat) -> str:
    """The one key that matches a receipt to its submit_sm_resp.

    Canonicalise each side with that side's configured format (resp_id_format for
    submit_sm_resp, dlr_id_format for the receipt), and the keys compare equal:

    >>> canonical_id("00A1B2", "hex")
    '41394'
    >>> canonical_id("0041394", "dec")
    '41394'
    >>> canonical_id(" AbC-1 ", "str")
    'abc-1'

    Only ASCII digits are accepted: ``int()`` would also take signs, underscores, "0x" and
    Persian digits, and an id is none of those. Raises ValueError if ``raw`` is not valid
    for ``fmt``, or is empty.
    """
    value = raw.strip()
    if fmt == "hex":
        if not _HEX.fullmatch(value):
            raise ValueError("message id is not hexadecimal")
        return str(int(value, 16))
    if fmt == "dec":
        if not _DEC.fullmatch(value):
            raise ValueError("message id is not decimal")
        return value.lstrip("0") or "0"
    if fmt == "str":
        if not value:
            raise ValueError("empty message id")
        return value.lower()
    raise ValueError(f"unknown id format {fmt!r}")
