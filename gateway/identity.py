"""Checksums for Iranian identity numbers: personal national codes and legal-entity IDs.

Pure functions, no I/O. These numbers are personal data (a national code identifies one
citizen), so nothing here logs them, and no error message echoes the value it was given:
exceptions travel into logs and error reports that must stay free of identifiers.
"""

from __future__ import annotations

__all__ = [
    "is_valid_legal_id",
    "is_valid_national_code",
    "legal_id_check_digit",
    "national_code_check_digit",
    "normalize_digits",
]

_ASCII_DIGITS = frozenset("0123456789")

# Persian (U+06F0..U+06F9) and Arabic-Indic (U+0660..U+0669) digits: Persian keyboards and
# phones produce the first, Arabic-locale devices and some older forms the second.
_DIGIT_MAP: dict[int, str] = {
    **{0x06F0 + i: str(i) for i in range(10)},
    **{0x0660 + i: str(i) for i in range(10)},
}

# Separators people type or paste into numbers ("007-622964-5", "007 622 964 5"). Besides the
# ASCII ones, text copied from Persian documents carries no-break spaces, typographic dashes
# and invisible bidi marks around digits; none of them can be part of a number.
_SEPARATORS = (
    " -"  # ASCII space and hyphen-minus
    "\u00a0\u202f\u2009\u200b"  # no-break, narrow no-break, thin and zero-width spaces
    "\u2010\u2011\u2012\u2013\u2212"  # hyphen, non-breaking hyphen, figure/en dash, minus
    "\u200c\u200e\u200f\u061c"  # ZWNJ, LRM, RLM, Arabic letter mark
)
_SEPARATOR_MAP: dict[int, None] = {ord(ch): None for ch in _SEPARATORS}

_LEGAL_ID_WEIGHTS = (29, 27, 23, 19, 17)


def normalize_digits(s: str) -> str:
    """Map Persian/Arabic-Indic digits to ASCII, strip the ends and drop spaces and hyphens.

    Anything else (letters, fullwidth digits, other scripts' digits) is left as it is, so the
    validators below reject it instead of guessing.
    """
    return s.strip().translate(_DIGIT_MAP).translate(_SEPARATOR_MAP)


def _is_ascii_digits(s: str, length: int) -> bool:
    # Not str.isdigit(): it accepts superscripts and dozens of other scripts' digits, which
    # would then be summed as if they were 0-9.
    return len(s) == length and all(ch in _ASCII_DIGITS for ch in s)


def _all_equal(s: str) -> bool:
    return len(set(s)) == 1


def national_code_check_digit(first9: str) -> str:
    """Check digit of a personal national code (کد ملی) given its first nine ASCII digits.

    s = Σ d[i]·(10−i) for i = 0..8 and r = s mod 11; the check digit is r when r < 2,
    otherwise 11 − r.

    >>> national_code_check_digit("007622964")
    '5'
    """
    if not _is_ascii_digits(first9, 9):
        raise ValueError("first9 must be exactly 9 ASCII digits")
    r = sum(int(first9[i]) * (10 - i) for i in range(9)) % 11
    return str(r if r < 2 else 11 - r)


def legal_id_check_digit(first10: str) -> str:
    """Check digit of a legal-entity national ID (شناسه ملی) given its first ten ASCII digits.

    c = d[9] + 2; s = Σ (c + d[i])·w[i mod 5] for i = 0..9 with w = (29, 27, 23, 19, 17);
    r = s mod 11, and the check digit is r, except that r = 10 becomes 0.

    >>> legal_id_check_digit("1038028479")
    '0'
    """
    if not _is_ascii_digits(first10, 10):
        raise ValueError("first10 must be exactly 10 ASCII digits")
    c = int(first10[9]) + 2
    s = sum((c + int(first10[i])) * _LEGAL_ID_WEIGHTS[i % 5] for i in range(10))
    r = s % 11
    return "0" if r == 10 else str(r)


def is_valid_national_code(code: str) -> bool:
    """Whether ``code`` is a well-formed Iranian personal national code (کد ملی).

    This is the published check-digit rule of the National Organization for Civil Registration
    (ثبت احوال), as standardised by ISIRI: exactly ten digits after ``normalize_digits``, the
    last one being ``national_code_check_digit`` of the first nine.

    Codes of ten equal digits satisfy the checksum (for every digit) but are never issued; they
    are what people type to get past a form, so they are rejected.

    Shorter codes are not left-padded here: whether an 8- or 9-digit entry means leading zeros
    lost by a spreadsheet is a question for the caller to ask the person, not to guess.

    A valid checksum proves only that the number is well formed, not that it was issued.

    >>> is_valid_national_code("0076229645"), is_valid_national_code("0076229646")
    (True, False)
    """
    digits = normalize_digits(code)
    if not _is_ascii_digits(digits, 10) or _all_equal(digits):
        return False
    return digits[9] == national_code_check_digit(digits[:9])


def is_valid_legal_id(code: str) -> bool:
    """Whether ``code`` is a well-formed legal-entity national ID (شناسه ملی).

    The published rule of the National Organization for Civil Registration for the IDs of
    companies, institutions and government bodies: exactly eleven digits after
    ``normalize_digits``, the last one being ``legal_id_check_digit`` of the first ten.

    All-equal digits are rejected as placeholders, as for national codes (33333333333 would
    otherwise pass the checksum).

    >>> is_valid_legal_id("10380284790"), is_valid_legal_id("10380284791")
    (True, False)
    """
    digits = normalize_digits(code)
    if not _is_ascii_digits(digits, 11) or _all_equal(digits):
        return False
    return digits[10] == legal_id_check_digit(digits[:10])
