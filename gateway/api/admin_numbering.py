"""Admin routes for the numbering plan and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from gateway.api.admin_agencies import agency_id
from gateway.api.http import admin_auth, client_addr, json_response, query_int, read_json, services
from gateway.api.views import allocation_view, audit_view
from gateway.errors import Problem
from gateway.numbering import KINDS, Request
from gateway.validation import Field, parse_object

_ALLOCATE_BODY = {
    "kind": Field(str, required=True, max_length=16),
    "value": Field(str, max_length=32),
    "digits": Field(int, minimum=1, maximum=8),
    "parent_id": Field(int, minimum=1),
    "label": Field(str, max_length=200),
}


async def allocate(request: web.Request) -> web.Response:
    """POST /admin/v1/agencies/{agency_id}/numbers: allocate a shortcode, sub-number, USSD code
    or mask; without ``value`` the next free one with ``digits`` digits is picked."""
    admin = await admin_auth(request, write=True)
    data = parse_object(await read_json(request), _ALLOCATE_BODY)
    if data["kind"] not in KINDS:
        raise Problem("invalid_value", f"kind: must be one of {', '.join(KINDS)}")
    svc = services(request)
    agency = await svc.agencies.get(agency_id(request))
    allocation = await svc.numbering.allocate(
        agency,
        Request(
            kind=data["kind"],
            value=data.get("value"),
            digits=data.get("digits"),
            parent_id=data.get("parent_id"),
            label=data.get("label", ""),
        ),
        actor=admin.actor,
        client_addr=client_addr(request),
    )
    return json_response({"allocation": allocation_view(allocation)}, status=201)


async def list_numbers(request: web.Request) -> web.Response:
    """GET /admin/v1/agencies/{agency_id}/numbers[?include_released=true]."""
    await admin_auth(request, write=False)
    svc = services(request)
    agency = await svc.agencies.get(agency_id(request))
    include = request.query.get("include_released", "false").lower() == "true"
    rows = await svc.store.numbering.for_agency(agency.id, include_released=include)
    return json_response({"allocations": [allocation_view(a) for a in rows]})


async def release(request: web.Request) -> web.Response:
    """POST /admin/v1/numbers/{allocation_id}/release: release (with its sub-numbers) into
    quarantine."""
    admin = await admin_auth(request, write=True)
    try:
        allocation_id = int(request.match_info["allocation_id"])
    except ValueError:
        raise Problem("not_found", "no such allocation") from None
    released = await services(request).numbering.release(
        allocation_id, actor=admin.actor, client_addr=client_addr(request)
    )
    return json_response({"released": [allocation_view(a) for a in released]})


async def history(request: web.Request) -> web.Response:
    """GET /admin/v1/numbers/history?value=…: who held this number, code or mask, and when."""
    await admin_auth(request, write=False)
    value = request.query.get("value", "").strip()
    if not value:
        raise Problem("invalid_parameter", "value is required")
    rows = await services(request).numbering.history(value)
    return json_response({"value": value, "history": [allocation_view(a) for a in rows]})


async def audit(request: web.Request) -> web.Response:
    """GET /admin/v1/audit: newest first; page with ``before_id``."""
    await admin_auth(request, write=False)
    since_raw = request.query.get("since")
    try:
        since = datetime.fromisoformat(since_raw) if since_raw else None
    except ValueError:
        raise Problem("invalid_parameter", "since must be an ISO 8601 time") from None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    before = request.query.get("before_id")
    if before is not None and not before.isdigit():
        raise Problem("invalid_parameter", "before_id must be an integer")
    limit = query_int(request, "limit", 100, 1, 1000)
    rows = await services(request).store.audit.list(
        action=request.query.get("action"),
        since=since,
        limit=limit,
        before_id=int(before) if before else None,
    )
    return json_response({"entries": [audit_view(e) for e in rows]})


def register(app: web.Application) -> None:
    r = app.router
    r.add_post("/admin/v1/agencies/{agency_id}/numbers", allocate)
    r.add_get("/admin/v1/agencies/{agency_id}/numbers", list_numbers)
    r.add_post("/admin/v1/numbers/{allocation_id}/release", release)
    r.add_get("/admin/v1/numbers/history", history)
    r.add_get("/admin/v1/audit", audit)
