"""Authentication of agencies (HS256 JWT per API key) and of platform operators (admin tokens).

Agency tokens follow GOV.UK Notify's scheme so that every language already has a client: header
``Authorization: Bearer <JWT>``, HS256 signed with the key secret, ``iss`` = key id, ``iat``
within ±``auth.iat_skew_seconds`` of server time, and a ``jti`` that is accepted only once.
Every refusal raises a Problem with a stable code, bumps ``payam_auth_failures_total`` and writes
an audit record holding the key id, client address and reason, never the token or a secret.
"""

from __future__ import annotations

import binascii
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from jwt.algorithms import HMACAlgorithm

from gateway.cache import ShortCache
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
# The send pipeline re-checks keys and agencies in its committing transaction, so this cache
# only saves lookups; it cannot let a revoked key or suspended agency send.
_KEY_CACHE_SECONDS = 5.0
_HS256 = HMACAlgorithm(HMACAlgorithm.SHA256)


_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _b64url(segment: str) -> bytes:
    # RFC 7515 §2: base64url without padding. Same leniency as PyJWT's base64url_decode
    # (base64.urlsafe_b64decode, whose steps these are, without its Python-level wrappers:
    # non-ASCII is a ValueError, characters outside the alphabet are skipped).
    raw = (segment + "=" * (-len(segment) % 4)).encode("ascii")
    return binascii.a2b_base64(raw.translate(_URLSAFE))


# The header segment is the same for nearly every token (``{"alg":"HS256","typ":"JWT"}``):
# its parsed form is kept for a few distinct segments, so each request decodes only its claims.
_HEADERS: dict[str, Any] = {}


def split_jws(token: str) -> tuple[dict[str, Any], Any, bytes]:
    """The header, claims and signature of a compact JWS (RFC 7515 §7.1), unverified.

    Written out rather than through PyJWS.decode_complete: on the send path that call (json
    from the stdlib, generic checks for every algorithm) was ~8% of the gateway's CPU. PyJWT
    still prepares the key, and the tests sign with PyJWT, so the two cannot drift apart."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not three segments")
    header = _HEADERS.get(parts[0])
    if header is None:
        header = orjson.loads(_b64url(parts[0]))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
        if len(_HEADERS) < 16 and len(parts[0]) <= 256:
            _HEADERS[parts[0]] = header
    return header, orjson.loads(_b64url(parts[1])), _b64url(parts[2])


def check_signed_claims(
    token: str, signature: bytes, secret: bytes, claims: dict[str, Any], now: float, skew: int
) -> tuple[str, datetime]:
    """The checks every HS256 token of ours passes, agency's or app provider's: the MAC over
    "<header>.<payload>" as sent (RFC 7515 §5.2), ``exp`` if given (RFC 7519 §4.1.4), ``iat``
    within ``skew`` seconds and a ``jti``. Returns the jti and until when to remember it (after
    that the token could no longer pass the iat window anyway)."""
    expected = hmac.digest(secret, token.rsplit(".", 1)[0].encode(), "sha256")
    if not hmac.compare_digest(expected, signature):
        raise Problem("bad_signature", "signature does not match the key secret")
    exp = claims.get("exp")
    if exp is not None and (
        isinstance(exp, bool) or not isinstance(exp, int | float) or exp <= now
    ):
        raise Problem("token_expired", "exp has passed")
    iat, jti = claims.get("iat"), claims.get("jti")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise Problem("missing_claim", "iat must be a number (seconds since epoch)")
    if not isinstance(jti, str) or not jti or len(jti) > _MAX_CLAIM_CHARS:
        raise Problem("missing_claim", "jti must be a unique string")
    if iat < now - skew:
        raise Problem("token_expired", f"iat is more than {skew} s old")
    if iat > now + skew:
        raise Problem("token_from_future", f"iat is more than {skew} s ahead")
    return jti, datetime.fromtimestamp(float(iat) + skew + 1, UTC)


def parse_hs256(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Header, claims and signature of one of our tokens, not yet verified: HS256 only (no
    algorithm choice for the sender, RFC 8725 §2.1), a JSON object payload and an ``iss``
    (the key id) of sane length, or a Problem naming what is wrong."""
    try:
        header, claims, signature = split_jws(token)
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise Problem("malformed_token", "not a JWT") from None
    if header.get("alg") != "HS256":
        raise Problem("unsupported_algorithm", "sign with HS256")
    if not isinstance(claims, dict):
        raise Problem("malformed_token", "the payload is not a JSON object")
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss or len(iss) > _MAX_CLAIM_CHARS:
        raise Problem("missing_claim", "iss must be your key id")
    return header, claims, signature


@dataclass(frozen=True, slots=True)
class AgencyPrincipal:
    agency: Agency
    key: ApiKey

    @property
    def is_test(self) -> bool:
        return self.key.key_type == "test"


@dataclass(frozen=True, slots=True)
class TokenUse:
    """A verified token whose one-time ``jti`` is still to be recorded (by the caller's
    transaction, e.g. the send pipeline's batch)."""

    principal: AgencyPrincipal
    jti: str
    expires: datetime
    client_addr: str


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
        # Unknown key ids are not cached: a key created a moment later is found at once.
        self._keys: ShortCache[str, tuple[ApiKey, Agency | None, bytes] | None] = ShortCache(
            _KEY_CACHE_SECONDS,
            clock=clock,
            keep=lambda entry: entry is not None,
            # The send pipeline's transaction checks revocation and suspension again.
            stale_for=1.0,
        )

    async def agency(self, header: str | None, client_addr: str) -> AgencyPrincipal:
        use = await self.agency_deferred(header, client_addr, cached=False)
        try:
            if not await self._store.credentials.remember_jti(
                use.principal.key.key_id, use.jti, use.expires
            ):
                raise Problem("token_replayed", "every request needs a fresh jti")
        except Problem as exc:
            await self.refused(exc, key_id=use.principal.key.key_id, client_addr=client_addr)
            raise
        return use.principal

    async def agency_deferred(
        self, header: str | None, client_addr: str, *, cached: bool = True
    ) -> TokenUse:
        """Every check but the jti replay, which the caller records in its own transaction.

        With ``cached``, key and agency rows come from a cache (_KEY_CACHE_SECONDS, then up to
        a second more while one refresh runs): the send pipeline re-checks revocation and
        suspension in the transaction that commits the message, so the cache can never let a
        revoked key's message through. Other agency settings (quota, link domains) apply
        within those six seconds."""
        key_id = ""
        try:
            token = bearer(header)
            if token.startswith(ADMIN_TOKEN_PREFIX):
                raise Problem("admin_token_on_agency_route", "use an agency API key")
            _, claims, signature = parse_hs256(token)
            key_id = claims["iss"]
            use = await self._verify_agency(token, claims, signature, client_addr, cached)
        except Problem as exc:
            await self.refused(exc, key_id=key_id, client_addr=client_addr)
            raise
        await self._touch(f"k:{key_id}", key_id, None)
        return use

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
            await self.refused(exc, key_id="", client_addr=client_addr)
            raise
        await self._touch(f"a:{admin.id}", None, admin)
        return principal

    async def _key(self, key_id: str, cached: bool) -> tuple[ApiKey, Agency | None, bytes] | None:
        if cached:
            return await self._keys.get(key_id, lambda: self._load_key(key_id))
        entry = await self._load_key(key_id)
        self._keys.put(key_id, entry)
        return entry

    async def _load_key(self, key_id: str) -> tuple[ApiKey, Agency | None, bytes] | None:
        key = await self._store.credentials.get_key(key_id)
        if key is None:
            return None
        agency = await self._store.agencies.get(key.agency_id)
        return (key, agency, _HS256.prepare_key(self._credentials.key_secret(key)))

    async def _verify_agency(
        self,
        token: str,
        claims: dict[str, Any],
        signature: bytes,
        client_addr: str,
        cached: bool,
    ) -> TokenUse:
        key_id = claims["iss"]
        found = await self._key(key_id, cached)
        if found is None:
            raise Problem("unknown_key", "no such key id")
        key, agency, secret = found
        jti, expires = check_signed_claims(
            token, signature, secret, claims, self._clock(), self._skew
        )
        if key.revoked_at is not None:
            raise Problem("key_revoked")
        if agency is None or not agency.active:
            raise Problem("agency_suspended")
        return TokenUse(AgencyPrincipal(agency, key), jti, expires, client_addr)

    async def refused(self, exc: Problem, *, key_id: str, client_addr: str) -> None:
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
