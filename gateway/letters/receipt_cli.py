"""``payam verify-receipt FILE [--public-key FILE]``: offline verification of a letter receipt.

Exit 0 and a summary when every check passes; exit 1 with the reason when the receipt was
altered (content, an event, the chain or a signature); exit 2 when a file cannot be read.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.letters.evidence import (
    EvidenceKeyError,
    ReceiptInvalid,
    key_id_of,
    load_public_key,
    verify_receipt,
)
from gateway.persian import jalali


def _trusted(path: str) -> dict[str, Ed25519PublicKey]:
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"{"):
        doc = json.loads(data)
        keys = [load_public_key(k["public_key"].encode()) for k in doc["keys"]]
    else:
        keys = [load_public_key(data)]
    return {key_id_of(k): k for k in keys}


def verify_receipt_file(path: str, public_key: str | None) -> int:
    try:
        receipt = json.loads(Path(path).read_text(encoding="utf-8"))
        trusted = _trusted(public_key) if public_key else None
    except (OSError, ValueError, KeyError, EvidenceKeyError) as exc:
        sys.stderr.write(f"payam verify-receipt: cannot read input: {exc}\n")
        return 2
    try:
        types = verify_receipt(receipt, trusted)
    except ReceiptInvalid as exc:
        sys.stderr.write(f"INVALID: {exc}\n")
        return 1
    letter = receipt["letter"]
    sys.stdout.write(
        f"VALID: letter {letter['tracking_number']} ({letter['id']}), "
        f"{len(types)} events: {' → '.join(types)}\n"
    )
    for event in receipt["events"]:
        # People read Jalali dates, Tehran time (MISSION §3); the signed value stays UTC.
        at = datetime.fromisoformat(event["at"])
        sys.stdout.write(f"  {event['seq']}. {event['type']:<17} {event['at']}  {jalali(at)}\n")
    if trusted is None:
        sys.stdout.write(
            "note: signatures were checked against the key carried in the receipt; pass "
            "--public-key (from GET /v1/keys/evidence) to check they are the platform's\n"
        )
    return 0
