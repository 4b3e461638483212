"""Ed25519 private key files: the platform's signing keys (letters' evidence chain, audit
checkpoints) are created the same way by ``payam init``, tests and the benchmark."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def write_new_ed25519_key(path: str | os.PathLike[str]) -> bool:
    """Create an Ed25519 key file (PEM PKCS#8, mode 0600) if none exists; True when created.
    O_EXCL: two processes starting at once never overwrite each other's new key."""
    p = Path(path)
    if p.exists():
        return False
    p.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return True
