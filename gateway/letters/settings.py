"""Per-agency letter settings and SMTP credentials (admin API and CLI share this service).

SMTP passwords are generated here, shown once, and stored only as scrypt hashes (RFC 7914;
stdlib hashlib): unlike API key secrets they never need to be recovered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import uuid
from typing import Any

from gateway.agencies import _email, callback_url
from gateway.credentials import shown_secret
from gateway.errors import Problem
from gateway.letters.service import parse_deemed
from gateway.store import Store
from gateway.store.letters import LetterSettings
from gateway.validation import Field, parse_object

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,62}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def _address(value: str) -> str:
    value = _email(value).lower()
    if not value:
        raise Problem("invalid_value", "an e-mail address")
    return value


def _addresses(values: list[str]) -> list[str]:
    return sorted({_address(v) for v in values})


SETTINGS_FIELDS: dict[str, Field] = {
    "deemed_delivery": Field((str, dict)),
    "from_addresses": Field(list, item_kind=str, max_items=50, check=_addresses),
    "office_mailbox": Field(str, max_length=254, check=_email),
    "reply_webhook_url": Field(str, max_length=2048, check=callback_url),
}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt$16384$8$1${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def settings_view(s: LetterSettings | None, default_days: int) -> dict[str, Any]:
    if s is None:
        return {
            "deemed_delivery": {"after_days": default_days},
            "from_addresses": [],
            "office_mailbox": "",
            "reply_webhook_url": "",
        }
    return {
        "deemed_delivery": (
            "on_open"
            if s.deemed_policy == "on_open"
            else {"after_days": s.deemed_days or default_days}
        ),
        "from_addresses": list(s.from_addresses),
        "office_mailbox": s.office_mailbox,
        "reply_webhook_url": s.reply_webhook_url,
    }


class LetterSettingsService:
    def __init__(self, store: Store, default_days: int) -> None:
        self._store = store
        self._default_days = default_days

    async def get(self, agency_id: uuid.UUID) -> dict[str, Any]:
        return settings_view(await self._store.letters.settings(agency_id), self._default_days)

    async def update(
        self, agency_id: uuid.UUID, body: Any, *, actor: str, client_addr: str = ""
    ) -> dict[str, Any]:
        """PATCH semantics: only the fields given change."""
        data = parse_object(body, SETTINGS_FIELDS, partial=True)
        async with self._store.transaction() as tx:
            if await tx.agencies.get(agency_id) is None:
                raise Problem("not_found", "no such agency")
            old = await tx.letters.settings(agency_id)
            policy, days = (old.deemed_policy, old.deemed_days) if old else ("after_days", None)
            if "deemed_delivery" in data:
                policy, days = parse_deemed(data["deemed_delivery"])
            new = LetterSettings(
                agency_id=agency_id,
                deemed_policy=policy,
                deemed_days=days,
                from_addresses=tuple(data.get("from_addresses", old.from_addresses if old else ())),
                office_mailbox=data.get("office_mailbox", old.office_mailbox if old else ""),
                reply_webhook_url=data.get(
                    "reply_webhook_url", old.reply_webhook_url if old else ""
                ),
            )
            await tx.letters.put_settings(new)
            await tx.audit.record(
                actor=actor,
                action="letters.settings",
                target=str(agency_id),
                outcome="ok",
                client_addr=client_addr,
                detail={"fields": sorted(data)},
            )
        return settings_view(new, self._default_days)

    async def create_smtp_credential(
        self, agency_id: uuid.UUID, username: str | None, *, actor: str, client_addr: str = ""
    ) -> tuple[str, str]:
        """(username, password); the password is shown only here."""
        username = (username or f"oa-{secrets.token_hex(4)}").lower()
        if not _USERNAME.match(username):
            raise Problem("invalid_value", "username: 3..63 of a-z 0-9 . _ -")
        password = shown_secret(24)
        hashed = await asyncio.to_thread(hash_password, password)
        async with self._store.transaction() as tx:
            if await tx.agencies.get(agency_id) is None:
                raise Problem("not_found", "no such agency")
            if not await tx.letters.add_smtp_credential(username, agency_id, hashed):
                raise Problem("smtp_username_taken", username)
            await tx.audit.record(
                actor=actor,
                action="letters.smtp_credential.create",
                target=str(agency_id),
                outcome="ok",
                client_addr=client_addr,
                detail={"username": username},
            )
        return username, password

    async def revoke_smtp_credential(
        self, agency_id: uuid.UUID, username: str, *, actor: str, client_addr: str = ""
    ) -> None:
        async with self._store.transaction() as tx:
            if not await tx.letters.revoke_smtp_credential(agency_id, username):
                raise Problem("not_found", "no such active SMTP credential")
            await tx.audit.record(
                actor=actor,
                action="letters.smtp_credential.revoke",
                target=str(agency_id),
                outcome="ok",
                client_addr=client_addr,
                detail={"username": username},
            )

    async def authenticate(self, username: str, password: str) -> uuid.UUID | None:
        """The agency of a live credential, else None (same answer for every failure)."""
        cred = await self._store.letters.smtp_credential(username.lower())
        if cred is None or cred.revoked_at is not None:
            await asyncio.to_thread(hash_password, password)  # same cost: no user enumeration
            return None
        ok = await asyncio.to_thread(check_password, password, cred.password_hash)
        return cred.agency_id if ok else None
