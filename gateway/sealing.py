"""Sealing of secrets the gateway must use again (AES-256-GCM under the platform master key).

API key secrets (HS256 needs the key to verify) and webhook signing secrets are stored sealed, so
a database dump without the master key file cannot forge agency tokens or callbacks. The row's
identity is bound as associated data: a sealed value copied to another row does not open.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"
KEY_BYTES = 32


class SealError(ValueError):
    pass


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SealError("master key must be 32 bytes")
        self._aead = AESGCM(key)
        self._key = key

    def derive_key(self, purpose: str) -> bytes:
        """A separate 32-byte key for one purpose (HKDF-SHA256, RFC 5869), so the one master
        key file also keys, e.g., the verification table's HMACs without reusing the AES key."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode())
        return hkdf.derive(self._key)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Sealer:
        raw = Path(path).read_bytes().strip()
        try:
            key = bytes.fromhex(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise SealError(f"{path}: expected 64 hex characters") from None
        return cls(key)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        if len(sealed) < 29 or sealed[:1] != _VERSION:
            raise SealError("not a sealed value")
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], context.encode())
        except Exception:
            raise SealError("cannot open sealed value (wrong key or context)") from None


def write_new_key(path: str | os.PathLike[str]) -> bool:
    """Create a master key file (0600) if none exists; True when a new one was written."""
    p = Path(path)
    if p.exists():
        return False
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(KEY_BYTES) + "\n")
    return True
