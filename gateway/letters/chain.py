"""Appending signed events to a letter's evidence chain (inside the caller's transaction)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.letters.evidence import GENESIS, EvidenceSigner, event_payload
from gateway.store import Store
from gateway.store.letters import Letter, LetterEvent

# A citizen may reply more than once; every other event happens once per letter.
REPEATABLE = frozenset({"replied"})


def utc_iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


class EvidenceChain:
    """The platform key is read on first use (``payam serve`` reads it at start, so a missing
    key fails the start, not the first letter)."""

    def __init__(self, key_file: str, retired_files: tuple[str, ...] = ()) -> None:
        self._key_file = key_file
        self._retired_files = retired_files
        self._signer: EvidenceSigner | None = None

    @property
    def signer(self) -> EvidenceSigner:
        if self._signer is None:
            self._signer = EvidenceSigner.from_files(self._key_file, self._retired_files)
        return self._signer

    async def append(
        self, tx: Store, letter: Letter, type_: str, at: datetime, detail: dict[str, Any]
    ) -> LetterEvent | None:
        """Sign and append one event; None when the letter already has an event of this type.
        The caller holds the letter row locked (``tx.letters.lock``), so two writers cannot
        both take the same sequence number."""
        events = await tx.letters.events(letter.id)
        if type_ not in REPEATABLE and any(e.type == type_ for e in events):
            return None
        prev = events[-1].event_sha256 if events else GENESIS
        seq = len(events) + 1
        payload = event_payload(
            letter_id=str(letter.id),
            seq=seq,
            type_=type_,
            at=utc_iso(at),
            content_sha256=letter.content_sha256,
            prev_sha256=prev,
            key_id=self.signer.key_id,
            detail=detail,
        )
        digest, signature = self.signer.sign_event(payload)
        event = LetterEvent(
            letter_id=letter.id,
            seq=seq,
            type=type_,
            at=at,
            content_sha256=letter.content_sha256,
            prev_sha256=prev,
            event_sha256=digest,
            key_id=self.signer.key_id,
            signature=signature,
            detail=dict(detail),
        )
        await tx.letters.append_event(event)
        return event


def event_view(e: LetterEvent) -> dict[str, Any]:
    return {
        "letter_id": str(e.letter_id),
        "seq": e.seq,
        "type": e.type,
        "at": utc_iso(e.at),
        "content_sha256": e.content_sha256,
        "prev_sha256": e.prev_sha256,
        "key_id": e.key_id,
        "detail": e.detail,
        "event_sha256": e.event_sha256,
        "signature": e.signature,
    }
