"""The tamper-evident audit log: hash chain checking and Ed25519-signed checkpoints.

Every audit row carries ``hash = SHA-256(previous row's hash || canonical content)``, set by
the database as the row is inserted (migration trust). The database refuses UPDATE, DELETE
and TRUNCATE, but a superuser can switch that off; so the chain's head is signed now and then
with the platform's audit key, which lives in a file outside the database
(``security.audit_signing_key_file``). ``verify`` then finds, and names by row id:

- an edited row (its content no longer matches its hash);
- an inserted row (a repeated chain position, or a row that breaks the link while the next
  row still chains from the one before it);
- deleted rows (a gap in the positions, or fewer rows than the last checkpoint covers);
- a rewritten chain (a checkpoint whose hash is not the row's) and a forged checkpoint (bad
  signature).

Rows after the last checkpoint can be rewritten undetected by someone who can also rewrite
the head; the checkpoint interval bounds that window.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.config import ConfigError
from gateway.key_files import write_new_ed25519_key
from gateway.store import Store
from gateway.store.audit import ChainRow, Checkpoint

log = logging.getLogger(__name__)

GENESIS = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHECKPOINT_DOMAIN = b"payam-audit-checkpoint/v1\n"


def canonical(seq: int, row: ChainRow) -> bytes:
    """The bytes hashed for one row; must match audit_canonical() in the migration: each field
    as ``<length>:<value>;`` (length in characters), the time as integer microseconds."""
    at_us = (row.at - _EPOCH) // timedelta(microseconds=1)
    fields = (
        str(seq),
        str(at_us),
        row.actor,
        row.action,
        row.target,
        row.outcome,
        row.client_addr,
        row.detail,
    )
    return "".join(f"{len(f)}:{f};" for f in fields).encode()


def link(prev: bytes, seq: int, row: ChainRow) -> bytes:
    return hashlib.sha256(prev + canonical(seq, row)).digest()


# -- the signing key ------------------------------------------------------------------------
KEY_SETTING = "security.audit_signing_key_file"


# The audit and evidence keys are created alike (gateway/key_files.py).
write_new_signing_key = write_new_ed25519_key


def load_signing_key(path: str) -> Ed25519PrivateKey:
    if not Path(path).exists():
        raise ConfigError(KEY_SETTING, f"{path!r} does not exist (run 'payam init' to create it)")
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except ValueError as exc:
        raise ConfigError(KEY_SETTING, f"{path!r}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(KEY_SETTING, f"{path!r} is not an Ed25519 private key")
    return key


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _signed_bytes(at: datetime, seq: int, hash_: bytes) -> bytes:
    at_us = (at - _EPOCH) // timedelta(microseconds=1)
    return _CHECKPOINT_DOMAIN + f"{seq}\n{at_us}\n".encode() + hash_


async def checkpoint(store: Store, key: Ed25519PrivateKey) -> int | None:
    """Sign the chain's head when it moved since the last checkpoint; the new checkpoint id."""
    head = await store.audit_chain.head()
    if head is None or head[0] == 0 or head[0] <= await store.audit_chain.last_checkpoint_seq():
        return None
    seq, hash_ = head
    at = datetime.now(UTC)  # microseconds, as PostgreSQL keeps them: the signed bytes reread
    signature = key.sign(_signed_bytes(at, seq, hash_))
    return await store.audit_chain.add_checkpoint(
        at, seq, hash_, key_id(key.public_key()), signature
    )


# -- verification ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # edited | inserted | deleted | truncated | rewritten | forged_checkpoint | head
    row_id: int | None
    message: str
    checkpoint_id: int | None = None


@dataclass
class Report:
    rows: int = 0
    checkpoints: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


async def verify(store: Store, public: Ed25519PublicKey) -> Report:
    report = Report()
    checkpoints = await store.audit_chain.checkpoints()
    report.checkpoints = len(checkpoints)
    wanted = {c.seq for c in checkpoints}
    at_seq: dict[int, ChainRow] = {}
    prev_hash, prev2_hash = GENESIS, GENESIS
    prev: ChainRow | None = None
    expected = 1
    async for row in store.audit_chain.rows():
        report.rows += 1
        if row.seq < expected:
            report.findings.append(
                Finding(
                    "inserted",
                    row.id,
                    f"row id {row.id} repeats chain position {row.seq} (held by an earlier "
                    "row): it was inserted",
                )
            )
            continue
        if row.seq > expected:
            report.findings.append(
                Finding(
                    "deleted",
                    row.id,
                    f"{row.seq - expected} row(s) deleted at chain position(s) "
                    f"{expected}..{row.seq - 1}, between row id "
                    f"{prev.id if prev else '(start)'} and row id {row.id}",
                )
            )
        elif link(prev_hash, row.seq, row) != row.hash:
            if prev is not None and link(prev2_hash, row.seq - 1, row) == row.hash:
                # This row chains from the one before the previous, at the position before:
                # the previous row was slipped in and the rest renumbered.
                report.findings.append(
                    Finding("inserted", prev.id, f"row id {prev.id} was inserted into the chain")
                )
            else:
                report.findings.append(
                    Finding(
                        "edited",
                        row.id,
                        f"row id {row.id} does not match its hash: its content (or the hash of "
                        f"row id {prev.id if prev else '(start)'} before it) was altered",
                    )
                )
        if row.seq in wanted:
            at_seq[row.seq] = row
        prev2_hash, prev_hash, prev, expected = prev_hash, row.hash, row, row.seq + 1
    last_seq = expected - 1
    for c in checkpoints:
        _check_checkpoint(c, public, at_seq, last_seq, prev, report)
    head = await store.audit_chain.head()
    if head is not None and head[0] != last_seq:
        report.findings.append(
            Finding(
                "head",
                prev.id if prev else None,
                f"the chain head says {head[0]} rows were appended, the log ends at position "
                f"{last_seq}",
            )
        )
    return report


def _check_checkpoint(
    c: Checkpoint,
    public: Ed25519PublicKey,
    at_seq: dict[int, ChainRow],
    last_seq: int,
    last: ChainRow | None,
    report: Report,
) -> None:
    try:
        public.verify(c.signature, _signed_bytes(c.at, c.seq, c.hash))
    except InvalidSignature:
        report.findings.append(
            Finding(
                "forged_checkpoint",
                None,
                f"checkpoint id {c.id} (position {c.seq}) has no valid signature by the audit "
                "key: it is forged",
                c.id,
            )
        )
        return
    if c.seq > last_seq:
        report.findings.append(
            Finding(
                "truncated",
                last.id if last else None,
                f"checkpoint id {c.id} covers {c.seq} rows but the log ends at position "
                f"{last_seq} (row id {last.id if last else '-'}): the tail after it was deleted",
                c.id,
            )
        )
        return
    row = at_seq.get(c.seq)
    if row is None:
        return  # that position is missing: reported as deleted above
    if row.hash != c.hash:
        report.findings.append(
            Finding(
                "rewritten",
                row.id,
                f"row id {row.id} (position {c.seq}) does not have the hash signed in checkpoint "
                f"id {c.id}: the chain up to it was rewritten",
                c.id,
            )
        )
