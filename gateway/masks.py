"""Alphanumeric SMS sender masks: validation and look-alike detection.

A mask is what a citizen's phone shows as the sender (SMPP source_addr with TON=5). Handsets
render at most 11 GSM 03.38 characters, so masks are kept to a small, unambiguous Latin set.
Because a mask is the only proof of who is writing, the rules lean towards refusing: a mask
must not be confusable with another agency's mask or with a reserved name (police, courts).

Pure functions, no I/O.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable
from typing import Literal

__all__ = [
    "MaskError",
    "MaskErrorCode",
    "edit_distance_at_most_one",
    "find_conflict",
    "skeleton",
    "validate_mask",
]

MaskErrorCode = Literal[
    "mask_empty",
    "mask_too_long",
    "mask_invalid_character",
    "mask_confusable_character",
    "mask_needs_letter",
    "mask_reserved",
    "mask_lookalike",
]


class MaskError(ValueError):
    """A refused mask: ``code`` is stable for clients, the messages are for people."""

    def __init__(self, code: MaskErrorCode, message: str, message_fa: str) -> None:
        super().__init__(message)
        self.code: MaskErrorCode = code
        self.message = message
        self.message_fa = message_fa


_LETTERS = frozenset(string.ascii_letters)
# All of these are in the GSM 03.38 default alphabet, so a mask never forces UCS-2 and renders
# the same on every handset.
_ALLOWED = frozenset(string.ascii_letters + string.digits + " .-_&")
_SPACE_RUN = re.compile(r" {2,}")

# Characters from other scripts drawn like a Latin letter, digit or allowed symbol. Fullwidth,
# accented and mathematical forms need no entry: NFKD folds them (see _fold_char).
_LOOKALIKES: dict[str, str] = {
    # Cyrillic
    **dict(zip("АВЕКМНОРСТХЅІЈҮӀ", "ABEKMHOPCTXSIJYl", strict=True)),
    **dict(zip("аеорсухіѕјкмнвтԁһԛԝӏү", "aeopcyxisjkmhbtdhqwly", strict=True)),
    # Greek
    **dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧΛ", "ABEZHIKMNOPTYXA", strict=True)),
    **dict(zip("οντικαρχ", "ovtikapx", strict=True)),
    # Persian and Arabic: alef and the digit one are vertical strokes; heh and five are
    # round; the zeros are dots; seven is a V; eight is drawn as Λ, an A missing its bar.
    **dict(zip("ا١۱ه٥۵٠۰٧۷٨۸٩۹", "lllooo..vvAA99", strict=True)),
    # ASCII outside the allowed set, and dotless i
    "|": "l",
    "ı": "i",
}

# Applied after casefolding, on Latin text only: digits and letters that read alike.
_SKELETON_CHARS = str.maketrans(
    {"0": "o", "1": "l", "i": "l", "|": "l", "5": "s", "8": "b", "2": "z"}
)
_SKELETON_SEQUENCES = (("vv", "w"), ("rn", "m"))
_SKELETON_DROP = frozenset(" .-_")


def _fold_char(ch: str) -> str:
    """The Latin text ``ch`` is drawn like, or ``ch`` itself when it resembles nothing known."""
    if ch in _LOOKALIKES:
        return _LOOKALIKES[ch]
    if ch.isascii():
        return ch
    # NFKD turns fullwidth, circled, mathematical and accented letters into base letters plus
    # combining marks; the marks are too small to tell apart on a handset, so they go.
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    return "".join(_LOOKALIKES.get(c, c) for c in base)


def _latin_lookalike(ch: str) -> str | None:
    folded = _fold_char(ch)
    if folded and folded != ch and all(c in _ALLOWED for c in folded):
        return folded
    return None


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"{ch!r} (U+{ord(ch):04X}{' ' + name if name else ''})"


def _fa_num(n: int) -> str:
    # Persian text reads better with Persian digits.
    return str(n).translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))


def validate_mask(raw: str, max_length: int = 11) -> str:
    """Return the canonical form of ``raw`` or raise ``MaskError``.

    Canonical: NFC, ends stripped, inner runs of spaces collapsed to one; case is kept as the
    agency gave it. Allowed: ASCII letters, digits, space and ``. - _ &``; at least one letter,
    because an all-digit sender would pass for a phone number; at most ``max_length``
    characters (11 is the limit for alphanumeric senders).
    """
    mask = _SPACE_RUN.sub(" ", unicodedata.normalize("NFC", raw).strip())
    if not mask:
        raise MaskError("mask_empty", "The sender mask is empty.", "نام فرستنده خالی است.")
    for ch in mask:
        if ch in _ALLOWED:
            continue
        latin = _latin_lookalike(ch)
        if latin is not None:
            # Named separately: the agency almost always meant the Latin character (a keyboard
            # layout slip), and a silent refusal of an identical-looking mask is baffling.
            raise MaskError(
                "mask_confusable_character",
                f"Character {_describe(ch)} looks like {latin!r} but is a different character;"
                f" type {latin!r} instead.",
                f"نویسهٔ {_describe(ch)} شبیه {latin!r} است ولی نویسهٔ دیگری است؛"
                f" به جای آن {latin!r} را تایپ کنید.",
            )
        raise MaskError(
            "mask_invalid_character",
            f"Character {_describe(ch)} is not allowed; use Latin letters, digits, space"
            " and . - _ &.",
            f"نویسهٔ {_describe(ch)} مجاز نیست؛ فقط حروف لاتین، رقم، فاصله و . - _ & مجازند.",
        )
    if len(mask) > max_length:
        raise MaskError(
            "mask_too_long",
            f"The sender mask has {len(mask)} characters; at most {max_length} are allowed.",
            f"نام فرستنده {_fa_num(len(mask))} نویسه دارد؛ حداکثر {_fa_num(max_length)}"
            " نویسه مجاز است.",
        )
    if not any(ch in _LETTERS for ch in mask):
        raise MaskError(
            "mask_needs_letter",
            "The sender mask needs at least one Latin letter; an all-digit sender looks like"
            " a phone number.",
            "نام فرستنده باید دست‌کم یک حرف لاتین داشته باشد؛ فرستندهٔ تمام‌عددی با شماره"
            " تلفن اشتباه گرفته می‌شود.",
        )
    return mask


def skeleton(mask: str) -> str:
    """A comparison key under which masks a person could confuse are equal or one edit apart.

    Casefolded; spaces and ``. - _`` dropped (they vanish at a glance); 0→o, 1/i/|→l, 5→s,
    8→b, 2→z, vv→w, rn→m. Non-Latin look-alikes (Cyrillic, Greek, Persian/Arabic, fullwidth)
    are mapped to Latin first, so reserved words read from config compare correctly even if
    someone typed them on the wrong keyboard layout.
    """
    folded = "".join(_fold_char(ch) for ch in unicodedata.normalize("NFC", mask)).casefold()
    key = "".join(ch for ch in folded if ch not in _SKELETON_DROP and not ch.isspace())
    key = key.translate(_SKELETON_CHARS)
    for seq, repl in _SKELETON_SEQUENCES:
        key = key.replace(seq, repl)
    return key


def edit_distance_at_most_one(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are equal or one insertion, deletion, substitution or adjacent
    transposition apart (optimal string alignment distance ≤ 1), in O(n)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < len(a) and i < len(b) and a[i] == b[i]:
        i += 1
    if len(a) < len(b):
        return a[i:] == b[i + 1 :]
    if len(a) > len(b):
        return a[i + 1 :] == b[i:]
    if a[i + 1 :] == b[i + 1 :]:
        return True
    return a[i : i + 2] == b[i + 1 : i + 2] + b[i : i + 1] and a[i + 2 :] == b[i + 2 :]


def find_conflict(
    candidate: str, existing: Iterable[str], reserved: Iterable[str]
) -> MaskError | None:
    """The reason ``candidate`` may not be registered, or None when it is free.

    Reserved words are checked first, then existing masks (pass other agencies' masks only,
    not the applicant's own). Skeletons that are equal or one edit apart conflict. That is
    deliberately strict and will refuse some honest masks: a government sender must not be one
    typo away from another agency's, since that single character is all a fraudster needs.
    """
    key = skeleton(candidate)
    for word in reserved:
        word_key = skeleton(word)
        # An empty key (a config line of only punctuation) would match every 1-letter mask.
        if word_key and edit_distance_at_most_one(key, word_key):
            return MaskError(
                "mask_reserved",
                f"The sender mask {candidate!r} is too close to the reserved name {word!r}.",
                f"نام فرستندهٔ {candidate!r} بیش از حد به نام رزروشدهٔ {word!r} شبیه است.",
            )
    for other in existing:
        other_key = skeleton(other)
        if other_key and edit_distance_at_most_one(key, other_key):
            return MaskError(
                "mask_lookalike",
                f"The sender mask {candidate!r} is too similar to the existing mask {other!r}.",
                f"نام فرستندهٔ {candidate!r} بیش از حد به نام موجود {other!r} شبیه است.",
            )
    return None
