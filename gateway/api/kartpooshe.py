"""Routes the e-box calls (docs/KARTPOOSHE_PROTOCOL.md §2, §3): events about letters, and
one-time login codes the gateway sends by SMS so the e-box never learns phone numbers."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from gateway.api.http import read_json, services
from gateway.errors import Problem
from gateway.identity import is_valid_national_code, normalize_digits
from gateway.letters.lifecycle import IncomingReply
from gateway.letters.sms import otp_subject, queue_otp
from gateway.letters.tokens import bearer_ok, ebox_to_gateway
from gateway.metrics import LETTER_EBOX_EVENTS, LETTER_OTPS
from gateway.persian import normalize_letters

log = logging.getLogger(__name__)

ACTORS = ("owner", "attorney", "representative")
_CODE = re.compile(r"^[0-9]{4,8}$")
MAX_REPLY_TEXT = 20_000


def _authorise(request: web.Request) -> None:
    expected = ebox_to_gateway(services(request).config.kartpooshe)
    if not bearer_ok(request.headers.get("Authorization"), expected):
        raise Problem("unauthorised", "Authorization: Bearer <ebox_to_gateway_token>")


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise Problem("invalid_event", "at: an ISO 8601 UTC time")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise Problem("invalid_event", "at: an ISO 8601 UTC time") from None
    if at.tzinfo is None:
        raise Problem("invalid_event", "at: needs Z or an offset")
    return at.astimezone(UTC)


def _uuid(value: Any, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Problem("invalid_event", f"{name}: a UUID") from None


def _reply(body: dict[str, Any]) -> IncomingReply:
    reply = body.get("reply")
    if not isinstance(reply, dict):
        raise Problem("invalid_event", "reply: required when type is replied")
    rid, text, files = reply.get("reply_id"), reply.get("text", ""), reply.get("attachments", [])
    if not isinstance(rid, str) or not 1 <= len(rid) <= 200:
        raise Problem("invalid_event", "reply.reply_id: 1..200 characters")
    if not isinstance(text, str) or len(text) > MAX_REPLY_TEXT:
        raise Problem("invalid_event", f"reply.text: a string of at most {MAX_REPLY_TEXT}")
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise Problem("invalid_event", "reply.attachments: a list of objects")
    text = normalize_letters(text).strip()
    if not text and not files:
        raise Problem("invalid_event", "reply: text or an attachment")
    return IncomingReply(rid, text, files)


async def _read_event(request: web.Request) -> Any:
    """Replies carry their attachments in base64, so an event may be larger than the API's
    usual http.max_body_bytes: up to the letters' own attachment limit."""
    if request.content_type != "application/json":
        raise Problem("unsupported_media_type", f"got {request.content_type or 'no type'}")
    cfg = services(request).config.kartpooshe
    limit = cfg.max_total_bytes * 4 // 3 + 1_048_576
    if (request.content_length or 0) > limit:
        raise Problem("body_too_large", f"at most {limit} bytes")
    raw = await request.read()
    if len(raw) > limit:
        raise Problem("body_too_large", f"at most {limit} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem("malformed_json", str(exc)) from None


async def ebox_event(request: web.Request) -> web.Response:
    """POST /kartpooshe/v1/events: opened / replied; idempotent by event_id (204 again)."""
    _authorise(request)
    body = await _read_event(request)
    if not isinstance(body, dict):
        raise Problem("invalid_event", "a JSON object")
    kind = body.get("type")
    if kind not in ("opened", "replied"):
        raise Problem("invalid_event", "type: opened or replied")
    event_id = _uuid(body.get("event_id"), "event_id")
    letter_id = _uuid(body.get("letter_id"), "letter_id")
    at = _time(body.get("at"))
    actor = body.get("actor")
    if not isinstance(actor, dict) or actor.get("kind") not in ACTORS:
        raise Problem("invalid_event", f"actor.kind: one of {', '.join(ACTORS)}")
    reply = _reply(body) if kind == "replied" else None
    svc = services(request)
    lifecycle = svc.letters.lifecycle
    try:
        async with svc.store.transaction() as tx:
            letter = await tx.letters.lock(letter_id)
            if letter is None:
                raise Problem("unknown_letter", "no letter with this letter_id")
            if await tx.letters.event_seen(event_id, letter_id, kind):
                LETTER_EBOX_EVENTS.labels(kind, "repeat").inc()
                return web.Response(status=204)
            if letter.status == "failed":
                raise Problem("invalid_event", "the letter was never deposited")
            if letter.deposited_at is None:
                # The e-box answered the deposit but our record of it is not committed yet
                # (the citizen was quick): 503 makes the e-box retry (protocol §2), where a
                # 4xx would make it drop the event.
                raise Problem("service_unavailable", "the deposit is still being recorded; retry")
            if reply is None:
                await lifecycle.opened(tx, letter, at, actor["kind"])
            else:
                await lifecycle.replied(tx, letter, at, actor["kind"], reply)
    except Problem:
        LETTER_EBOX_EVENTS.labels(kind, "refused").inc()
        raise
    LETTER_EBOX_EVENTS.labels(kind, "applied").inc()
    svc.letters.replies_wake.set()
    return web.Response(status=204)


async def ebox_otp(request: web.Request) -> web.Response:
    """POST /kartpooshe/v1/otp: send a one-time login code to the citizen's number."""
    _authorise(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise Problem("invalid_national_code", "a JSON object with national_code and code")
    code_raw, otp = body.get("national_code"), body.get("code")
    national_code = normalize_digits(code_raw) if isinstance(code_raw, str) else ""
    if not is_valid_national_code(national_code):
        raise Problem("invalid_national_code", "10 digits with a valid check digit")
    if not isinstance(otp, str) or not _CODE.match(normalize_digits(otp)):
        raise Problem("invalid_value", "code: 4 to 8 digits")
    otp = normalize_digits(otp)
    svc = services(request)
    cfg = svc.config.kartpooshe
    async with svc.store.transaction() as tx:
        allowed = await tx.letters.otp_count_and_record(
            otp_subject(national_code), cfg.otp_max_per_hour
        )
    if not allowed:
        LETTER_OTPS.labels("limited").inc()
        raise Problem("too_many_codes", f"at most {cfg.otp_max_per_hour} codes an hour")
    found = await svc.directory.numbers_for([national_code])
    msisdn = next(iter(found.values()), None)
    if msisdn is None:
        LETTER_OTPS.labels("unknown").inc()
        raise Problem("unknown_citizen", "the directory holds no number for this national code")
    async with svc.store.transaction() as tx:
        await queue_otp(tx, msisdn, cfg.otp_sender, otp, datetime.now(UTC))
    LETTER_OTPS.labels("sent").inc()
    return web.json_response({"status": "sent"}, status=202)


def register(app: web.Application) -> None:
    app.router.add_post("/kartpooshe/v1/events", ebox_event)
    app.router.add_post("/kartpooshe/v1/otp", ebox_otp)
