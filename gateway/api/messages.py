"""Agency routes for single messages: send, read with history, cancel."""

from __future__ import annotations

import uuid

from aiohttp import web

from gateway.api.http import (
    agency_auth,
    client_addr,
    json_response,
    rate_check,
    read_raw_json,
    services,
)
from gateway.api.views import iso
from gateway.errors import Problem
from gateway.status import PRIORITY_NAMES
from gateway.store.models import Message, MessageEvent


def message_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["message_id"])
    except ValueError:
        raise Problem("not_found", "no such message") from None


def message_view(m: Message, events: list[MessageEvent] | None = None) -> dict[str, object]:
    view: dict[str, object] = {
        "id": str(m.id),
        "status": m.status,
        "recipient": m.recipient,
        "sender": m.sender,
        "text": m.body,
        "parts": m.parts,
        "encoding": m.encoding,
        "priority": PRIORITY_NAMES[m.priority],
        "mandatory": m.mandatory,
        "test": m.is_test,
        "operator": m.operator or None,
        "batch_id": str(m.batch_id) if m.batch_id else None,
        "client_ref": m.client_ref,
        "error_code": m.error_code or None,
        "send_at": iso(m.send_at),
        "valid_until": iso(m.valid_until),
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
        "final_at": iso(m.final_at),
    }
    if events is not None:
        view["history"] = [
            {"status": e.status, "at": iso(e.at), **({"detail": e.detail} if e.detail else {})}
            for e in events
        ]
    return view


async def send_message(request: web.Request) -> web.Response:
    """POST /v1/messages: accept one message; 202 only after it is committed."""
    svc = services(request)
    key = request.headers.get("Idempotency-Key")
    if key is None:
        use = await svc.auth.agency_deferred(
            request.headers.get("Authorization"), client_addr(request)
        )
        rate_check(request, use.principal.key.key_id)
        _, body = await read_raw_json(request)
        response = await svc.sending.accept_fast(use, body)
        return web.Response(body=response, status=202, content_type="application/json")
    principal = await agency_auth(request)
    raw, body = await read_raw_json(request)
    status, response = await svc.sending.accept_with_idempotency(principal, raw, body, key)
    return web.Response(body=response, status=status, content_type="application/json")


async def get_message(request: web.Request) -> web.Response:
    """GET /v1/messages/{message_id}: status and full history; only the owner agency sees it."""
    principal = await agency_auth(request)
    store = services(request).store
    m = await store.messages.get(principal.agency.id, message_id(request))
    if m is None:
        raise Problem("not_found", "no such message")
    return json_response(message_view(m, await store.messages.history(m)))


async def cancel_message(request: web.Request) -> web.Response:
    """POST /v1/messages/{message_id}/cancel: a scheduled or queued message is not sent."""
    principal = await agency_auth(request)
    store = services(request).store
    mid = message_id(request)
    outcome = await store.messages.cancel(principal.agency.id, mid)
    if outcome is None:
        raise Problem("not_found", "no such message")
    if outcome != "cancelled":
        raise Problem("not_cancellable", f"the message is {outcome}", status_now=outcome)
    m = await store.messages.get(principal.agency.id, mid)
    assert m is not None
    return json_response(message_view(m))


def register(app: web.Application) -> None:
    app.router.add_post("/v1/messages", send_message)
    app.router.add_get("/v1/messages/{message_id}", get_message)
    app.router.add_post("/v1/messages/{message_id}/cancel", cancel_message)
