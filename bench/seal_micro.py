"""Micro-benchmark: what encryption at rest adds per message on the accept path (issue 7 part 4).

Times exactly the per-row work ``MessageStore.accept_many`` now does (gateway/store/messages.py):
AES-256-GCM seal of the text with the message id as associated data, keyed BLAKE2b of the
text (Vault.mac) for duplicate suppression. Both go to the database as bytea in the batch's
binary composite values (migration 0015), so no base64 any more. No database: the extra bytes
on the wire are reported separately.
Run: ``.venv/bin/python bench/seal_micro.py``.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time
import uuid

from gateway.sealing import Sealer
from gateway.vault import DataKey, message_aad

TEXTS = {
    "short Persian (1 part)": "قبض آب شما صادر شد. مبلغ ۱۲۰٬۰۰۰ ریال",
    "long Persian (3 parts)": "پیام آزمایشی سامانه پیام ایران " * 6,
}
BATCH = 24  # the mean group commit under benchmark (a), docs/PERFORMANCE.md session 9


def per_message_us(text: str, n: int = 20000, rounds: int = 7) -> float:
    key = DataKey(1, os.urandom(32))
    mac_key = Sealer(os.urandom(32)).derive_key("payam/text-mac/v2")

    ids = [uuid.uuid4() for _ in range(n)]
    best = []
    for _ in range(rounds):
        started = time.perf_counter()
        # In group commits of BATCH, one seal_many each, as MessageStore._sealed does.
        for i in range(0, n, BATCH):
            chunk = ids[i : i + BATCH]
            key.seal_many([(text.encode(), message_aad(mid)) for mid in chunk])
            for _ in chunk:
                hashlib.blake2b(text.encode(), key=mac_key, digest_size=32).digest()  # Vault.mac
        best.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(best)


def main() -> None:
    for name, text in TEXTS.items():
        extra = 28 + 32  # GCM nonce and tag, and the MAC; the text itself is sent as ""
        us = per_message_us(text)
        print(f"{name}: {us:.2f} µs per message; +{extra} bytes per row in the batch")


if __name__ == "__main__":
    main()
