"""Persian text normalisation: one spelling for letters and digits before storing or matching."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jdatetime

# Iran has kept UTC+03:30 all year since daylight saving was abolished in 2022.
TEHRAN = timezone(timedelta(hours=3, minutes=30), "Asia/Tehran")

# Arabic code points that Persian keyboards and older systems still produce for the same letters.
_LETTERS = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک", "ە": "ه"})
_TO_ASCII_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_TO_PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def normalize_letters(text: str) -> str:
    """Arabic ي/ى/ك to Persian ی/ک, so that names and keywords compare equal."""
    # Most text has none of them; a substring test is far cheaper than translate().
    if "ي" in text or "ك" in text or "ى" in text or "ە" in text:
        return text.translate(_LETTERS)
    return text


def ascii_digits(text: str) -> str:
    """Persian and Arabic-Indic digits to ASCII."""
    return text.translate(_TO_ASCII_DIGITS)


def persian_digits(text: str) -> str:
    """ASCII digits to Persian, for text shown to people."""
    return text.translate(_TO_PERSIAN_DIGITS)


def normalize(text: str) -> str:
    return ascii_digits(normalize_letters(text)).strip()


def jalali(at: datetime) -> str:
    """A UTC instant as Tehran wall time in the Jalali calendar, e.g. ``1405/09/01 10:30``."""
    local = at.astimezone(TEHRAN)
    return str(jdatetime.datetime.fromgregorian(datetime=local).strftime("%Y/%m/%d %H:%M"))
