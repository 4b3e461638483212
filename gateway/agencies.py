"""Agencies: who may send through Payam Iran, with their limits and callback settings."""

from __future__ import annotations

import ipaddress
import re
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from gateway.errors import Problem
from gateway.identity import is_valid_legal_id, normalize_digits
from gateway.persian import normalize_letters
from gateway.sealing import Sealer
from gateway.store import Store
from gateway.store.models import Agency
from gateway.validation import Field, parse_object

_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _legal_id(value: str) -> str:
    digits = normalize_digits(value)
    if not is_valid_legal_id(digits):
        raise Problem(
            "invalid_legal_id", f"{digits!r} is not an 11-digit legal ID with a valid check digit"
        )
    return digits


def _name(value: str) -> str:
    value = normalize_letters(value).strip()
    if not value:
        raise Problem("invalid_value", "must not be empty")
    return value


def _email(value: str) -> str:
    value = value.strip()
    if value and not _EMAIL.match(value):
        raise Problem("invalid_value", "not an e-mail address")
    return value


def _phone(value: str) -> str:
    value = normalize_digits(value)
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, "IR")
    except phonenumbers.NumberParseException:
        raise Problem("invalid_value", "not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise Problem("invalid_value", "not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_domain(value: str) -> str:
    """A registered link domain in its ASCII (punycode) form, lower case, no scheme or path."""
    host = value.strip().rstrip(".").lower()
    if not host or "/" in host or ":" in host or "@" in host:
        raise Problem("invalid_value", f"{value!r} is not a bare domain name")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise Problem("invalid_value", f"{value!r} is an IP address, not a domain")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise Problem("invalid_value", f"{value!r} is not a valid domain name") from None
    labels = ascii_host.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise Problem("invalid_value", f"{value!r} is not a valid domain name")
    return ascii_host


def _domains(values: list[str]) -> list[str]:
    return sorted({normalize_domain(v) for v in values})


def callback_url(value: str) -> str:
    """HTTPS only, except loopback (local receivers in development and tests)."""
    value = value.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    host = (parts.hostname or "").lower()
    if parts.scheme not in {"https", "http"} or not host:
        raise Problem("invalid_value", "must be an absolute https:// URL")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise Problem("invalid_value", "must use https:// (http only for loopback)")
    if parts.username or parts.password:
        raise Problem("invalid_value", "must not carry credentials")
    return value


AGENCY_FIELDS: dict[str, Field] = {
    "name_fa": Field(str, required=True, max_length=200, check=_name),
    "name_en": Field(str, required=True, max_length=200, check=_name),
    "legal_id": Field(str, required=True, max_length=32, check=_legal_id),
    "contact_name": Field(str, max_length=200),
    "contact_email": Field(str, max_length=254, check=_email),
    "contact_phone": Field(str, max_length=32, check=_phone),
    "tps": Field(int, minimum=1, maximum=100_000),
    "daily_fragment_quota": Field(int, minimum=0, maximum=10_000_000_000),
    "link_domains": Field(list, item_kind=str, max_items=100, check=_domains),
    "callback_url": Field(str, max_length=2048, check=callback_url),
    "mandatory_allowed": Field(bool),
}
UPDATE_FIELDS = {k: v for k, v in AGENCY_FIELDS.items() if k != "legal_id"}
DOMAINS_FIELDS: dict[str, Field] = {
    "domains": Field(list, required=True, item_kind=str, max_items=100, check=_domains)
}

DEFAULT_TPS = 50
DEFAULT_DAILY_FRAGMENT_QUOTA = 100_000


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def webhook_context(agency_id: uuid.UUID) -> str:
    return f"webhook:{agency_id}"


class AgencyService:
    def __init__(self, store: Store, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer

    async def create(self, body: Any, *, actor: str, client_addr: str = "") -> tuple[Agency, str]:
        """Create from a request body; returns the agency and its webhook secret (shown once)."""
        data = parse_object(body, AGENCY_FIELDS)
        agency_id = uuid.uuid4()
        secret = new_webhook_secret()
        async with self._store.transaction() as tx:
            agency = await tx.agencies.insert(
                agency_id=agency_id,
                name_fa=data["name_fa"],
                name_en=data["name_en"],
                legal_id=data["legal_id"],
                contact_name=data.get("contact_name", ""),
                contact_email=data.get("contact_email", ""),
                contact_phone=data.get("contact_phone", ""),
                tps=data.get("tps", DEFAULT_TPS),
                daily_fragment_quota=data.get("daily_fragment_quota", DEFAULT_DAILY_FRAGMENT_QUOTA),
                link_domains=data.get("link_domains", []),
                callback_url=data.get("callback_url", ""),
                webhook_secret_sealed=self._sealer.seal(
                    secret.encode(), webhook_context(agency_id)
                ),
                mandatory_allowed=data.get("mandatory_allowed", False),
            )
            if agency is None:
                raise Problem("legal_id_taken", f"legal ID {data['legal_id']} is registered")
            await tx.audit.record(
                actor=actor,
                action="agency.create",
                target=str(agency.id),
                outcome="ok",
                client_addr=client_addr,
                detail={"name_en": agency.name_en, "legal_id": agency.legal_id},
            )
        return agency, secret

    async def get(self, agency_id: uuid.UUID) -> Agency:
        agency = await self._store.agencies.get(agency_id)
        if agency is None:
            raise Problem("not_found", f"agency {agency_id}")
        return agency

    async def update(
        self, agency_id: uuid.UUID, body: Any, *, actor: str, client_addr: str = ""
    ) -> Agency:
        changes = parse_object(body, UPDATE_FIELDS, partial=True)
        async with self._store.transaction() as tx:
            agency = await tx.agencies.update(agency_id, changes)
            if agency is None:
                raise Problem("not_found", f"agency {agency_id}")
            await tx.audit.record(
                actor=actor,
                action="agency.update",
                target=str(agency_id),
                outcome="ok",
                client_addr=client_addr,
                detail={"fields": sorted(changes)},
            )
        return agency

    async def set_status(
        self, agency_id: uuid.UUID, status: str, reason: str, *, actor: str, client_addr: str = ""
    ) -> Agency:
        async with self._store.transaction() as tx:
            agency = await tx.agencies.set_status(agency_id, status, reason)
            if agency is None:
                raise Problem("not_found", f"agency {agency_id}")
            # Suspension stops the agency's queue at once, not only its keys (issue 8).
            held = await tx.operations.hold_agency_queue(agency_id, status == "suspended")
            await tx.audit.record(
                actor=actor,
                action="agency.suspend" if status == "suspended" else "agency.resume",
                target=str(agency_id),
                outcome="ok",
                client_addr=client_addr,
                detail={"reason": reason, "queue_rows": held},
            )
        return agency

    async def rotate_webhook_secret(
        self, agency_id: uuid.UUID, *, actor: str, client_addr: str = ""
    ) -> str:
        secret = new_webhook_secret()
        sealed = self._sealer.seal(secret.encode(), webhook_context(agency_id))
        async with self._store.transaction() as tx:
            if not await tx.agencies.set_webhook_secret(agency_id, sealed):
                raise Problem("not_found", f"agency {agency_id}")
            await tx.audit.record(
                actor=actor,
                action="agency.rotate_webhook_secret",
                target=str(agency_id),
                outcome="ok",
                client_addr=client_addr,
            )
        return secret

    async def set_domains(
        self, agency_id: uuid.UUID, body: Any, *, actor: str, client_addr: str = ""
    ) -> Agency:
        """Replace the agency's registered link domains (gateway/link_policy.py reads them)."""
        data = parse_object(body, DOMAINS_FIELDS)
        async with self._store.transaction() as tx:
            before = await tx.agencies.get(agency_id)
            if before is None:
                raise Problem("not_found", f"agency {agency_id}")
            agency = await tx.agencies.update(agency_id, {"link_domains": data["domains"]})
            assert agency is not None
            await tx.audit.record(
                actor=actor,
                action="agency.set_domains",
                target=str(agency_id),
                outcome="ok",
                client_addr=client_addr,
                detail={"before": list(before.link_domains), "after": list(agency.link_domains)},
            )
        return agency

    def webhook_secret(self, agency: Agency) -> str:
        return self._sealer.open(agency.webhook_secret_sealed, webhook_context(agency.id)).decode()
