"""Accepting letters (API and e-mail) and reading them back with their evidence.

A letter is committed with its attachments and its signed ``accepted`` event in ONE
transaction before anyone hears "accepted" (202 or SMTP 250); the delivery worker deposits it
in the e-box afterwards (adapters/kartpooshe/delivery.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.config import KartpoosheConfig

if TYPE_CHECKING:
    from gateway.letters.lifecycle import Lifecycle
from gateway.errors import Problem
from gateway.identity import is_valid_legal_id, is_valid_national_code, normalize_digits
from gateway.letters.attachments import Attachment
from gateway.letters.chain import EvidenceChain, event_view, utc_iso
from gateway.letters.evidence import RECEIPT_KIND, content_digest
from gateway.letters.tracking_numbers import new_tracking_number
from gateway.metrics import LETTERS_ACCEPTED
from gateway.persian import normalize_letters
from gateway.store import Store
from gateway.store.letters import Letter, LetterEvent, StoredAttachment
from gateway.store.models import Agency
from gateway.validation import Field, parse_object

MAX_SUBJECT = 300
MAX_BODY = 100_000
# How far each status is along the chain: a late SMS receipt never moves "opened" back.
STATUS_RANK = {"accepted": 0, "deposited": 1, "notified": 2, "opened": 3, "replied": 4}
NOTICE_SENDER_KINDS = ("shortcode", "sub_number")


def parse_recipient(value: Any) -> tuple[str, str]:
    if not isinstance(value, dict) or set(value) != {"kind", "id"}:
        raise Problem("invalid_letter_recipient", 'recipient: {"kind": ..., "id": ...}')
    kind, raw = value["kind"], value["id"]
    if not isinstance(raw, str) or kind not in ("person", "company"):
        raise Problem("invalid_letter_recipient", "recipient.kind is person or company")
    digits = normalize_digits(raw)
    if kind == "person" and not is_valid_national_code(digits):
        raise Problem("invalid_letter_recipient", "not a 10-digit national code (check digit)")
    if kind == "company" and not is_valid_legal_id(digits):
        raise Problem("invalid_letter_recipient", "not an 11-digit legal-entity ID (check digit)")
    return kind, digits


def parse_deemed(value: Any) -> tuple[str, int | None]:
    """ "on_open" or {"after_days": N} (1..365)."""
    if value == "on_open":
        return "on_open", None
    if isinstance(value, dict) and set(value) == {"after_days"}:
        days = value["after_days"]
        if isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= 365:
            return "after_days", days
    raise Problem("invalid_value", 'deemed_delivery: "on_open" or {"after_days": 1..365}')


METADATA_FIELDS: dict[str, Field] = {
    "recipient": Field(dict, required=True),
    "subject": Field(str, required=True, max_length=MAX_SUBJECT),
    "body": Field(str, required=True, max_length=MAX_BODY),
    "reply_allowed": Field(bool),
    "deemed_delivery": Field((str, dict)),
    "notify_sms": Field(bool),
    "client_ref": Field(str, max_length=100),
}


@dataclass(frozen=True, slots=True)
class Draft:
    recipient_kind: str
    recipient_id: str
    subject: str
    body: str
    reply_allowed: bool
    deemed: tuple[str, int | None] | None
    notify_sms: bool
    client_ref: str


def parse_metadata(body: Any) -> Draft:
    data = parse_object(body, METADATA_FIELDS)
    kind, rid = parse_recipient(data["recipient"])
    subject = normalize_letters(data["subject"]).strip()
    text = normalize_letters(data["body"]).strip()
    if not subject:
        raise Problem("invalid_value", "subject: must not be empty")
    if not text:
        raise Problem("invalid_value", "body: must not be empty")
    deemed = parse_deemed(data["deemed_delivery"]) if "deemed_delivery" in data else None
    return Draft(
        recipient_kind=kind,
        recipient_id=rid,
        subject=subject,
        body=text,
        reply_allowed=data.get("reply_allowed", True),
        deemed=deemed,
        notify_sms=data.get("notify_sms", True),
        client_ref=data.get("client_ref", ""),
    )


def request_digest(metadata_raw: bytes, attachments: list[Attachment]) -> bytes:
    h = hashlib.sha256(metadata_raw)
    for a in attachments:
        h.update(b"\x00" + a.name.encode() + b"\x00" + a.sha256.encode())
    return h.digest()


class LetterService:
    def __init__(
        self,
        store: Store,
        cfg: KartpoosheConfig,
        chain: EvidenceChain,
        mail_domain: str,
        senders: Callable[[uuid.UUID], Any],
    ) -> None:
        self._store = store
        self._cfg = cfg
        self.chain = chain
        self._mail_domain = mail_domain
        self._senders = senders
        # Set when a letter is committed, so the delivery worker starts at once.
        self.wake = asyncio.Event()
        # What happens after acceptance (gateway/letters/lifecycle.py); set by the wiring.
        self.lifecycle: Lifecycle
        # Set when a reply is stored, so the reply-delivery worker starts at once.
        self.replies_wake = asyncio.Event()

    async def accept(
        self,
        agency: Agency,
        draft: Draft,
        attachments: list[Attachment],
        *,
        source: str,
        mail_message_id: str = "",
        idempotency: tuple[str, bytes] | None = None,
        now: datetime | None = None,
        is_test: bool = False,
    ) -> tuple[Letter, bool]:
        """Commit the letter; (letter, created). ``idempotency`` = (key, request digest): the
        same key with the same digest answers with the letter already made."""
        if idempotency is not None:
            found = await self._replay(agency.id, *idempotency)
            if found is not None:
                return found, False
        notify = draft.notify_sms and draft.recipient_kind == "person"
        if notify:
            held = await self._senders(agency.id)
            if not any(a.kind in NOTICE_SENDER_KINDS for a in held):
                raise Problem(
                    "no_sender",
                    "the SMS notice needs the agency's 4040 number; allocate one or send "
                    "with notify_sms false",
                )
        settings = await self._store.letters.settings(agency.id)
        if draft.deemed is not None:
            policy, days = draft.deemed
        elif settings is not None:
            policy, days = settings.deemed_policy, settings.deemed_days
        else:
            policy, days = "after_days", None
        days = days or self._cfg.default_deemed_days
        at = now or datetime.now(UTC)
        letter_id = uuid.uuid4()
        metas = [a.meta() for a in attachments]
        digest = content_digest(
            str(agency.id),
            {"kind": draft.recipient_kind, "id": draft.recipient_id},
            draft.subject,
            draft.body,
            draft.reply_allowed,
            metas,
        )
        stored = [
            StoredAttachment(i, a.name, a.content_type, a.size, a.sha256, a.data)
            for i, a in enumerate(attachments)
        ]
        for _ in range(8):
            letter = Letter(
                id=letter_id,
                agency_id=agency.id,
                tracking_number=new_tracking_number(),
                recipient_kind=draft.recipient_kind,
                recipient_id=draft.recipient_id,
                subject=draft.subject,
                body=draft.body,
                reply_allowed=draft.reply_allowed,
                deemed_policy=policy,
                deemed_days=days,
                notify_sms=notify,
                content_sha256=digest,
                source=source,
                mail_message_id=mail_message_id or f"<{letter_id}@{self._mail_domain}>",
                client_ref=draft.client_ref,
                status="accepted",
                attempts=0,
                last_error="",
                accepted_at=at,
                deposited_at=None,
                notified_at=None,
                opened_at=None,
                replied_at=None,
                deemed_at=None,
                failed_at=None,
                notice_message_id=None,
                notice_state="" if notify else "off",
                is_test=is_test,
            )
            try:
                await self._commit(agency, letter, stored, source, idempotency)
            except _TrackingTaken:
                continue  # the tracking number was drawn twice: rolled back, draw another
            LETTERS_ACCEPTED.labels(str(agency.id), source).inc()
            self.wake.set()
            return letter, True
        raise Problem("service_unavailable", "could not draw a free tracking number")

    async def _commit(
        self,
        agency: Agency,
        letter: Letter,
        stored: list[StoredAttachment],
        source: str,
        idempotency: tuple[str, bytes] | None,
    ) -> None:
        """Letter, attachments, idempotency key and the signed "accepted" event: all or none."""
        async with self._store.transaction() as tx:
            if idempotency is not None and not await tx.letters.idempotent_claim(
                agency.id, idempotency[0], idempotency[1], letter.id
            ):
                raise _Raced()
            if not await tx.letters.insert(letter, stored):
                raise _TrackingTaken()
            await self.chain.append(
                tx,
                letter,
                "accepted",
                letter.accepted_at,
                {
                    "tracking_number": letter.tracking_number,
                    "agency_id": str(agency.id),
                    "source": source,
                    "attachments": len(stored),
                    **({"test": True} if letter.is_test else {}),
                },
            )

    async def accept_idempotent(
        self,
        agency: Agency,
        draft: Draft,
        attachments: list[Attachment],
        key: str,
        digest: bytes,
        *,
        source: str = "api",
        mail_message_id: str = "",
        is_test: bool = False,
    ) -> tuple[Letter, bool]:
        if not 1 <= len(key) <= 200:
            raise Problem("invalid_idempotency_key", "1..200 characters")
        try:
            return await self.accept(
                agency,
                draft,
                attachments,
                source=source,
                mail_message_id=mail_message_id,
                idempotency=(key, digest),
                is_test=is_test,
            )
        except _Raced:
            found = await self._replay(agency.id, key, digest)
            assert found is not None
            return found, False

    async def _replay(self, agency_id: uuid.UUID, key: str, digest: bytes) -> Letter | None:
        stored = await self._store.letters.idempotent_get(agency_id, key)
        if stored is None:
            return None
        if stored[0] != digest:
            raise Problem(
                "idempotency_key_reused", "this Idempotency-Key was used with another letter"
            )
        return await self._store.letters.get(stored[1], agency_id)

    async def get(self, agency_id: uuid.UUID, letter_id: uuid.UUID) -> Letter:
        letter = await self._store.letters.get(letter_id, agency_id)
        if letter is None:
            raise Problem("not_found", "no such letter")
        return letter

    async def view(self, letter: Letter) -> dict[str, Any]:
        events = await self._store.letters.events(letter.id)
        attachments = await self._store.letters.attachments(letter.id, with_data=False)
        return letter_view(letter, attachments, events)

    async def receipt(
        self, letter: Letter, agency: Agency, issued: datetime | None = None
    ) -> dict[str, Any]:
        events = await self._store.letters.events(letter.id)
        attachments = await self._store.letters.attachments(letter.id, with_data=False)
        return {
            "kind": RECEIPT_KIND,
            "version": 1,
            "issued_at": utc_iso(issued or datetime.now(UTC)),
            "letter": {
                "id": str(letter.id),
                "tracking_number": letter.tracking_number,
                "agency": {
                    "id": str(agency.id),
                    "name_fa": agency.name_fa,
                    "name_en": agency.name_en,
                },
                "recipient": {"kind": letter.recipient_kind, "id": letter.recipient_id},
                "subject": letter.subject,
                "body": letter.body,
                "reply_allowed": letter.reply_allowed,
                "attachments": [a.meta() for a in attachments],
                "content_sha256": letter.content_sha256,
            },
            "events": [event_view(e) for e in events],
            "public_keys": [
                {"key_id": k.key_id, "algorithm": "Ed25519", "public_key": k.public_key}
                for k in self.chain.signer.published()
            ],
        }


class _Raced(Exception):
    pass


class _TrackingTaken(Exception):
    pass


def _iso(at: datetime | None) -> str | None:
    return utc_iso(at) if at is not None else None


def letter_view(
    letter: Letter, attachments: list[StoredAttachment], events: list[LetterEvent] | None
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": str(letter.id),
        "tracking_number": letter.tracking_number,
        "status": letter.status,
        "recipient": {"kind": letter.recipient_kind, "id": letter.recipient_id},
        "subject": letter.subject,
        "reply_allowed": letter.reply_allowed,
        "deemed_delivery": (
            "on_open" if letter.deemed_policy == "on_open" else {"after_days": letter.deemed_days}
        ),
        "notify_sms": letter.notify_sms,
        "notice": letter.notice_state or None,
        "client_ref": letter.client_ref,
        "source": letter.source,
        "test": letter.is_test,
        "content_sha256": letter.content_sha256,
        "attachments": [a.meta() for a in attachments],
        "accepted_at": _iso(letter.accepted_at),
        "deposited_at": _iso(letter.deposited_at),
        "notified_at": _iso(letter.notified_at),
        "opened_at": _iso(letter.opened_at),
        "replied_at": _iso(letter.replied_at),
        "deemed_delivered_at": _iso(letter.deemed_at),
        "failed_at": _iso(letter.failed_at),
        "error": letter.last_error or None,
    }
    if events is not None:
        view["evidence"] = [event_view(e) for e in events]
    return view
