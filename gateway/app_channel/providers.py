"""App providers: registered by the platform's operators, authenticated like agencies.

A provider's token is the agency scheme (gateway/auth.py: HS256 over the key secret, ``iss`` =
key id, ``iat`` within ``auth.iat_skew_seconds``, one-time ``jti``) in a key space of its own:
key ids start with ``app_`` and live in ``app_provider_keys``, sealed under their own context.
So an agency key is refused on provider routes (``agency_key_on_app_route``) and a provider key
on agency routes (``unknown_key``: the agency key table never holds it).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.agencies import callback_url
from gateway.auth import bearer, check_signed_claims, parse_hs256
from gateway.credentials import ADMIN_TOKEN_PREFIX, new_key_material, shown_secret
from gateway.errors import Problem
from gateway.metrics import AUTH_FAILURES
from gateway.sealing import Sealer
from gateway.store import Store
from gateway.store.app_channel import AppChannelStore, AppProvider, ProviderKey
from gateway.validation import Field, parse_object

log = logging.getLogger(__name__)

KEY_PREFIX = "app_"
SCOPES = ("notices", "replies")
_TOUCH_INTERVAL = 60.0


def key_context(key_id: str) -> str:
    return f"app_key:{key_id}"


def push_context(provider_id: uuid.UUID) -> str:
    return f"app_push:{provider_id}"


def _name(value: str) -> str:
    value = value.strip()
    if not value or not all(ch.isalnum() or ch in "-_." for ch in value):
        raise Problem("invalid_value", "name: letters, digits, '-', '_' and '.' only")
    return value


def _push_url(value: str) -> str:
    value = callback_url(value)
    if not value:
        raise Problem("invalid_value", "push_url must not be empty")
    return value


def _scopes(value: list[str]) -> list[str]:
    bad = [s for s in value if s not in SCOPES]
    if bad or not value:
        raise Problem("invalid_value", f"scopes: a non-empty list of {', '.join(SCOPES)}")
    return sorted(set(value))


def _agencies(value: list[str]) -> list[uuid.UUID]:
    try:
        return sorted({uuid.UUID(v) for v in value})
    except ValueError:
        raise Problem("invalid_value", "agencies: agency ids") from None


PROVIDER_FIELDS: dict[str, Field] = {
    "name": Field(str, required=True, max_length=64, check=_name),
    "push_url": Field(str, required=True, max_length=2048, check=_push_url),
    "scopes": Field(list, item_kind=str, max_items=len(SCOPES), check=_scopes),
    "agencies": Field(list, item_kind=str, max_items=1000, check=_agencies),
}


def _status(value: str) -> str:
    if value not in ("active", "suspended"):
        raise Problem("invalid_value", "status: active or suspended")
    return value


PROVIDER_PATCH_FIELDS: dict[str, Field] = {
    "push_url": PROVIDER_FIELDS["push_url"],
    "scopes": PROVIDER_FIELDS["scopes"],
    "agencies": PROVIDER_FIELDS["agencies"],
    "status": Field(str, max_length=16, check=_status),
}
KEY_FIELDS: dict[str, Field] = {"name": Field(str, required=True, max_length=100)}


def provider_view(p: AppProvider) -> dict[str, object]:
    return {
        "id": str(p.id),
        "name": p.name,
        "push_url": p.push_url,
        "scopes": list(p.scopes),
        "agencies": [str(a) for a in p.agencies],
        "status": p.status,
        "created_at": p.created_at.isoformat(),
        "updated_at": p.updated_at.isoformat(),
    }


def provider_key_view(k: ProviderKey) -> dict[str, object]:
    return {
        "key_id": k.key_id,
        "provider_id": str(k.provider_id),
        "name": k.name,
        "created_at": k.created_at.isoformat(),
        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
    }


@dataclass(frozen=True, slots=True)
class ProviderPrincipal:
    provider: AppProvider
    key: ProviderKey

    def require(self, scope: str) -> None:
        if scope not in self.provider.scopes:
            raise Problem("scope_not_granted", f"this route needs the {scope!r} scope")


class ProviderService:
    """Operators' side: providers and their keys (every change audited)."""

    def __init__(self, store: Store, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer

    async def create(
        self, body: Any, *, actor: str, client_addr: str = ""
    ) -> tuple[AppProvider, str]:
        data = parse_object(body, PROVIDER_FIELDS)
        provider_id = uuid.uuid4()
        push_secret = shown_secret(32)
        async with self._store.transaction() as tx:
            provider = await AppChannelStore(tx.db).insert_provider(
                provider_id=provider_id,
                name=data["name"],
                push_url=data["push_url"],
                push_secret_sealed=self._sealer.seal(
                    push_secret.encode(), push_context(provider_id)
                ),
                scopes=data.get("scopes") or list(SCOPES),
                agencies=data.get("agencies") or [],
            )
            if provider is None:
                raise Problem("provider_name_taken", data["name"])
            await tx.audit.record(
                actor=actor,
                action="app_provider.create",
                target=str(provider_id),
                outcome="ok",
                client_addr=client_addr,
                detail={"name": provider.name},
            )
        return provider, push_secret

    async def update(
        self, provider_id: uuid.UUID, body: Any, *, actor: str, client_addr: str = ""
    ) -> AppProvider:
        data = parse_object(body, PROVIDER_PATCH_FIELDS, partial=True)
        async with self._store.transaction() as tx:
            provider = await AppChannelStore(tx.db).update_provider(
                provider_id,
                push_url=data.get("push_url"),
                scopes=data.get("scopes"),
                agencies=data.get("agencies"),
                status=data.get("status"),
            )
            if provider is None:
                raise Problem("not_found", "no such app provider")
            await tx.audit.record(
                actor=actor,
                action="app_provider.update",
                target=str(provider_id),
                outcome="ok",
                client_addr=client_addr,
                detail={"fields": sorted(data)},
            )
        return provider

    async def get(self, provider_id: uuid.UUID) -> AppProvider:
        provider = await AppChannelStore(self._store.db).get_provider(provider_id)
        if provider is None:
            raise Problem("not_found", "no such app provider")
        return provider

    async def create_key(
        self, provider_id: uuid.UUID, body: Any, *, actor: str, client_addr: str = ""
    ) -> tuple[ProviderKey, str]:
        data = parse_object(body, KEY_FIELDS)
        made = new_key_material(self._sealer, KEY_PREFIX, key_context)
        async with self._store.transaction() as tx:
            store = AppChannelStore(tx.db)
            if await store.get_provider(provider_id) is None:
                raise Problem("not_found", "no such app provider")
            key = await store.insert_key(
                key_id=made.key_id,
                provider_id=provider_id,
                name=data["name"],
                secret_hash=made.secret_hash,
                secret_sealed=made.secret_sealed,
            )
            await tx.audit.record(
                actor=actor,
                action="app_key.create",
                target=made.key_id,
                outcome="ok",
                client_addr=client_addr,
                detail={"provider_id": str(provider_id)},
            )
        return key, made.secret

    async def revoke_key(
        self, provider_id: uuid.UUID, key_id: str, *, actor: str, client_addr: str = ""
    ) -> ProviderKey:
        async with self._store.transaction() as tx:
            key = await AppChannelStore(tx.db).revoke_key(provider_id, key_id)
            if key is None:
                raise Problem("not_found", "no such key of this provider")
            await tx.audit.record(
                actor=actor,
                action="app_key.revoke",
                target=key_id,
                outcome="ok",
                client_addr=client_addr,
                detail={"provider_id": str(provider_id)},
            )
        return key

    async def keys(self, provider_id: uuid.UUID) -> list[ProviderKey]:
        await self.get(provider_id)
        return await AppChannelStore(self._store.db).list_keys(provider_id)

    def push_secret(self, provider_id: uuid.UUID, sealed: bytes) -> str:
        return self._sealer.open(sealed, push_context(provider_id)).decode()


class ProviderAuthenticator:
    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        *,
        iat_skew_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._skew = iat_skew_seconds
        self._clock = clock
        self._touched: dict[str, float] = {}

    async def provider(self, header: str | None, client_addr: str) -> ProviderPrincipal:
        key_id = ""
        try:
            token = bearer(header)
            if token.startswith(ADMIN_TOKEN_PREFIX):
                raise Problem("malformed_token", "app routes take an app provider's JWT")
            _, claims, signature = parse_hs256(token)
            iss = claims["iss"]
            key_id = iss
            if not iss.startswith(KEY_PREFIX):
                # An agency's key id (live_/test_): never valid here, whatever it signs.
                raise Problem("agency_key_on_app_route", "use the provider's app_ key")
            principal = await self._verify(token, claims, signature, key_id)
        except Problem as exc:
            await self.refused(exc, key_id=key_id, client_addr=client_addr)
            raise
        now = self._clock()
        if now - self._touched.get(key_id, 0.0) >= _TOUCH_INTERVAL:
            self._touched[key_id] = now
            await AppChannelStore(self._store.db).touch_key(
                key_id, datetime.fromtimestamp(now, UTC)
            )
        return principal

    async def _verify(
        self, token: str, claims: dict[str, Any], signature: bytes, key_id: str
    ) -> ProviderPrincipal:
        app = AppChannelStore(self._store.db)
        key = await app.get_key(key_id)
        if key is None:
            raise Problem("unknown_key", "no such key id")
        secret = self._sealer.open(key.secret_sealed, key_context(key_id))
        jti, expires = check_signed_claims(
            token, signature, secret, claims, self._clock(), self._skew
        )
        if key.revoked_at is not None:
            raise Problem("key_revoked")
        provider = await app.get_provider(key.provider_id)
        if provider is None or not provider.active:
            raise Problem("provider_suspended")
        # The agencies' replay table: app_ key ids cannot collide with live_/test_ ones.
        if not await self._store.credentials.remember_jti(key_id, jti, expires):
            raise Problem("token_replayed", "every request needs a fresh jti")
        return ProviderPrincipal(provider, key)

    async def refused(self, exc: Problem, *, key_id: str, client_addr: str) -> None:
        AUTH_FAILURES.labels(exc.code).inc()
        log.info("app provider refused: %s key=%s addr=%s", exc.code, key_id or "-", client_addr)
        try:
            await self._store.audit.record(
                actor=f"app_key:{key_id}" if key_id else "anonymous",
                action="app_auth.refused",
                target=key_id,
                outcome=exc.code,
                client_addr=client_addr,
            )
        except Exception:
            # The refusal stands even if the audit write fails; the failure is logged.
            log.exception("could not record an app provider's auth refusal")
