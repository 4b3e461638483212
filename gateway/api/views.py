"""JSON shapes of resources, shared by the agency and admin routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.store.models import AdminToken, Agency, Allocation, ApiKey, AuditEntry


def iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


def agency_view(a: Agency) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "name_fa": a.name_fa,
        "name_en": a.name_en,
        "legal_id": a.legal_id,
        "contact_name": a.contact_name,
        "contact_email": a.contact_email,
        "contact_phone": a.contact_phone,
        "status": a.status,
        "status_reason": a.status_reason,
        "tps": a.tps,
        "daily_fragment_quota": a.daily_fragment_quota,
        "link_domains": list(a.link_domains),
        "callback_url": a.callback_url,
        "mandatory_allowed": a.mandatory_allowed,
        "created_at": iso(a.created_at),
        "updated_at": iso(a.updated_at),
    }


def key_view(k: ApiKey) -> dict[str, Any]:
    return {
        "key_id": k.key_id,
        "agency_id": str(k.agency_id),
        "name": k.name,
        "key_type": k.key_type,
        "fingerprint": k.secret_hash.hex()[:16],
        "created_at": iso(k.created_at),
        "revoked_at": iso(k.revoked_at),
        "last_used_at": iso(k.last_used_at),
        "active": k.revoked_at is None,
    }


def allocation_view(a: Allocation) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind,
        "value": a.value,
        "agency_id": str(a.agency_id),
        "parent_id": a.parent_id,
        "label": a.label,
        "allocated_at": iso(a.allocated_at),
        "allocated_by": a.allocated_by,
        "released_at": iso(a.released_at),
        "released_by": a.released_by,
        "quarantine_until": iso(a.quarantine_until),
        "active": a.active,
    }


def admin_token_view(t: AdminToken) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "name": t.name,
        "role": t.role,
        "created_at": iso(t.created_at),
        "revoked_at": iso(t.revoked_at),
        "last_used_at": iso(t.last_used_at),
    }


def audit_view(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": iso(e.at),
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "outcome": e.outcome,
        "client_addr": e.client_addr,
        "detail": e.detail,
    }
