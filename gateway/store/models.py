"""Plain dataclasses returned by the store: callers never see database rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Agency:
    id: uuid.UUID
    name_fa: str
    name_en: str
    legal_id: str
    contact_name: str
    contact_email: str
    contact_phone: str
    status: str
    status_reason: str
    tps: int
    daily_fragment_quota: int
    link_domains: tuple[str, ...]
    callback_url: str
    webhook_secret_sealed: bytes
    created_at: datetime
    updated_at: datetime
    mandatory_allowed: bool

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    agency_id: uuid.UUID
    name: str
    key_type: str
    secret_hash: bytes
    secret_sealed: bytes
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class AdminToken:
    id: uuid.UUID
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class Allocation:
    id: int
    kind: str
    value: str
    match_key: str
    agency_id: uuid.UUID
    parent_id: int | None
    label: str
    allocated_at: datetime
    allocated_by: str
    released_at: datetime | None
    released_by: str | None
    quarantine_until: datetime | None

    @property
    def active(self) -> bool:
        return self.released_at is None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    client_addr: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message accepted by the API, about to be committed."""

    id: uuid.UUID
    agency_id: uuid.UUID
    batch_id: uuid.UUID | None
    key_id: str
    is_test: bool
    recipient: str
    sender: str
    body: str
    encoding: str
    parts: int
    priority: int
    mandatory: bool
    status: str
    send_at: datetime | None
    valid_until: datetime
    client_ref: str
    callback_url: str
    vt: datetime


@dataclass(frozen=True, slots=True)
class Message:
    id: uuid.UUID
    agency_id: uuid.UUID
    batch_id: uuid.UUID | None
    is_test: bool
    recipient: str
    sender: str
    body: str
    encoding: str
    parts: int
    priority: int
    mandatory: bool
    status: str
    operator: str
    send_at: datetime | None
    valid_until: datetime
    client_ref: str
    callback_url: str
    attempts: int
    error_code: str
    created_at: datetime
    updated_at: datetime
    final_at: datetime | None


@dataclass(frozen=True, slots=True)
class MessageEvent:
    at: datetime
    status: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message leased from the queue for sending."""

    id: uuid.UUID
    agency_id: uuid.UUID
    is_test: bool
    recipient: str
    sender: str
    body: str
    priority: int
    valid_until: datetime
    attempts: int
    callback_url: str
    done_parts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    id: uuid.UUID
    seq: int
    agency_id: uuid.UUID
    number: str
    msisdn: str
    body: str
    operator: str
    in_reply_to: uuid.UUID | None
    keyword: str
    received_at: datetime
