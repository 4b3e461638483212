"""Authentication of agencies (HS256 JWT per API key) and of platform operators (admin tokens).

Agency tokens follow GOV.UK Notify's scheme so that every language already has a client: header
``Authorization: Bearer <JWT>``, HS256 signed with the key secret, ``iss`` = key id, ``iat``
within ±``auth.iat_skew_seconds`` of server time, and a ``jti`` that is accepted only once.
Every refusal raises a Problem with a stable code, bumps ``payam_auth_failures_total`` and writes
an audit record holding the key id, client address and reason, never the token or a secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from gateway.credentials import ADMIN_TOKEN_PREFIX, CredentialService, fingerprint
from gateway.errors import Problem
from gateway.metrics import AUTH_FAILURES
from gateway.store import Store
from gateway.store.models import AdminToken, Agency, ApiKey

log = logging.getLogger(__name__)

# last_used_at is a convenience for operators: write it at most once a minute per credential
# rather than on every request.
_TOUCH_INTERVAL = 60.0
_MAX_TOKEN_CHARS = 4096
_MAX_CLAIM_CHARS = 128


@dataclass(frozen=True, slots=True)
class AgencyPrincipal:
    agency: Agency
    key: ApiKey

    @property
    def is_test(self) -> bool:
        return self.key.key_type == "test"


@dataclass(frozen=True, slots=True)
class AdminPrincipal:
    token: AdminToken

    @property
    def actor(self) -> str:
        return f"admin:{self.token.name}"

    @property
    def can_write(self) -> bool:
        return self.token.role == "admin"


def bearer(header: str | None) -> str:
    if not header:
        raise Problem("missing_token", "send Authorization: Bearer <token>")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Problem("missing_token", "send Authorization: Bearer <token>")
    if len(token) > _MAX_TOKEN_CHARS:
        raise Problem("malformed_token", "token too long")
    return token


class Authenticator:
    def __init__(
        self,
        store: Store,
        credentials: CredentialService,
        *,
        iat_skew_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._credentials = credentials
        self._skew = iat_skew_seconds
        self._clock = clock
        self._touched: dict[str, float] = {}

    async def agency(self, header: str | None, client_addr: str) -> AgencyPrincipal:
        key_id = ""
        try:
            token = bearer(header)
            if token.startswith(ADMIN_TOKEN_PREFIX):
                raise Problem("admin_token_on_agency_route", "use an agency API key")
            key_id = self._unverified_issuer(token)
            principal = await self._verify_agency(token, key_id)
        except Problem as exc:
            await self._refused(exc, key_id=key_id, client_addr=client_addr)
            raise
        await self._touch(f"k:{key_id}", key_id, None)
        return principal

    async def admin(self, header: str | None, client_addr: str, *, write: bool) -> AdminPrincipal:
        try:
            token = bearer(header)
            if not token.startswith(ADMIN_TOKEN_PREFIX):
                if token.count(".") == 2:
                    raise Problem("agency_key_on_admin_route", "admin routes take admin tokens")
                raise Problem("unknown_admin_token")
            admin = await self._store.credentials.admin_token_by_hash(fingerprint(token))
            if admin is None:
                raise Problem("unknown_admin_token")
            if admin.revoked_at is not None:
                raise Problem("admin_token_revoked")
            principal = AdminPrincipal(admin)
            if write and not principal.can_write:
                raise Problem("insufficient_role", "viewer tokens are read-only")
        except Problem as exc:
            await self._refused(exc, key_id="", client_addr=client_addr)
            raise
        await self._touch(f"a:{admin.id}", None, admin)
        return principal

    def _unverified_issuer(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Problem("malformed_token", "not a JWT") from None
        if header.get("alg") != "HS256":
            raise Problem("unsupported_algorithm", "sign with HS256")
        iss = claims.get("iss")
        if not isinstance(iss, str) or not iss or len(iss) > _MAX_CLAIM_CHARS:
            raise Problem("missing_claim", "iss must be your key id")
        return iss

    async def _verify_agency(self, token: str, key_id: str) -> AgencyPrincipal:
        key = await self._store.credentials.get_key(key_id)
        if key is None:
            raise Problem("unknown_key", "no such key id")
        try:
            claims = jwt.decode(
                token,
                self._credentials.key_secret(key),
                algorithms=["HS256"],
                # iat is checked below against our own window, in both directions.
                options={"verify_iat": False, "verify_exp": True, "verify_aud": False},
            )
        except jwt.InvalidSignatureError:
            raise Problem("bad_signature", "signature does not match the key secret") from None
        except jwt.ExpiredSignatureError:
            raise Problem("token_expired", "exp has passed") from None
        except jwt.PyJWTError:
            raise Problem("malformed_token", "not a valid JWT") from None
        iat, jti = claims.get("iat"), claims.get("jti")
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            raise Problem("missing_claim", "iat must be a number (seconds since epoch)")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_CLAIM_CHARS:
            raise Problem("missing_claim", "jti must be a unique string")
        now = self._clock()
        if iat < now - self._skew:
            raise Problem("token_expired", f"iat is more than {self._skew} s old")
        if iat > now + self._skew:
            raise Problem("token_from_future", f"iat is more than {self._skew} s ahead")
        if key.revoked_at is not None:
            raise Problem("key_revoked")
        agency = await self._store.agencies.get(key.agency_id)
        if agency is None or not agency.active:
            raise Problem("agency_suspended")
        # Remember the jti until the token could no longer pass the iat window anyway.
        expires = datetime.fromtimestamp(float(iat) + self._skew + 1, UTC)
        if not await self._store.credentials.remember_jti(key_id, jti, expires):
            raise Problem("token_replayed", "every request needs a fresh jti")
        return AgencyPrincipal(agency, key)

    async def _refused(self, exc: Problem, *, key_id: str, client_addr: str) -> None:
        AUTH_FAILURES.labels(exc.code).inc()
        log.info("authentication refused: %s key=%s addr=%s", exc.code, key_id or "-", client_addr)
        try:
            await self._store.audit.record(
                actor=f"key:{key_id}" if key_id else "anonymous",
                action="auth.refused",
                target=key_id,
                outcome=exc.code,
                client_addr=client_addr,
            )
        except Exception:
            # The refusal stands even if the audit write fails; the failure is logged.
            log.exception("could not record auth refusal")

    async def _touch(self, cache_key: str, key_id: str | None, admin: AdminToken | None) -> None:
        now = self._clock()
        if now - self._touched.get(cache_key, 0.0) < _TOUCH_INTERVAL:
            return
        self._touched[cache_key] = now
        at = datetime.fromtimestamp(now, UTC)
        if key_id is not None:
            await self._store.credentials.touch_key(key_id, at)
        elif admin is not None:
            await self._store.credentials.touch_admin_token(admin.id, at)

    async def purge_seen_tokens(self) -> int:
        return await self._store.credentials.purge_jtis(datetime.fromtimestamp(self._clock(), UTC))
