"""Issuing and revoking credentials: agency API keys (HS256 JWT secrets) and admin tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.errors import Problem
from gateway.sealing import Sealer
from gateway.store import Store
from gateway.store.models import AdminToken, ApiKey

KEY_TYPES = ("live", "test")
ADMIN_ROLES = ("admin", "viewer")
# Admin tokens are opaque (not JWTs): the prefix lets the gateway tell them apart at a glance.
ADMIN_TOKEN_PREFIX = "pa_"


def key_context(key_id: str) -> str:
    return f"api_key:{key_id}"


def fingerprint(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """A new key id and its secret: the secret is shown once to whoever asked for it and
    stored only as its fingerprint (to find the key) and sealed (to check signatures)."""

    key_id: str
    # repr=False: a KeyMaterial in a log line or a traceback must not show the secret.
    secret: str = field(repr=False)
    secret_hash: bytes = field(repr=False)
    secret_sealed: bytes = field(repr=False)


def shown_secret(nbytes: int) -> str:
    """``secrets.token_urlsafe(nbytes)`` that never begins with '-': integrators paste secrets
    after command-line flags (``swaks --auth-password``, ``curl -u``), where a leading '-'
    reads as another option (1 draw in 64; seen in CI). The cost: log2(64/63) bits."""
    while True:
        value = secrets.token_urlsafe(nbytes)
        if value[0] != "-":
            return value


def new_key_material(
    sealer: Sealer, key_id_prefix: str, context: Callable[[str], str]
) -> KeyMaterial:
    """64 random bits of key id after the prefix, 256 of secret (RFC 7518 §3.2: an HS256 key
    of at least the hash's size); sealed under ``context(key_id)``, so a sealed secret copied
    to another key's row does not open."""
    key_id = f"{key_id_prefix}{secrets.token_hex(8)}"
    secret = shown_secret(32)
    return KeyMaterial(
        key_id, secret, fingerprint(secret), sealer.seal(secret.encode(), context(key_id))
    )


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class IssuedAdminToken:
    token: AdminToken
    value: str = field(repr=False)


class CredentialService:
    def __init__(self, store: Store, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer

    async def create_key(
        self, agency_id: uuid.UUID, *, name: str, key_type: str, actor: str, client_addr: str = ""
    ) -> IssuedKey:
        if key_type not in KEY_TYPES:
            raise Problem("invalid_value", "key_type must be live or test")
        made = new_key_material(self._sealer, f"{key_type}_", key_context)
        async with self._store.transaction() as tx:
            agency = await tx.agencies.get(agency_id)
            if agency is None:
                raise Problem("not_found", f"agency {agency_id}")
            key = await tx.credentials.insert_key(
                key_id=made.key_id,
                agency_id=agency_id,
                name=name,
                key_type=key_type,
                secret_hash=made.secret_hash,
                secret_sealed=made.secret_sealed,
            )
            await tx.audit.record(
                actor=actor,
                action="api_key.create",
                target=made.key_id,
                outcome="ok",
                client_addr=client_addr,
                detail={"agency_id": str(agency_id), "key_type": key_type},
            )
        return IssuedKey(key, made.secret)

    async def revoke_key(
        self, agency_id: uuid.UUID, key_id: str, *, actor: str, client_addr: str = ""
    ) -> ApiKey:
        async with self._store.transaction() as tx:
            key = await tx.credentials.revoke_key(agency_id, key_id)
            if key is None:
                raise Problem("not_found", f"key {key_id} of agency {agency_id}")
            await tx.audit.record(
                actor=actor,
                action="api_key.revoke",
                target=key_id,
                outcome="ok",
                client_addr=client_addr,
                detail={"agency_id": str(agency_id)},
            )
        return key

    def key_secret(self, key: ApiKey) -> str:
        return self._sealer.open(key.secret_sealed, key_context(key.key_id)).decode()

    async def create_admin_token(self, *, name: str, role: str, actor: str) -> IssuedAdminToken:
        if role not in ADMIN_ROLES:
            raise Problem("invalid_value", "role must be admin or viewer")
        value = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self._store.transaction() as tx:
            token = await tx.credentials.insert_admin_token(
                token_id=uuid.uuid4(), name=name, role=role, token_hash=fingerprint(value)
            )
            await tx.audit.record(
                actor=actor,
                action="admin_token.create",
                target=str(token.id),
                outcome="ok",
                detail={"name": name, "role": role},
            )
        return IssuedAdminToken(token, value)

    async def revoke_admin_token(self, token_id: uuid.UUID, *, actor: str) -> AdminToken:
        async with self._store.transaction() as tx:
            token = await tx.credentials.revoke_admin_token(token_id)
            if token is None:
                raise Problem("not_found", f"admin token {token_id}")
            await tx.audit.record(
                actor=actor, action="admin_token.revoke", target=str(token_id), outcome="ok"
            )
        return token
