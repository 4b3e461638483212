"""Admin routes for agencies and their API keys (``/admin/v1/agencies...``)."""

from __future__ import annotations

import uuid

from aiohttp import web

from gateway.api.http import admin_auth, client_addr, json_response, query_int, read_json, services
from gateway.api.views import agency_view, key_view
from gateway.errors import Problem
from gateway.validation import Field, parse_object

_STATUS_BODY = {"reason": Field(str, max_length=500)}
_KEY_BODY = {
    "name": Field(str, required=True, max_length=100),
    "key_type": Field(str, required=True, max_length=8),
}


def agency_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["agency_id"])
    except ValueError:
        raise Problem("not_found", "no such agency") from None


async def _optional_json(request: web.Request) -> object:
    return await read_json(request) if request.can_read_body else {}


async def create_agency(request: web.Request) -> web.Response:
    """POST /admin/v1/agencies: register an agency; the webhook secret is shown only here."""
    admin = await admin_auth(request, write=True)
    body = await read_json(request)
    agency, secret = await services(request).agencies.create(
        body, actor=admin.actor, client_addr=client_addr(request)
    )
    return json_response({"agency": agency_view(agency), "webhook_secret": secret}, status=201)


async def list_agencies(request: web.Request) -> web.Response:
    """GET /admin/v1/agencies: page through agencies by id."""
    await admin_auth(request, write=False)
    status = request.query.get("status")
    if status is not None and status not in {"active", "suspended"}:
        raise Problem("invalid_parameter", "status must be active or suspended")
    after = request.query.get("after")
    try:
        after_id = uuid.UUID(after) if after else None
    except ValueError:
        raise Problem("invalid_parameter", "after must be an agency id") from None
    limit = query_int(request, "limit", 100, 1, 1000)
    rows = await services(request).store.agencies.list(status=status, limit=limit, after=after_id)
    next_after = str(rows[-1].id) if len(rows) == limit else None
    return json_response({"agencies": [agency_view(a) for a in rows], "next_after": next_after})


async def get_agency(request: web.Request) -> web.Response:
    """GET /admin/v1/agencies/{agency_id}."""
    await admin_auth(request, write=False)
    agency = await services(request).agencies.get(agency_id(request))
    return json_response({"agency": agency_view(agency)})


async def update_agency(request: web.Request) -> web.Response:
    """PATCH /admin/v1/agencies/{agency_id}: change names, contact, limits, domains, callback."""
    admin = await admin_auth(request, write=True)
    body = await read_json(request)
    agency = await services(request).agencies.update(
        agency_id(request), body, actor=admin.actor, client_addr=client_addr(request)
    )
    return json_response({"agency": agency_view(agency)})


async def _set_status(request: web.Request, status: str) -> web.Response:
    admin = await admin_auth(request, write=True)
    data = parse_object(await _optional_json(request), _STATUS_BODY)
    agency = await services(request).agencies.set_status(
        agency_id(request),
        status,
        data.get("reason", ""),
        actor=admin.actor,
        client_addr=client_addr(request),
    )
    return json_response({"agency": agency_view(agency)})


async def suspend_agency(request: web.Request) -> web.Response:
    """POST /admin/v1/agencies/{agency_id}/suspend: its keys stop working at once."""
    return await _set_status(request, "suspended")


async def resume_agency(request: web.Request) -> web.Response:
    """POST /admin/v1/agencies/{agency_id}/resume."""
    return await _set_status(request, "active")


async def rotate_webhook_secret(request: web.Request) -> web.Response:
    """POST /admin/v1/agencies/{agency_id}/webhook-secret: new secret, shown only here."""
    admin = await admin_auth(request, write=True)
    secret = await services(request).agencies.rotate_webhook_secret(
        agency_id(request), actor=admin.actor, client_addr=client_addr(request)
    )
    return json_response({"webhook_secret": secret})


async def create_key(request: web.Request) -> web.Response:
    """POST /admin/v1/agencies/{agency_id}/keys: issue a live or test key; secret shown once."""
    admin = await admin_auth(request, write=True)
    data = parse_object(await read_json(request), _KEY_BODY)
    issued = await services(request).credentials.create_key(
        agency_id(request),
        name=data["name"],
        key_type=data["key_type"],
        actor=admin.actor,
        client_addr=client_addr(request),
    )
    return json_response({"key": key_view(issued.key), "secret": issued.secret}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    """GET /admin/v1/agencies/{agency_id}/keys: keys with last-used times, never secrets."""
    await admin_auth(request, write=False)
    svc = services(request)
    agency = await svc.agencies.get(agency_id(request))
    keys = await svc.store.credentials.list_keys(agency.id)
    return json_response({"keys": [key_view(k) for k in keys]})


async def revoke_key(request: web.Request) -> web.Response:
    """POST /admin/v1/agencies/{agency_id}/keys/{key_id}/revoke."""
    admin = await admin_auth(request, write=True)
    key = await services(request).credentials.revoke_key(
        agency_id(request),
        request.match_info["key_id"],
        actor=admin.actor,
        client_addr=client_addr(request),
    )
    return json_response({"key": key_view(key)})


def register(app: web.Application) -> None:
    r = app.router
    r.add_post("/admin/v1/agencies", create_agency)
    r.add_get("/admin/v1/agencies", list_agencies)
    r.add_get("/admin/v1/agencies/{agency_id}", get_agency)
    r.add_patch("/admin/v1/agencies/{agency_id}", update_agency)
    r.add_post("/admin/v1/agencies/{agency_id}/suspend", suspend_agency)
    r.add_post("/admin/v1/agencies/{agency_id}/resume", resume_agency)
    r.add_post("/admin/v1/agencies/{agency_id}/webhook-secret", rotate_webhook_secret)
    r.add_post("/admin/v1/agencies/{agency_id}/keys", create_key)
    r.add_get("/admin/v1/agencies/{agency_id}/keys", list_keys)
    r.add_post("/admin/v1/agencies/{agency_id}/keys/{key_id}/revoke", revoke_key)
