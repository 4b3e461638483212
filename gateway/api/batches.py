"""Agency routes for batches and replies."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web

from gateway.api.hostile import read_body
from gateway.api.http import agency_auth, json_response, query_int, services
from gateway.api.views import iso
from gateway.batches import parse_common, recipients_from_csv, recipients_from_json
from gateway.errors import Problem
from gateway.replies import reply_view
from gateway.status import FINAL

# Query-string fields of a CSV upload (the body is the CSV itself).
_CSV_QUERY = (
    "template",
    "priority",
    "send_at",
    "valid_until",
    "client_ref",
    "callback_url",
    "sender",
    "mandatory",
    "verify",
    # "app,sms": the app channel's order (docs/APP_CHANNEL.md).
    "channels",
)


def batch_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["batch_id"])
    except ValueError:
        raise Problem("not_found", "no such batch") from None


async def _read(request: web.Request, limit: int) -> bytes:
    try:
        raw = await read_body(request, services(request).config.http.client_timeout_seconds)
    except web.HTTPRequestEntityTooLarge:
        raise Problem("body_too_large", f"at most {limit} bytes") from None
    if len(raw) > limit:
        raise Problem("body_too_large", f"at most {limit} bytes")
    return raw


async def create_batch(request: web.Request) -> web.Response:
    """POST /v1/batches: JSON {template, recipients[], …} or text/csv with a header row
    (``to`` or ``national_code`` plus one column per placeholder; other fields in the query)."""
    principal = await agency_auth(request)
    svc = services(request)
    raw = await _read(request, svc.config.http.max_batch_bytes)
    if request.content_type == "text/csv":
        common_raw: dict[str, Any] = {k: request.query[k] for k in _CSV_QUERY if k in request.query}
        for flag in ("mandatory", "verify"):
            if flag in common_raw:
                common_raw[flag] = common_raw[flag].lower() == "true"
        if "channels" in common_raw:
            common_raw["channels"] = common_raw["channels"].split(",")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Problem("invalid_value", "the CSV must be UTF-8") from None
        recipients = recipients_from_csv(text)
        common = parse_common({**common_raw, "recipients": []})
    elif request.content_type == "application/json":
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Problem("malformed_json", str(exc)) from None
        common = parse_common(body)
        recipients = recipients_from_json(common.pop("recipients"))
    else:
        raise Problem("unsupported_media_type", "send application/json or text/csv")
    common.pop("recipients", None)
    result = await svc.batches.accept(principal, common, recipients)
    return json_response(result, status=202)


async def get_batch(request: web.Request) -> web.Response:
    """GET /v1/batches/{batch_id}: counts by status and progress."""
    principal = await agency_auth(request)
    found = await services(request).store.messages.batch_counts(
        principal.agency.id, batch_id(request)
    )
    if found is None:
        raise Problem("not_found", "no such batch")
    batch, counts = found
    accepted = sum(counts.values())
    final = sum(n for status, n in counts.items() if status in FINAL)
    return json_response(
        {
            "id": str(batch["id"]),
            "total": batch["total"],
            "accepted": accepted,
            "rejected_count": batch["rejected"],
            "counts": counts,
            "progress": round(final / accepted, 4) if accepted else 1.0,
            "client_ref": batch["client_ref"],
            "test": batch["is_test"],
            "created_at": iso(batch["created_at"]),
            "cancelled_at": iso(batch["cancelled_at"]),
        }
    )


async def cancel_batch(request: web.Request) -> web.Response:
    """POST /v1/batches/{batch_id}/cancel: every waiting message of the batch is cancelled."""
    principal = await agency_auth(request)
    store = services(request).store
    bid = batch_id(request)
    if await store.messages.batch_counts(principal.agency.id, bid) is None:
        raise Problem("not_found", "no such batch")
    n = await store.messages.cancel_batch(principal.agency.id, bid)
    return json_response({"id": str(bid), "cancelled": n})


async def list_replies(request: web.Request) -> web.Response:
    """GET /v1/replies?after=<cursor>&limit=: citizens' messages to the agency, oldest first."""
    principal = await agency_auth(request)
    after = query_int(request, "after", 0, 0, 2**62)
    limit = query_int(request, "limit", 100, 1, 1000)
    rows = await services(request).store.replies.page(principal.agency.id, after, limit)
    return json_response(
        {
            "replies": [reply_view(r) for r in rows],
            "next_cursor": str(rows[-1].seq) if rows else str(after),
        }
    )


def register(app: web.Application) -> None:
    app.router.add_post("/v1/batches", create_batch)
    app.router.add_get("/v1/batches/{batch_id}", get_batch)
    app.router.add_post("/v1/batches/{batch_id}/cancel", cancel_batch)
    app.router.add_get("/v1/replies", list_replies)
