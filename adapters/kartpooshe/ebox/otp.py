"""One-time login codes: six digits, short-lived, few tries, stored only as a salted hash.

scrypt (not a bare SHA-256) because a six-digit code has only 10^6 values: with scrypt at
n=2^14 an offline search of a stolen row costs hours of CPU, far beyond the code's few minutes
of life. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

CODE_DIGITS = 6


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def hash_code(code: str, salt: bytes) -> bytes:
    return hashlib.scrypt(code.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)


def new_salt() -> bytes:
    return secrets.token_bytes(16)


def matches(code: str, salt: bytes, code_hash: bytes) -> bool:
    if len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        return False
    return hmac.compare_digest(hash_code(code, salt), code_hash)
