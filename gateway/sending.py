"""Accepting messages (POST /v1/messages): sender binding, policy, durable commit.

Order of checks (each refusal has its own code, and nothing is written when one fails):
recipient → sender bound from the registry (Art 3) → text, links (gateway/link_policy.py) and
parts → mandatory permission →
times (send_at, valid_until, quiet hours) → opt-out → duplicate → daily quota → commit.
A 202 is returned only after the transaction that holds the message has committed.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol

import orjson

from adapters.sms.encoding import TooManyParts, plan
from gateway.agencies import callback_url
from gateway.auth import AgencyPrincipal, TokenUse
from gateway.cache import ShortCache
from gateway.config import SmsConfig
from gateway.errors import Problem
from gateway.link_policy import LinkPolicy
from gateway.metrics import LINK_REFUSALS, SMS_ACCEPTED
from gateway.persian import TEHRAN, normalize_letters
from gateway.recipients import CitizenDirectory, normalize_msisdn
from gateway.send_pipeline import Pending, SendPipeline, accepted_view
from gateway.status import PRIORITIES, PRIORITY_NAMES, QUEUED, SCHEDULED
from gateway.store import Store
from gateway.store.models import Allocation, NewMessage
from gateway.store.verification import CodeRecord
from gateway.validation import Field, parse_object
from gateway.verification import VerificationService

log = logging.getLogger(__name__)

MAX_PARTS = 15
MAX_TEXT = 1_000
SENDER_KINDS = ("shortcode", "sub_number", "mask")


def _datetime(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Problem("invalid_value", "expected an ISO 8601 time with offset") from None
    if parsed.tzinfo is None:
        raise Problem("invalid_value", "the time needs an offset (Z or +03:30)")
    return parsed.astimezone(UTC)


def _priority(value: str) -> str:
    if value not in PRIORITIES:
        raise Problem("invalid_value", f"one of {', '.join(PRIORITIES)}")
    return value


MESSAGE_FIELDS: dict[str, Field] = {
    "to": Field(str, max_length=32),
    "national_code": Field(str, max_length=16),
    "text": Field(str, required=True, max_length=MAX_TEXT),
    "priority": Field(str, max_length=8, check=_priority),
    "mandatory": Field(bool),
    "send_at": Field(str, max_length=40, check=_datetime),
    "valid_until": Field(str, max_length=40, check=_datetime),
    "client_ref": Field(str, max_length=100),
    "callback_url": Field(str, max_length=2048, check=callback_url),
    "sender": Field(str, max_length=16),
    # Append a verification code (agencies whose policy is per_message; docs/TRUST.md).
    "verify": Field(bool),
}


def _hhmm(value: str) -> time:
    hh, mm = value.split(":")
    return time(int(hh), int(mm))


def in_quiet_hours(cfg: SmsConfig, at: datetime) -> datetime | None:
    """When ``at`` (UTC) falls in the quiet hours (Tehran wall time), the UTC time they end."""
    start, end = _hhmm(cfg.quiet_hours_start), _hhmm(cfg.quiet_hours_end)
    if start == end:
        return None
    local = at.astimezone(TEHRAN)
    now = local.time()
    inside = start <= now < end if start < end else (now >= start or now < end)
    if not inside:
        return None
    ends = datetime.combine(local.date(), end, TEHRAN)
    if ends <= local:
        ends += timedelta(days=1)
    return ends.astimezone(UTC)


def tehran_day(at: datetime) -> Any:
    return at.astimezone(TEHRAN).date()


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request checked against everything that does not need the database."""

    recipient_raw: str
    by_national_code: bool
    text: str
    priority: str
    mandatory: bool
    send_at: datetime | None
    valid_until: datetime
    client_ref: str
    callback_url: str
    sender: str | None
    verify: bool | None = None
    # Set by build when the message carries a verification code (stored in the same commit).
    verification: CodeRecord | None = None


def request_hash(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


# Called in the accepting transaction right after the message row is written (the app channel,
# gateway/app_channel/service.py, routes the message there).
AfterInsert = Callable[[Store, NewMessage], Awaitable[None]]


class AppRouting(Protocol):
    """The app channel's entry (gateway/app_channel/service.py): bodies with channel(s)."""

    def wants(self, body: Any) -> bool: ...

    async def accept_token(self, use: TokenUse, body: Any) -> bytes: ...

    async def accept(
        self, principal: AgencyPrincipal, raw_body: bytes, body: Any, key: str | None
    ) -> tuple[int, bytes]: ...


class SendingService:
    def __init__(self, store: Store, cfg: SmsConfig, directory: CitizenDirectory) -> None:
        self._store = store
        self._cfg = cfg
        self._directory = directory
        # The committing transaction checks the sender's allocation again.
        self._senders: ShortCache[uuid.UUID, list[Allocation]] = ShortCache(1.0, stale_for=1.0)
        self.pipeline: SendPipeline | None = None
        # Set from the [links] configuration in gateway/services.py.
        self.links = LinkPolicy()
        # Verification codes (gateway/verification.py); None: never appended.
        self.verification: VerificationService | None = None
        # The app channel (gateway/app_channel); None: "channel"/"channels" are unknown fields.
        self.app: AppRouting | None = None

    def prepare(self, data: dict[str, Any], principal: AgencyPrincipal, now: datetime) -> Prepared:
        if ("to" in data) == ("national_code" in data):
            raise Problem("invalid_value", "give exactly one of 'to' or 'national_code'")
        mandatory = bool(data.get("mandatory", False))
        text = self.final_text(data["text"], mandatory)
        self.links.check(text, principal.agency.link_domains)
        if mandatory and not principal.agency.mandatory_allowed:
            raise Problem("mandatory_not_allowed", "this agency may not send mandatory messages")
        send_at: datetime | None = data.get("send_at")
        if send_at is not None and send_at <= now:
            send_at = None  # "now" or slightly in the past: send immediately
        start = send_at or now
        max_valid = start + timedelta(hours=self._cfg.max_validity_hours)
        valid_until = data.get("valid_until") or start + timedelta(
            hours=self._cfg.default_validity_hours
        )
        if valid_until <= start:
            raise Problem("invalid_value", "valid_until: must be after send_at (or now)")
        if valid_until > max_valid:
            raise Problem(
                "invalid_value", f"valid_until: at most {self._cfg.max_validity_hours} h ahead"
            )
        priority = data.get("priority", "normal")
        if priority == "bulk":
            ends = in_quiet_hours(self._cfg, start)
            if ends is not None:
                raise Problem(
                    "quiet_hours",
                    f"bulk messages are not sent in quiet hours "
                    f"({self._cfg.quiet_hours_start}-{self._cfg.quiet_hours_end} Tehran); "
                    f"schedule with send_at after {ends.isoformat()}",
                    quiet_hours_end=ends.isoformat(),
                )
        recipient_raw = data.get("to") or data.get("national_code")
        if not recipient_raw:  # "to": "" passed the presence check and was a 500 (a KeyError)
            raise Problem("invalid_value", "to: must not be empty")
        return Prepared(
            recipient_raw=recipient_raw,
            by_national_code="national_code" in data,
            text=text,
            priority=priority,
            mandatory=mandatory,
            send_at=send_at,
            valid_until=valid_until,
            client_ref=data.get("client_ref", ""),
            callback_url=data.get("callback_url", ""),
            sender=data.get("sender"),
            verify=data.get("verify"),
        )

    def final_text(self, text: str, mandatory: bool) -> str:
        """Persian letters normalised; non-mandatory messages end with the opt-out hint."""
        text = normalize_letters(text).strip()
        if not text:
            raise Problem("invalid_value", "text: must not be empty")
        if not mandatory and self._cfg.opt_out_hint:
            text = f"{text}\n{self._cfg.opt_out_hint}"
        return text

    async def senders(self, agency_id: uuid.UUID) -> list[Allocation]:
        held = await self._store.numbering.for_agency(agency_id, include_released=False)
        return sorted((a for a in held if a.kind in SENDER_KINDS), key=lambda a: a.id)

    @staticmethod
    def bind_sender(requested: str | None, held: list[Allocation]) -> str:
        """The sender comes from the registry, never from the request (Art 3): a requested
        sender must be one of the agency's own numbers or masks."""
        if not held:
            raise Problem("no_sender", "the agency holds no 4040 number or mask yet")
        if requested is None:
            shortcodes = [a for a in held if a.kind == "shortcode"]
            return (shortcodes or held)[0].value
        for a in held:
            if a.value == requested or (a.kind == "mask" and a.value.lower() == requested.lower()):
                return a.value
        raise Problem("sender_not_registered", f"{requested!r} is not one of this agency's senders")

    async def build(
        self, principal: AgencyPrincipal, body: Any, now: datetime
    ) -> tuple[NewMessage, Prepared]:
        """Everything about one request that needs no write: fields, recipient, sender, parts."""
        agency = principal.agency
        try:
            p = self.prepare(parse_object(body, MESSAGE_FIELDS), principal, now)
        except Problem as exc:
            await self.link_refused(principal, exc)
            raise
        if p.by_national_code:
            found = await self._directory.numbers_for([p.recipient_raw])
            msisdn = next(iter(found.values()), None)
            if msisdn is None:
                raise Problem("unknown_national_code", "no mobile number is known for that code")
        else:
            msisdn = normalize_msisdn(p.recipient_raw)
            if msisdn is None:
                raise Problem("invalid_recipient", "not an Iranian mobile number")
        sender = self.bind_sender(p.sender, await self.cached_senders(agency.id))
        p = await self.with_verification(p, agency.id, sender, msisdn, now)
        try:
            encoding, parts = plan(p.text)
        except TooManyParts:
            raise Problem("message_too_long", f"at most {MAX_PARTS} SMS parts") from None
        if parts > MAX_PARTS:
            raise Problem("message_too_long", f"{parts} parts; at most {MAX_PARTS}")
        message = NewMessage(
            id=uuid.uuid4(),
            agency_id=agency.id,
            batch_id=None,
            key_id=principal.key.key_id,
            is_test=principal.is_test,
            recipient=msisdn,
            sender=sender,
            body=p.text,
            encoding=encoding,
            parts=parts,
            priority=PRIORITIES[p.priority],
            mandatory=p.mandatory,
            status=SCHEDULED if p.send_at else QUEUED,
            send_at=p.send_at,
            valid_until=p.valid_until,
            client_ref=p.client_ref,
            callback_url=p.callback_url,
            vt=p.send_at or now,
        )
        return message, p

    async def link_refused(self, principal: AgencyPrincipal, exc: Problem, count: int = 1) -> None:
        """A link-policy refusal is a security event (a phishing attempt, or a stolen key): it
        goes to the audit log with the host and code, never the text or the recipient."""
        if not exc.code.startswith("link_"):
            return
        LINK_REFUSALS.labels(exc.code).inc(count)
        try:
            await self._store.audit.record(
                actor=f"key:{principal.key.key_id}",
                action="sms.link_refused",
                target=str(principal.agency.id),
                outcome=exc.code,
                detail={"host": str(exc.extra.get("host", "")), "count": count},
            )
        except Exception:
            # The refusal stands even if the audit write fails; the failure is logged.
            log.exception("could not record a link refusal")

    async def with_verification(
        self, p: Prepared, agency_id: uuid.UUID, sender: str, msisdn: str, now: datetime
    ) -> Prepared:
        """The code appended before the parts are counted, and its record for the commit."""
        v = self.verification
        if v is None:
            if p.verify:
                raise Problem("verification_off", "verification codes are not enabled here")
            return p
        if not await v.wanted(agency_id, p.verify):
            if p.verify and await v.policy(agency_id) == "never":
                raise Problem("verification_off", "this agency's policy is never")
            return p
        window = self._cfg.duplicate_window_seconds
        dedupe = None
        if window:
            bucket = int(now.timestamp()) // window
            dedupe = f"{agency_id}\x00{msisdn}\x00{bucket}\x00{p.text}".encode()
        code = v.new_code(dedupe)
        sent_at = p.send_at or now
        return replace(
            p,
            text=p.text + v.suffix(code),
            verification=v.record(code, agency_id, sender, msisdn, sent_at),
        )

    async def cached_senders(self, agency_id: uuid.UUID) -> list[Allocation]:
        """The agency's senders, cached for a second (gateway/cache.py): the committing
        transaction checks again that the chosen sender is still allocated, so the cache cannot
        let a released one out."""
        return await self._senders.get(agency_id, lambda: self.senders(agency_id))

    async def accept_fast(self, use: TokenUse, body: Any) -> bytes:
        """No Idempotency-Key: through the group-commit pipeline (gateway/send_pipeline.py)."""
        assert self.pipeline is not None
        if self.app is not None and self.app.wants(body):
            return await self.app.accept_token(use, body)
        now = datetime.now(UTC)
        message, p = await self.build(use.principal, body, now)
        window = self._cfg.duplicate_window_seconds
        return await self.pipeline.submit(
            Pending(
                use=use,
                message=message,
                check_opt_out=not p.mandatory,
                duplicate_since=now - timedelta(seconds=window) if window else None,
                day=tehran_day(p.send_at or now),
                quota=use.principal.agency.daily_fragment_quota,
                verification=p.verification,
            )
        )

    async def accept(
        self,
        principal: AgencyPrincipal,
        raw_body: bytes,
        body: Any,
        idempotency_key: str | None,
        after_insert: AfterInsert | None = None,
    ) -> tuple[int, bytes]:
        """With an Idempotency-Key: checked and committed on its own, under the key."""
        agency = principal.agency
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 200:
                raise Problem("invalid_idempotency_key", "1..200 characters")
            stored = await self._replay(agency.id, idempotency_key, raw_body)
            if stored is not None:
                return stored
        now = datetime.now(UTC)
        message, p = await self.build(principal, body, now)
        msisdn, parts = message.recipient, message.parts
        messages = self._store.messages
        if not p.mandatory and await messages.opted_out(agency.id, [msisdn]):
            raise Problem(
                "recipient_opted_out", "the recipient opted out of this agency's messages"
            )
        window = self._cfg.duplicate_window_seconds
        if window:
            dup = await messages.duplicate_of(
                agency.id, msisdn, message.body, now - timedelta(seconds=window)
            )
            if dup is not None:
                raise Problem(
                    "duplicate_message", "same text to the same recipient", duplicate_of=str(dup)
                )
        day = tehran_day(p.send_at or now)
        if not await messages.reserve_fragments(agency.id, day, parts, agency.daily_fragment_quota):
            raise Problem(
                "daily_quota_exceeded", f"daily quota of {agency.daily_fragment_quota} fragments"
            )
        try:
            return await self._commit(
                message, idempotency_key, raw_body, p.verification, after_insert
            )
        except BaseException:
            await messages.release_fragments(agency.id, day, parts)
            raise

    async def _replay(
        self, agency_id: uuid.UUID, key: str, raw_body: bytes
    ) -> tuple[int, bytes] | None:
        stored = await self._store.messages.idempotent_get(agency_id, key)
        if stored is None:
            return None
        digest, status, response = stored
        if digest != request_hash(raw_body):
            raise Problem(
                "idempotency_key_reused", "this Idempotency-Key was used with another body"
            )
        return status, response

    async def _commit(
        self,
        m: NewMessage,
        key: str | None,
        raw_body: bytes,
        code: CodeRecord | None = None,
        after_insert: AfterInsert | None = None,
    ) -> tuple[int, bytes]:
        response = orjson.dumps(accepted_view(m, datetime.now(UTC)))
        async with self._store.transaction() as tx:
            if key is not None and not await tx.messages.idempotent_claim(
                m.agency_id, key, request_hash(raw_body)
            ):
                raise _Raced()
            created = await tx.messages.insert_one(m, lane=m.priority)
            if after_insert is not None:
                await after_insert(tx, m)
            if code is not None:
                await tx.verification.insert([code])
            if m.send_at is None:
                await tx.messages.notify_queued(m.priority == 0)
            response = orjson.dumps(accepted_view(m, created))
            if key is not None:
                await tx.messages.idempotent_store(m.agency_id, key, 202, response)
        SMS_ACCEPTED.labels(str(m.agency_id), PRIORITY_NAMES[m.priority]).inc()
        return 202, response

    async def accept_with_idempotency(
        self,
        principal: AgencyPrincipal,
        raw_body: bytes,
        body: Any,
        key: str | None,
        after_insert: AfterInsert | None = None,
    ) -> tuple[int, bytes]:
        if after_insert is None and self.app is not None and self.app.wants(body):
            return await self.app.accept(principal, raw_body, body, key)
        try:
            return await self.accept(principal, raw_body, body, key, after_insert)
        except Problem:
            # A concurrent request with the same key may have committed between our replay
            # check and a policy check that now sees its message (a "duplicate" of itself):
            # the same key and body must get the same answer, so the stored one wins.
            if key is not None:
                stored = await self._replay(principal.agency.id, key, raw_body)
                if stored is not None:
                    return stored
            raise
        except _Raced:
            # A concurrent request with the same key committed first: answer as it did.
            assert key is not None
            stored = await self._replay(principal.agency.id, key, raw_body)
            assert stored is not None
            return stored


class _Raced(Exception):
    pass
