"""Plain records the e-box store returns (never database rows)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

# Who acts on a box: its owner, an attorney the owner named, or a company's representative.
ACTORS = ("owner", "attorney", "representative")


@dataclass(frozen=True, slots=True)
class AttachmentMeta:
    position: int
    name: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Attachment:
    meta: AttachmentMeta
    data: bytes


@dataclass(frozen=True, slots=True)
class NewLetter:
    """A validated deposit, ready to store."""

    letter_id: str
    owner_id: str
    kind: str
    tracking_number: str
    agency_id: uuid.UUID
    agency_name_fa: str
    agency_name_en: str
    subject: str
    body: str
    reply_allowed: bool
    accepted_at: datetime
    content_sha256: str
    attachments: tuple[Attachment, ...]


@dataclass(frozen=True, slots=True)
class DepositResult:
    created: bool
    deposited_at: datetime
    # The stored content hash: differs from the request's on a conflict.
    content_sha256: str


@dataclass(frozen=True, slots=True)
class LetterSummary:
    letter_id: str
    owner_id: str
    tracking_number: str
    agency_name_fa: str
    subject: str
    deposited_at: datetime
    first_opened_at: datetime | None


@dataclass(frozen=True, slots=True)
class Letter:
    letter_id: str
    owner_id: str
    tracking_number: str
    agency_name_fa: str
    agency_name_en: str
    subject: str
    body: str
    reply_allowed: bool
    deposited_at: datetime
    first_opened_at: datetime | None
    attachments: tuple[AttachmentMeta, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    reply_id: uuid.UUID
    letter_id: str
    actor: str
    text: str
    attachment_name: str | None
    attachment_type: str | None
    attachment_data: bytes | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    event_id: uuid.UUID
    letter_id: str
    type: str
    at: datetime
    actor: str
    reply_id: uuid.UUID | None
    attempts: int


@dataclass(frozen=True, slots=True)
class Grant:
    """An attorney of a person's box, or a representative of a company's box."""

    owner_id: str
    national_code: str
    since: datetime


@dataclass(frozen=True, slots=True)
class LoginCode:
    login_id: uuid.UUID
    national_code: str
    salt: bytes
    code_hash: bytes
    expires_at: datetime
    attempts: int
    used: bool


@dataclass(frozen=True, slots=True)
class Session:
    national_code: str
    csrf_token: str
    expires_at: datetime
