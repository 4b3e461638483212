"""Citizens' app registrations, routing a message to the app channel, the pull API, read
receipts and replies from the app (docs/APP_CHANNEL.md).

Routing happens in the transaction that accepts the message (gateway/sending.py, the
``after_insert`` hook): the message and its SMS queue row are written as for any SMS, and when
the citizen is signed in on an app that may carry the agency's notices, the queue row is held
and an app delivery created. The push worker (worker.py) then confirms it (the SMS is dropped)
or gives it up at the deadline (the SMS becomes due). Both are one conditional transition on
the delivery row, so the SMS goes out at most once on any number of nodes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from gateway.app_channel.providers import ProviderPrincipal
from gateway.auth import AgencyPrincipal, TokenUse
from gateway.config import AppConfig, SmsConfig
from gateway.errors import Problem
from gateway.identity import is_valid_national_code, normalize_digits
from gateway.metrics import APP_CONFIRMATIONS, APP_FALLBACKS, APP_READ_RECEIPTS, APP_REPLIES
from gateway.replies import reply_view
from gateway.store import Store
from gateway.store.app_channel import AppChannelStore, AppProvider, DeliveryRow
from gateway.store.models import NewMessage, Reply
from gateway.validation import Field, parse_object

CHANNELS = ("app", "sms")
# The channel orders a message may ask for. SMS before app would need an SMS failure to be
# known for certain before the app is tried; operators' receipts do not give that in time.
ORDERS = (("app",), ("sms",), ("app", "sms"))
MAX_REPLY = 1_000

AfterInsert = Callable[[Store, NewMessage], Awaitable[None]]


def channel_event(**detail: object) -> str:
    return orjson.dumps({"channel": "app", **detail}).decode()


def national_code(value: str) -> str:
    code = normalize_digits(value.strip())
    if not is_valid_national_code(code):
        raise Problem("invalid_national_code", "ten digits with a valid check digit")
    return code


def _citizen_ref(value: str) -> str:
    value = value.strip()
    if not value:
        raise Problem("invalid_value", "citizen_ref: the app's own id of the account")
    if is_valid_national_code(normalize_digits(value)):
        # The point of citizen_ref is that the national code is never stored.
        raise Problem("invalid_value", "citizen_ref must not be the national code")
    return value


def _cursor(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise Problem("invalid_value", "cursor: the next_cursor of the previous page")
    return int(value)


REGISTER_FIELDS: dict[str, Field] = {
    "national_code": Field(str, required=True, max_length=16, check=national_code),
    "citizen_ref": Field(str, required=True, max_length=128, check=_citizen_ref),
}
CITIZEN_FIELDS: dict[str, Field] = {
    "national_code": Field(str, required=True, max_length=16, check=national_code),
}
INBOX_FIELDS: dict[str, Field] = {
    **CITIZEN_FIELDS,
    "cursor": Field(str, max_length=20, check=_cursor),
    "limit": Field(int, minimum=1, maximum=100),
}
REPLY_FIELDS: dict[str, Field] = {
    **CITIZEN_FIELDS,
    "in_reply_to": Field(str, required=True, max_length=36),
    "text": Field(str, required=True, max_length=MAX_REPLY),
}


def channel_order(body: dict[str, Any]) -> tuple[str, ...]:
    """``channel`` (one) or ``channels`` (an order), checked; removed from ``body``."""
    if "channel" in body and "channels" in body:
        raise Problem("invalid_value", "give channel or channels, not both")
    if "channel" in body:
        one = body.pop("channel")
        if not isinstance(one, str):
            raise Problem("wrong_type", "channel: a string")
        order: tuple[str, ...] = (one,)
    else:
        many = body.pop("channels")
        if not isinstance(many, list) or not all(isinstance(c, str) for c in many):
            raise Problem("wrong_type", "channels: an array of strings")
        order = tuple(many)
    if order not in ORDERS:
        raise Problem(
            "invalid_value", 'channels: one of ["app"], ["sms"] or ["app", "sms"] (in that order)'
        )
    return order


@dataclass(frozen=True, slots=True)
class _Route:
    provider: AppProvider | None
    citizen_key: bytes
    fallback: str
    skipped: str  # why the app channel was not used ("" when it is)


class AppChannel:
    def __init__(
        self, store: Store, cfg: AppConfig, sms: SmsConfig, key: bytes, accept: Any = None
    ) -> None:
        self._store = store
        self._cfg = cfg
        self._sms = sms
        self._key = key
        # SendingService.accept_with_idempotency (set in gateway/services.py).
        self._accept = accept
        # Set when a delivery is created, so this process's push worker goes at once.
        self.wake = asyncio.Event()

    def citizen_key(self, code: str) -> bytes:
        """HMAC-SHA256 of the national code: registrations are found by it, and a dump of
        the table does not give the codes (a derived key, as gateway/verification.py)."""
        return hmac.new(self._key, code.encode(), hashlib.sha256).digest()

    # -- the send API ---------------------------------------------------------------------------
    @staticmethod
    def wants(body: Any) -> bool:
        return isinstance(body, dict) and ("channel" in body or "channels" in body)

    async def accept_token(self, use: TokenUse, body: Any) -> bytes:
        """The no-Idempotency-Key path: the token's jti is recorded here, then as below. The
        key and agency rows of ``use`` may come from the authenticator's few-second cache, so
        they are read again (the group-commit pipeline does the same in its SQL)."""
        key_id = use.principal.key.key_id
        if not await self._store.credentials.remember_jti(key_id, use.jti, use.expires):
            raise Problem("token_replayed", "every request needs a fresh jti")
        if key_id not in await self._store.credentials.live_keys([key_id]):
            key = await self._store.credentials.get_key(key_id)
            if key is None or key.revoked_at is not None:
                raise Problem("key_revoked")
            raise Problem("agency_suspended")
        _, response = await self.accept(use.principal, b"", body, None)
        return response

    async def accept(
        self, principal: AgencyPrincipal, raw_body: bytes, body: dict[str, Any], key: str | None
    ) -> tuple[int, bytes]:
        body = dict(body)
        order = channel_order(body)
        route = await self._route(principal, body, order)
        committed: list[bool] = []

        async def after_insert(tx: Store, m: NewMessage) -> None:
            app = AppChannelStore(tx.db)
            if route.provider is not None:
                first = m.send_at or datetime.now(UTC)
                await app.hold(
                    message_id=m.id,
                    agency_id=m.agency_id,
                    provider_id=route.provider.id,
                    citizen_key=route.citizen_key,
                    fallback=route.fallback,
                    first_attempt=first,
                    deadline=first + timedelta(seconds=self._cfg.confirm_timeout_seconds),
                )
            elif route.skipped:
                await app.add_event(
                    m.id, "app_skipped", channel_event(reason=route.skipped, next="sms")
                )
            committed.append(True)

        status, response = await self._accept(
            principal, raw_body or orjson.dumps(body), body, key, after_insert=after_insert
        )
        if committed:
            if route.provider is not None:
                self.wake.set()
            elif route.skipped:
                APP_FALLBACKS.labels("none", str(principal.agency.id), route.skipped).inc()
        return status, response

    async def _route(
        self, principal: AgencyPrincipal, body: dict[str, Any], order: tuple[str, ...]
    ) -> _Route:
        fallback = "sms" if "sms" in order else ""
        if "app" not in order:
            return _Route(None, b"", fallback, "")
        raw = body.get("national_code")
        if not isinstance(raw, str):
            if not fallback:
                raise Problem("app_needs_national_code", "send national_code, not to")
            # A mobile number alone names no citizen an app knows: SMS directly.
            return _Route(None, b"", fallback, "no_national_code")
        ckey = self.citizen_key(national_code(raw))
        provider = await AppChannelStore(self._store.db).route(ckey, principal.agency.id)
        if provider is None:
            if not fallback:
                raise Problem("app_not_registered")
            return _Route(None, ckey, fallback, "not_registered")
        return _Route(provider, ckey, fallback, "")

    async def hold_batch(
        self,
        tx: Store,
        *,
        batch_id: uuid.UUID,
        agency_id: uuid.UUID,
        order: tuple[str, ...],
        numbers: dict[str, str],
    ) -> int:
        """Route a batch's messages to citizens' apps, in the batch's transaction (called by
        gateway/batches.py). ``numbers``: national code → number of the recipients given by
        national code; those given by number alone stay SMS. Returns how many were routed."""
        if "app" not in order or not numbers:
            return 0
        pairs = sorted(numbers.items())
        held = await AppChannelStore(tx.db).hold_batch(
            batch_id=batch_id,
            agency_id=agency_id,
            msisdns=[msisdn for _, msisdn in pairs],
            citizen_keys=[self.citizen_key(code) for code, _ in pairs],
            fallback="sms",
            confirm_seconds=self._cfg.confirm_timeout_seconds,
        )
        return held

    def batch_order(self, common: dict[str, Any]) -> tuple[str, ...]:
        """A batch's channel order: ``["app", "sms"]`` or SMS (an app-only batch would have to
        refuse recipients after their rows are written; send those one by one)."""
        if "channel" not in common and "channels" not in common:
            return ("sms",)
        order = channel_order(common)
        if order == ("app",):
            raise Problem("invalid_value", 'channels: a batch takes ["app", "sms"] or ["sms"]')
        return order

    # -- registrations ----------------------------------------------------------------------
    async def register(self, who: ProviderPrincipal, body: Any) -> dict[str, object]:
        data = parse_object(body, REGISTER_FIELDS)
        await AppChannelStore(self._store.db).register(
            self.citizen_key(data["national_code"]), who.provider.id, data["citizen_ref"]
        )
        return {"registered": True, "citizen_ref": data["citizen_ref"]}

    async def sign_out(self, who: ProviderPrincipal, body: Any) -> dict[str, object]:
        data = parse_object(body, CITIZEN_FIELDS)
        app = AppChannelStore(self._store.db)
        if not await app.unregister(self.citizen_key(data["national_code"]), who.provider.id):
            raise Problem("not_registered_here")
        return {"registered": False}

    async def _registered(self, who: ProviderPrincipal, code: str) -> bytes:
        """The citizen's key, only if they are signed in on this provider's app: a provider
        never learns anything of citizens registered elsewhere."""
        ckey = self.citizen_key(code)
        if await AppChannelStore(self._store.db).registration(ckey, who.provider.id) is None:
            raise Problem("not_registered_here")
        return ckey

    # -- pull API -------------------------------------------------------------------------------
    async def inbox(self, who: ProviderPrincipal, body: Any) -> dict[str, object]:
        who.require("notices")
        data = parse_object(body, INBOX_FIELDS)
        ckey = await self._registered(who, data["national_code"])
        limit = data.get("limit") or 50
        rows = await AppChannelStore(self._store.db).inbox(
            who.provider.id, ckey, data.get("cursor") or 0, limit
        )
        notices: list[dict[str, object]] = []
        for n in rows:
            m = await self._store.messages.get(n.agency_id, n.message_id)
            if m is None:
                continue
            notices.append(
                {
                    "id": str(n.message_id),
                    "agency": {
                        "id": str(n.agency_id),
                        "name_fa": n.agency_name_fa,
                        "name_en": n.agency_name_en,
                    },
                    "sender": m.sender,
                    "text": m.body,
                    "mandatory": m.mandatory,
                    "created_at": n.created_at.isoformat(),
                    "delivered_at": n.delivered_at.isoformat() if n.delivered_at else None,
                    "read_at": n.read_at.isoformat() if n.read_at else None,
                }
            )
        return {
            "notices": notices,
            "next_cursor": str(rows[-1].seq) if len(rows) == limit else None,
        }

    async def _notice(
        self, who: ProviderPrincipal, message_id: str, code: str, via: str = "pull"
    ) -> DeliveryRow:
        """The delivery of this notice, if it went to this provider for this citizen; a
        notice that is pending counts as delivered from now (the app shows it)."""
        try:
            mid = uuid.UUID(message_id)
        except ValueError:
            raise Problem("unknown_notice") from None
        app = AppChannelStore(self._store.db)
        d = await app.delivery(mid)
        if (
            d is None
            or d.provider_id != who.provider.id
            or not hmac.compare_digest(d.citizen_key, self.citizen_key(code))
            or not d.due
        ):
            raise Problem("unknown_notice")
        if d.state == "pending":
            await self.confirm(mid, d.agency_id, who.provider.name, via=via)
            d = await app.delivery(mid)
            assert d is not None
        if d.state != "delivered":
            raise Problem("unknown_notice", "the notice went by another channel")
        return d

    async def confirm(
        self, message_id: uuid.UUID, agency_id: uuid.UUID, provider: str, *, via: str
    ) -> bool:
        async with self._store.transaction() as tx:
            done = await AppChannelStore(tx.db).confirm(
                message_id, channel_event(provider=provider, via=via), push=via == "push"
            )
            if done:
                await tx.callbacks.enqueue_status([message_id], self._give_up_at())
        if done:
            APP_CONFIRMATIONS.labels(provider, str(agency_id)).inc()
        return done

    def _give_up_at(self) -> datetime:
        return datetime.now(UTC) + timedelta(hours=self._sms.callback_retry_hours)

    async def delivered(
        self, who: ProviderPrincipal, message_id: str, body: Any
    ) -> dict[str, object]:
        """The provider's delivery receipt for a push it answered 202 (idempotent)."""
        who.require("notices")
        data = parse_object(body, CITIZEN_FIELDS)
        d = await self._notice(who, message_id, data["national_code"], via="ack")
        return {"id": str(d.message_id), "delivered": True}

    async def read(self, who: ProviderPrincipal, message_id: str, body: Any) -> dict[str, object]:
        who.require("notices")
        data = parse_object(body, CITIZEN_FIELDS)
        d = await self._notice(who, message_id, data["national_code"])
        read_at = d.read_at
        if read_at is None:
            async with self._store.transaction() as tx:
                read_at = await AppChannelStore(tx.db).mark_read(d.message_id)
                if read_at is not None:
                    await AppChannelStore(tx.db).add_event(
                        d.message_id, "read", channel_event(provider=who.provider.name)
                    )
                    await self._read_callback(tx, d, who.provider.name, read_at)
            if read_at is None:  # read meanwhile through another request
                again = await AppChannelStore(self._store.db).delivery(d.message_id)
                read_at = again.read_at if again else None
            else:
                APP_READ_RECEIPTS.labels(who.provider.name, str(d.agency_id)).inc()
        return {"id": str(d.message_id), "read_at": read_at.isoformat() if read_at else None}

    async def _read_callback(
        self, tx: Store, d: DeliveryRow, provider: str, read_at: datetime
    ) -> None:
        m = await tx.messages.get(d.agency_id, d.message_id)
        agency = await tx.agencies.get(d.agency_id)
        url = (m.callback_url if m else "") or (agency.callback_url if agency else "")
        if not url or m is None:
            return
        body = orjson.dumps(
            {
                "type": "message.read",
                "id": str(d.message_id),
                "channel": "app",
                "provider": provider,
                "client_ref": m.client_ref,
                "read_at": read_at.isoformat(),
            }
        )
        await tx.callbacks.enqueue(d.agency_id, "message.read", url, body, self._give_up_at())

    # -- replies --------------------------------------------------------------------------------
    async def reply(self, who: ProviderPrincipal, body: Any) -> dict[str, object]:
        """A citizen's answer written in the app: stored and announced like an SMS reply
        (GET /v1/replies, the reply.received webhook), with channel "app"."""
        who.require("replies")
        data = parse_object(body, REPLY_FIELDS)
        text = data["text"].strip()
        if not text:
            raise Problem("invalid_value", "text: must not be empty")
        d = await self._notice(who, data["in_reply_to"], data["national_code"])
        now = datetime.now(UTC)
        async with self._store.transaction() as tx:
            m = await tx.messages.get(d.agency_id, d.message_id)
            if m is None:
                raise Problem("unknown_notice")
            reply = await tx.replies.insert(
                Reply(
                    id=uuid.uuid4(),
                    seq=0,
                    agency_id=d.agency_id,
                    number=m.sender,
                    msisdn=m.recipient,
                    body=text,
                    operator=f"app:{who.provider.name}",
                    in_reply_to=d.message_id,
                    keyword="",
                    received_at=now,
                )
            )
            agency = await tx.agencies.get(d.agency_id)
            if agency is not None and agency.callback_url:
                await tx.callbacks.enqueue(
                    d.agency_id,
                    "reply.received",
                    agency.callback_url,
                    orjson.dumps({"type": "reply.received", **reply_view(reply)}),
                    self._give_up_at(),
                )
        APP_REPLIES.labels(who.provider.name).inc()
        return reply_view(reply)
