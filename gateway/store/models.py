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
