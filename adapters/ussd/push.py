"""Network-initiated USSD push: an agency's urgent notice shown on the phone at once.

``POST /v1/ussd/pushes`` stores a push (``mode`` notify = USSN, ussd_service_op 3; request =
USSR, op 2, when an answer is wanted); a push worker on a node with SMPP binds claims it and
sends it (adapters/ussd/push_worker.py). When the phone is busy in another USSD dialog, the push
fails or no confirmation comes within ``ussd.push_timeout_seconds``, the fallback text goes as a
normal SMS through the agency's send path (its own bound 4040 sender, Art 3), exactly once.

This module holds what the API needs: validating a request, the fallback SMS body, the view.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from adapters.ussd.menus import Limits, fits
from gateway.auth import AgencyPrincipal
from gateway.errors import Problem
from gateway.persian import normalize_letters
from gateway.recipients import normalize_msisdn
from gateway.sending import MAX_TEXT, SendingService, request_hash
from gateway.status import PRIORITIES
from gateway.store import Store
from gateway.store.ussd_push import NewPush, Push
from gateway.validation import Field, parse_object

MODES = ("notify", "request")
# Agencies' Idempotency-Keys for pushes live beside their message keys, under this prefix.
_REQUEST_KEY = "ussd-push-request:"


def _mode(value: str) -> str:
    if value not in MODES:
        raise Problem("invalid_value", f"mode: one of {', '.join(MODES)}")
    return value


def _priority(value: str) -> str:
    if value not in PRIORITIES:
        raise Problem("invalid_value", f"fallback_priority: one of {', '.join(PRIORITIES)}")
    return value


PUSH_FIELDS: dict[str, Field] = {
    "to": Field(str, required=True, max_length=32),
    "text": Field(str, required=True, max_length=182),
    "mode": Field(str, max_length=8, check=_mode),
    "fallback_sms": Field(bool),
    "fallback_text": Field(str, max_length=MAX_TEXT),
    "fallback_priority": Field(str, max_length=8, check=_priority),
    "mandatory": Field(bool),
    "client_ref": Field(str, max_length=100),
}


def fallback_key(push_id: uuid.UUID) -> str:
    """The Idempotency-Key of the fallback SMS: a second attempt replays the first."""
    return f"ussd-push:{push_id}"


def fallback_body(push: Push) -> dict[str, Any]:
    """The POST /v1/messages body of the fallback SMS; deterministic, so that its idempotency
    hash is the same whichever node sends it."""
    body: dict[str, Any] = {
        "to": push.msisdn,
        "text": push.fallback_text,
        "priority": push.fallback_priority,
        "client_ref": fallback_key(push.id),
    }
    if push.fallback_mandatory:
        body["mandatory"] = True
    return body


class PushService:
    def __init__(self, store: Store, sending: SendingService, limits: Limits) -> None:
        self._store = store
        self._sending = sending
        self._limits = limits

    async def create(
        self, principal: AgencyPrincipal, raw: bytes, body: Any, idempotency_key: str | None
    ) -> tuple[int, bytes]:
        """Validate and store a push; (status, JSON response). With an Idempotency-Key, the same
        key and body answer as the first time (no second push), another body is refused."""
        agency_id = principal.agency.id
        key = None
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 200:
                raise Problem("invalid_idempotency_key", "1..200 characters")
            key = _REQUEST_KEY + idempotency_key
            stored = await self._replay(agency_id, key, raw)
            if stored is not None:
                return stored
        push = await self.prepare(principal, body)
        async with self._store.transaction() as tx:
            claimed = key is None or await tx.messages.idempotent_claim(
                agency_id, key, request_hash(raw)
            )
            if claimed:
                created = await tx.ussd_pushes.insert(push)
                response = orjson.dumps(push_view(created))
                if key is not None:
                    await tx.messages.idempotent_store(agency_id, key, 202, response)
                return 202, response
        # A concurrent request with the same key committed first: answer as it did.
        assert key is not None
        raced = await self._replay(agency_id, key, raw)
        assert raced is not None
        return raced

    async def _replay(self, agency_id: uuid.UUID, key: str, raw: bytes) -> tuple[int, bytes] | None:
        stored = await self._store.messages.idempotent_get(agency_id, key)
        if stored is None:
            return None
        digest, status, response = stored
        if digest != request_hash(raw):
            raise Problem(
                "idempotency_key_reused", "this Idempotency-Key was used with another body"
            )
        return status, response

    async def prepare(self, principal: AgencyPrincipal, body: Any) -> NewPush:
        """Every check of a push request; nothing is written."""
        data = parse_object(body, PUSH_FIELDS)
        agency = principal.agency
        msisdn = normalize_msisdn(data["to"])
        if msisdn is None:
            raise Problem("invalid_recipient", "not an Iranian mobile number")
        text = normalize_letters(data["text"]).strip()
        if not text:
            raise Problem("invalid_value", "text: must not be empty")
        if not fits(text, self._limits):
            # A push is one screen: it cannot be paged (the phone has nothing to page with).
            raise Problem(
                "message_too_long",
                f"text: one USSD screen holds {self._limits.ucs2} Persian (UCS2) or "
                f"{self._limits.gsm7} GSM characters",
            )
        mandatory = bool(data.get("mandatory", False))
        if mandatory and not agency.mandatory_allowed:
            raise Problem("mandatory_not_allowed", "this agency may not send mandatory messages")
        held = await self._store.numbering.for_agency(agency.id, include_released=False)
        codes = sorted(a.value for a in held if a.kind == "ussd_code")
        if not codes:
            raise Problem("no_ussd_code", "allocate the agency a *4 code first")
        fallback_text = ""
        if data.get("fallback_sms", True):
            # Checked now, so the agency hears of a missing sender at once, not after a busy.
            self._sending.bind_sender(None, await self._sending.senders(agency.id))
            # Stored as given: the send path adds the opt-out hint itself.
            fallback_text = normalize_letters(data.get("fallback_text") or text).strip() or text
        return NewPush(
            id=uuid.uuid4(),
            agency_id=agency.id,
            key_id=principal.key.key_id,
            is_test=principal.is_test,
            msisdn=msisdn,
            mode=data.get("mode", "notify"),
            text=text,
            service_code=codes[0],
            client_ref=data.get("client_ref", ""),
            fallback_text=fallback_text,
            fallback_priority=data.get("fallback_priority", "high"),
            fallback_mandatory=mandatory,
        )


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def push_view(p: Push) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "status": p.status,
        "mode": p.mode,
        "to": p.msisdn,
        "text": p.text,
        "service_code": p.service_code,
        "operator": p.operator or None,
        "error_code": p.error_code or None,
        "answer": p.answer,
        "test": p.is_test,
        "client_ref": p.client_ref,
        "fallback": {
            "status": p.fallback,
            "message_id": str(p.fallback_message_id) if p.fallback_message_id else None,
            "error_code": p.fallback_error or None,
        },
        "created_at": _iso(p.created_at),
        "sent_at": _iso(p.sent_at),
        "final_at": _iso(p.final_at),
    }
