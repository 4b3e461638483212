"""Human-readable letter tracking numbers with a check digit.

Scheme (docs/KARTPOOSHE.md): ``KP-`` + twelve digits in groups of four, e.g.
``KP-4817-2096-3351``. The first eleven digits are random (unguessable, and they say nothing
about volumes); the twelfth is the Damm check digit of the first eleven. Damm's quasigroup
detects every single-digit error and every transposition of two adjacent digits, the two
mistakes people make when they read a number off an SMS or type it into a form (Luhn misses
the 09↔90 transposition). Input is forgiving about form — Persian digits, no prefix, spaces or
dashes — and strict about the digits.
"""

from __future__ import annotations

import secrets

from gateway.identity import normalize_digits

PREFIX = "KP"
DIGITS = 12

# H. M. Damm's totally anti-symmetric quasigroup of order 10 (Damm 2004, table 2.2).
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def damm_digit(digits: str) -> str:
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][int(ch)]
    return str(interim)


def new_tracking_number() -> str:
    body = "".join(str(secrets.randbelow(10)) for _ in range(DIGITS - 1))
    return format_tracking(body + damm_digit(body))


def format_tracking(digits: str) -> str:
    return f"{PREFIX}-{digits[0:4]}-{digits[4:8]}-{digits[8:12]}"


def parse_tracking(raw: str) -> str | None:
    """The canonical ``KP-XXXX-XXXX-XXXX`` for a well-typed number, None for a mistyped one."""
    s = normalize_digits(raw).upper()
    if s.startswith(PREFIX):
        s = s[len(PREFIX) :]
    s = s.replace("-", "").replace(" ", "")
    if len(s) != DIGITS or not s.isascii() or not s.isdigit():
        return None
    if damm_digit(s) != "0":  # a number followed by its own Damm digit checks to 0
        return None
    return format_tracking(s)
