"""The signed evidence chain of a letter, and receipts anyone can verify offline.

Each event (accepted, deposited, notified, opened, replied, deemed_delivered, failed) is a small
JSON object — letter id, sequence number, type, UTC time, the SHA-256 of the letter content,
the SHA-256 of the previous event, details — serialised canonically (UTF-8, keys sorted, no
whitespace) and signed with the platform's Ed25519 key. Hashing the previous event makes the
events a chain: removing, reordering or editing one breaks every later link (the PEC and
De-Mail practice of provable acceptance, deposit and opening; MISSION §3).

A receipt carries the letter's content fields, the events with their hashes and signatures and
the public key(s); ``verify_receipt`` needs nothing else. docs/KARTPOOSHE.md specifies the
format for third parties who verify in another language.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.key_files import write_new_ed25519_key

GENESIS = "0" * 64
RECEIPT_KIND = "payam.letter.receipt"
EVENT_TYPES = (
    "accepted",
    "deposited",
    "notified",
    "opened",
    "replied",
    "deemed_delivered",
    "failed",
)


def canonical(obj: Any) -> bytes:
    """UTF-8 JSON, keys sorted, no whitespace. Values are strings, integers, booleans, lists and
    objects only (no floats), so every language serialises them to the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_digest(
    agency_id: str,
    recipient: Mapping[str, str],
    subject: str,
    body: str,
    reply_allowed: bool,
    attachments: Sequence[Mapping[str, Any]],
) -> str:
    """SHA-256 over the canonical letter content (what the e-box receives as content_sha256)."""
    return sha256_hex(
        canonical(
            {
                "v": 1,
                "agency_id": agency_id,
                "recipient": {"kind": recipient["kind"], "id": recipient["id"]},
                "subject": subject,
                "body": body,
                "reply_allowed": reply_allowed,
                "attachments": [
                    {
                        "name": a["name"],
                        "content_type": a["content_type"],
                        "size": a["size"],
                        "sha256": a["sha256"],
                    }
                    for a in attachments
                ],
            }
        )
    )


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + sha256_hex(raw)[:16]


def public_key_b64(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


class EvidenceKeyError(ValueError):
    pass


# The audit and evidence keys are created alike (gateway/key_files.py).
write_new_evidence_key = write_new_ed25519_key


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """A PEM public key, or base64 of the 32 raw bytes."""
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except ValueError as exc:
        raise EvidenceKeyError(f"not an Ed25519 public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise EvidenceKeyError("not an Ed25519 public key")
    return key


@dataclass(frozen=True, slots=True)
class PublishedKey:
    key_id: str
    public_key: str  # base64 of the raw 32 bytes
    pem: str
    current: bool

    def view(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "algorithm": "Ed25519",
            "public_key": self.public_key,
            "public_key_pem": self.pem,
            "current": self.current,
        }


class EvidenceSigner:
    """The platform key: signs events; publishes its public key and any retired ones."""

    def __init__(
        self, private: Ed25519PrivateKey, retired: Sequence[Ed25519PublicKey] = ()
    ) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id_of(self.public)
        self._retired = tuple(retired)

    @classmethod
    def from_files(cls, key_file: str, retired_files: Sequence[str] = ()) -> EvidenceSigner:
        try:
            data = Path(key_file).read_bytes()
        except FileNotFoundError:
            raise EvidenceKeyError(
                f"{key_file!r} does not exist (run 'payam init' to create it)"
            ) from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except ValueError as exc:
            raise EvidenceKeyError(f"{key_file}: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise EvidenceKeyError(f"{key_file}: not an Ed25519 private key")
        retired = [load_public_key(Path(f).read_bytes()) for f in retired_files]
        return cls(key, retired)

    def published(self) -> list[PublishedKey]:
        keys = [(self.public, True), *((k, False) for k in self._retired)]
        return [
            PublishedKey(key_id_of(k), public_key_b64(k), public_key_pem(k), current)
            for k, current in keys
        ]

    def sign_event(self, payload: dict[str, Any]) -> tuple[str, str]:
        """(event_sha256, base64 signature) of an event payload that already names key_id."""
        data = canonical(payload)
        return sha256_hex(data), base64.b64encode(self._private.sign(data)).decode()


def event_payload(
    *,
    letter_id: str,
    seq: int,
    type_: str,
    at: str,
    content_sha256: str,
    prev_sha256: str,
    key_id: str,
    detail: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "v": 1,
        "letter_id": letter_id,
        "seq": seq,
        "type": type_,
        "at": at,
        "content_sha256": content_sha256,
        "prev_sha256": prev_sha256,
        "key_id": key_id,
        "detail": dict(detail),
    }


_PAYLOAD_FIELDS = (
    "letter_id",
    "seq",
    "type",
    "at",
    "content_sha256",
    "prev_sha256",
    "key_id",
    "detail",
)


class ReceiptInvalid(ValueError):
    """A receipt does not verify; the message says which check failed and where."""


def verify_receipt(
    receipt: Mapping[str, Any], trusted: Mapping[str, Ed25519PublicKey] | None = None
) -> list[str]:
    """Check a receipt completely; returns the event types verified, raises ReceiptInvalid.

    ``trusted``: key id → public key from the platform (GET /v1/keys/evidence). Without it the
    keys carried in the receipt are used, which proves integrity but not who signed.
    """
    try:
        return _verify(receipt, trusted)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ReceiptInvalid):
            raise
        raise ReceiptInvalid(f"malformed receipt: {type(exc).__name__} {exc}") from None


def _verify(
    receipt: Mapping[str, Any], trusted: Mapping[str, Ed25519PublicKey] | None
) -> list[str]:
    if receipt.get("kind") != RECEIPT_KIND or receipt.get("version") != 1:
        raise ReceiptInvalid(f"not a version 1 {RECEIPT_KIND}")
    letter = receipt["letter"]
    digest = content_digest(
        letter["agency"]["id"],
        letter["recipient"],
        letter["subject"],
        letter["body"],
        letter["reply_allowed"],
        letter["attachments"],
    )
    if digest != letter["content_sha256"]:
        raise ReceiptInvalid("letter content does not match its content_sha256 (content altered)")
    keys: dict[str, Ed25519PublicKey]
    if trusted is not None:
        keys = dict(trusted)
    else:
        keys = {
            k["key_id"]: load_public_key(k["public_key"].encode())
            for k in receipt.get("public_keys", [])
        }
        for kid, key in keys.items():
            if key_id_of(key) != kid:
                raise ReceiptInvalid(f"key id {kid} does not match its public key")
    events = receipt["events"]
    if not events or events[0]["type"] != "accepted":
        raise ReceiptInvalid("the chain must start with an 'accepted' event")
    prev = GENESIS
    seen: list[str] = []
    for i, event in enumerate(events, start=1):
        where = f"event {i} ({event.get('type')})"
        payload = {"v": 1, **{f: event[f] for f in _PAYLOAD_FIELDS}}
        if event["seq"] != i:
            raise ReceiptInvalid(f"{where}: sequence number {event['seq']}, expected {i}")
        if event["letter_id"] != letter["id"]:
            raise ReceiptInvalid(f"{where}: belongs to another letter")
        if event["type"] not in EVENT_TYPES:
            raise ReceiptInvalid(f"{where}: unknown event type")
        if event["content_sha256"] != digest:
            raise ReceiptInvalid(f"{where}: content hash differs from the letter's")
        if event["prev_sha256"] != prev:
            raise ReceiptInvalid(f"{where}: does not chain to the previous event")
        data = canonical(payload)
        if sha256_hex(data) != event["event_sha256"]:
            raise ReceiptInvalid(f"{where}: event_sha256 does not match the event (altered)")
        signer_key = keys.get(event["key_id"])
        if signer_key is None:
            raise ReceiptInvalid(f"{where}: signed by unknown key {event['key_id']}")
        try:
            signer_key.verify(base64.b64decode(event["signature"], validate=True), data)
        except (InvalidSignature, ValueError):
            raise ReceiptInvalid(f"{where}: signature is not valid") from None
        prev = event["event_sha256"]
        seen.append(event["type"])
    return seen
