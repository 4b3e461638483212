"""Encryption at rest: per (agency, channel, month) data keys, wrapped by a key-encryption key.

Message texts, reply texts, letter contents and attachments are sealed with AES-256-GCM under a
*data key* drawn for the row's agency, channel (``sms``, ``letter``) and calendar month (UTC).
Data keys are stored in ``data_keys`` wrapped (AES-256-GCM again) by a key-encryption key (KEK);
the KEKs never reach the database. Deleting a data key row shreds every text sealed under it,
including copies in backups (issue 7 part 5, docs/TRUST.md "Retention").

KEKs form a keyring: the first one wraps new data keys, every one unwraps those wrapped under
it (looked up by its id, a fingerprint), so a master key is rotated without downtime: add the
new KEK to every process, make it the first, re-wrap (``payam keys rotate-master``), drop the old.
With no ``security.data_kek_files`` the KEK is derived from the platform master key (HKDF).

All crypto is here and in memory; the SQL is in ``gateway/store/data_keys.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.sealing import KEY_BYTES, Sealer, SealError

if TYPE_CHECKING:
    from gateway.store.data_keys import DataKeyStore

SMS = "sms"
LETTER = "letter"
CHANNELS = (SMS, LETTER)

_NONCE = 12
# In privacy.data_kek_files: the KEK derived from security.master_key_file.
MASTER = "master"
# Prefix of a number or national code replaced by its keyed hash at retention: never a digit,
# so a purged value cannot be mistaken for (or collide with) a real one.
HASHED_PREFIX = "h:"


class VaultError(RuntimeError):
    pass


def kek_id(kek: bytes) -> str:
    """A public fingerprint of a KEK, stored with each wrapped data key."""
    return hashlib.sha256(b"payam/kek-id/v1" + kek).hexdigest()[:16]


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    raw = Path(path).read_bytes().strip()
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise SealError(f"{path}: expected 64 hex characters") from None
    if len(key) != KEY_BYTES:
        raise SealError(f"{path}: expected 64 hex characters")
    return key


class Keyring:
    """Key-encryption keys: ``wrap`` with the first, ``unwrap`` with the one that wrapped."""

    def __init__(self, keks: list[bytes]) -> None:
        if not keks:
            raise VaultError("a keyring needs at least one key")
        self._by_id = {kek_id(k): AESGCM(k) for k in keks}
        self.current = kek_id(keks[0])

    @classmethod
    def for_platform(cls, sealer: Sealer, kek_files: Iterable[str] = ()) -> Keyring:
        """``privacy.data_kek_files`` in order; the entry ``master`` (and an empty list) is the
        KEK derived from the platform master key, so a rotation away from it can list it."""
        files = list(kek_files) or [MASTER]
        return cls(
            [
                sealer.derive_key("payam/data-keys/v1") if f == MASTER else read_key_file(f)
                for f in files
            ]
        )

    @property
    def ids(self) -> set[str]:
        return set(self._by_id)

    def wrap(self, dek: bytes, aad: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(_NONCE)
        return self.current, nonce + self._by_id[self.current].encrypt(nonce, dek, aad)

    def unwrap(self, kid: str, wrapped: bytes, aad: bytes) -> bytes:
        aead = self._by_id.get(kid)
        if aead is None:
            raise VaultError(f"data key wrapped under KEK {kid}, which this process does not hold")
        try:
            return aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], aad)
        except Exception:
            raise VaultError(f"cannot unwrap a data key under KEK {kid}") from None


def wrap_context(agency_id: uuid.UUID, channel: str, period: date) -> bytes:
    """A wrapped data key is bound to its (agency, channel, period): moved to another row, it
    does not unwrap."""
    return f"payam/data-key/v1|{agency_id}|{channel}|{period.isoformat()}".encode()


def period_of(at: datetime) -> date:
    at = at.astimezone(UTC)
    return date(at.year, at.month, 1)


class DataKey:
    __slots__ = ("_aead", "id")

    def __init__(self, key_id: int, key: bytes) -> None:
        self.id = key_id
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def seal_many(self, items: list[tuple[bytes, bytes]]) -> list[bytes]:
        """``seal`` for (plaintext, aad) pairs, with the random nonces drawn from the OS in one
        call instead of one per row (a third of the cost of sealing a short text)."""
        pool = os.urandom(_NONCE * len(items))
        encrypt = self._aead.encrypt
        out = []
        for i, (plaintext, aad) in enumerate(items):
            nonce = pool[i * _NONCE : (i + 1) * _NONCE]
            out.append(nonce + encrypt(nonce, plaintext, aad))
        return out

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
        except Exception:
            raise VaultError(f"cannot open a value under data key {self.id}") from None


class Vault:
    """Data keys by (agency, channel, period) and by id, cached in memory once unwrapped."""

    def __init__(self, store: DataKeyStore, keyring: Keyring, sealer: Sealer) -> None:
        self._store = store
        self.keyring = keyring
        # v2: keyed BLAKE2b (v1 was HMAC-SHA256, 2.5x the cost per text on the batch path).
        self._mac_key = sealer.derive_key("payam/text-mac/v2")
        self._pii_key = sealer.derive_key("payam/pii-hash/v1")
        self._by_slot: dict[tuple[uuid.UUID, str, date], DataKey] = {}
        self._by_id: dict[int, DataKey] = {}
        # One fetch per missing key however many requests want it at once: a cold process
        # under load would otherwise open a connection per waiting request (OwnConnection).
        self._creating: dict[tuple[uuid.UUID, str, date], asyncio.Lock] = {}
        self._loading = asyncio.Lock()
        self._shredded: set[int] = set()

    # -- keys ----------------------------------------------------------------------------
    async def key_for(self, agency_id: uuid.UUID, channel: str, at: datetime) -> DataKey:
        """The data key of the agency's channel for ``at``'s month, created on first use (by
        whichever process gets there first: the unique slot makes it one key)."""
        slot = (agency_id, channel, period_of(at))
        key = self._by_slot.get(slot)
        if key is not None:
            return key
        lock = self._creating.setdefault(slot, asyncio.Lock())
        async with lock:
            key = self._by_slot.get(slot)  # made while this request waited for the lock
            if key is not None:
                return key
            ctx = wrap_context(*slot)
            kid, wrapped = self.keyring.wrap(os.urandom(KEY_BYTES), ctx)
            row = await self._store.get_or_create(agency_id, channel, slot[2], kid, wrapped)
            key = DataKey(row.id, self.keyring.unwrap(row.kek_id, row.wrapped, ctx))
            self._by_slot[slot] = key
            self._by_id[key.id] = key
        self._creating.pop(slot, None)  # later callers find the key cached
        return key

    async def load(self, key_ids: Iterable[int | None]) -> None:
        """Unwrap the data keys of a batch of rows in one query (a shredded key stays out)."""
        wanted = {k for k in key_ids if k is not None}
        wanted -= self._by_id.keys()
        wanted -= self._shredded
        if not wanted:
            return
        async with self._loading:  # whoever waited here may find its keys loaded meanwhile
            missing = wanted - self._by_id.keys()
            if not missing:
                return
            for row in await self._store.by_ids(sorted(missing)):
                ctx = wrap_context(row.agency_id, row.channel, row.period)
                key = DataKey(row.id, self.keyring.unwrap(row.kek_id, row.wrapped, ctx))
                self._by_id[row.id] = key
            # Gone for good (ids are never reused): not asked for again on every read.
            self._shredded |= missing - self._by_id.keys()

    def open(self, key_id: int, sealed: bytes | None, aad: bytes) -> bytes | None:
        """The plaintext, or None when the key was shredded (or the row purged). ``load``
        must have been called for ``key_id``."""
        key = self._by_id.get(key_id)
        if key is None or sealed is None:
            return None
        return key.open(sealed, aad)

    def forget(self, key_ids: Iterable[int]) -> None:
        """Drop shredded keys from this process's cache."""
        for kid in key_ids:
            self._shredded.add(kid)
            key = self._by_id.pop(kid, None)
            if key is not None:
                for slot, k in list(self._by_slot.items()):
                    if k is key:
                        del self._by_slot[slot]

    # -- keyed hashes --------------------------------------------------------------------
    def mac(self, text: str) -> bytes:
        """A keyed hash of a text: duplicate suppression compares these instead of texts.
        BLAKE2b in its keyed mode is a MAC by design (RFC 7693 §2.5), 0.6 µs per text against
        1.55 µs for HMAC-SHA256, and a 1M-recipient batch computes one per recipient."""
        return hashlib.blake2b(text.encode(), key=self._mac_key, digest_size=32).digest()

    def pii_hash(self, value: str) -> str:
        """What a number or national code becomes at retention: a keyed hash, so history can
        still count distinct recipients, but a dump cannot be searched for a number."""
        return HASHED_PREFIX + hmac.digest(self._pii_key, value.encode(), "sha256")[:16].hex()


# Associated data per kind of row: a sealed value copied to another row does not open.
def message_aad(message_id: uuid.UUID) -> bytes:
    return b"payam/msg/" + message_id.bytes


def reply_aad(reply_id: uuid.UUID) -> bytes:
    return b"payam/reply/" + reply_id.bytes


def letter_aad(letter_id: uuid.UUID) -> bytes:
    return b"payam/letter/" + letter_id.bytes


def attachment_aad(owner_id: uuid.UUID, idx: int) -> bytes:
    return b"payam/attachment/" + owner_id.bytes + idx.to_bytes(4, "big")


def callback_aad(callback_id: int) -> bytes:
    return b"payam/callback/" + callback_id.to_bytes(8, "big")


def letter_reply_aad(reply_id: uuid.UUID) -> bytes:
    return b"payam/letter-reply/" + reply_id.bytes


async def rewrap_all(store: DataKeyStore, keyring: Keyring, batch: int = 500) -> int:
    """Re-wrap every data key not under the keyring's first KEK (``payam keys rotate-master``).
    Safe while gateways run: each row is replaced only if still wrapped as read, a process that
    already unwrapped a key keeps using it, and one that has not finds it under a KEK it holds
    (docs/TRUST.md, "Rotation"). Loops until none is left (keys made meanwhile included)."""
    done = 0
    while True:
        rows = await store.not_under(keyring.current, batch)
        if not rows:
            return done
        for row in rows:
            ctx = wrap_context(row.agency_id, row.channel, row.period)
            dek = keyring.unwrap(row.kek_id, row.wrapped, ctx)
            kid, wrapped = keyring.wrap(dek, ctx)
            if await store.rewrap(row.id, row.kek_id, kid, wrapped):
                done += 1
