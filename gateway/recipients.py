"""Recipients: mobile numbers in one canonical form, and national codes resolved to numbers.

Numbers are accepted as 0098…, +98…, 98…, 0… or bare 9…, with Persian or Arabic digits, and
stored as E.164 (+989XXXXXXXXX). Which ranges are mobile comes from libphonenumber's Iran
metadata (the ``phonenumbers`` package), compiled once: calling the full parser per recipient
would cost more than the rest of a million-recipient batch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

import phonenumbers

from gateway.identity import is_valid_national_code, normalize_digits
from gateway.store import Store

_IR = phonenumbers.PhoneMetadata.metadata_for_region("IR")
assert _IR is not None
assert _IR.mobile is not None
assert _IR.mobile.national_number_pattern
_MOBILE = re.compile(_IR.mobile.national_number_pattern)
_SHAPE = re.compile(r"^(?:\+98|0098|98|0)?(9\d{9})$")
_STRIP = str.maketrans("", "", " -()\u200c\u200e\u200f\u00a0")


def normalize_msisdn(raw: str) -> str | None:
    """``+989121234567`` for any accepted spelling of an Iranian mobile number, else None."""
    if not (raw.isascii() and (raw.isdigit() or (raw[:1] == "+" and raw[1:].isdigit()))):
        raw = normalize_digits(raw).translate(_STRIP)
    m = _SHAPE.match(raw)
    if m is None or _MOBILE.fullmatch(m.group(1)) is None:
        return None
    return "+98" + m.group(1)


def national_number(msisdn: str) -> str:
    """``+989121234567`` → ``9121234567`` (what operators' prefix tables use)."""
    return msisdn[3:] if msisdn.startswith("+98") else msisdn.lstrip("+")


def smpp_address(msisdn: str) -> str:
    """International format without '+', for destination_addr with TON=1 (international)."""
    return msisdn.lstrip("+")


class CitizenDirectory(Protocol):
    """Who holds which mobile number. The national "Shahkar" service plugs in here."""

    async def numbers_for(self, national_codes: Iterable[str]) -> dict[str, str]:
        """national code → E.164 number, for the codes the directory knows."""
        ...


class LocalDirectory:
    """The directory kept in our own database (development, tests, and until Shahkar is wired)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def numbers_for(self, national_codes: Iterable[str]) -> dict[str, str]:
        codes = [
            c for c in {normalize_digits(c) for c in national_codes} if is_valid_national_code(c)
        ]
        if not codes:
            return {}
        return await self._store.messages.citizen_numbers(codes)
