"""Admin routes for an agency's letter settings and its office-automation SMTP credentials."""

from __future__ import annotations

from aiohttp import web

from gateway.api.admin_agencies import agency_id
from gateway.api.http import admin_auth, client_addr, json_response, read_json, services
from gateway.validation import Field, parse_object

_CREDENTIAL_BODY = {"username": Field(str, max_length=63)}


async def get_settings(request: web.Request) -> web.Response:
    """GET /admin/v1/agencies/{agency_id}/letters/settings."""
    await admin_auth(request, write=False)
    svc = services(request)
    await svc.agencies.get(agency_id(request))
    return json_response({"settings": await svc.letter_settings.get(agency_id(request))})


async def patch_settings(request: web.Request) -> web.Response:
    """PATCH /admin/v1/agencies/{agency_id}/letters/settings: deemed-delivery default, From
    addresses of the office automation, office mailbox and reply webhook for replies."""
    admin = await admin_auth(request, write=True)
    body = await read_json(request)
    settings = await services(request).letter_settings.update(
        agency_id(request), body, actor=admin.actor, client_addr=client_addr(request)
    )
    return json_response({"settings": settings})


async def create_smtp_credential(request: web.Request) -> web.Response:
    """POST /admin/v1/agencies/{agency_id}/letters/smtp-credentials: the password is shown
    only in this answer."""
    admin = await admin_auth(request, write=True)
    body = await read_json(request) if request.can_read_body else {}
    data = parse_object(body, _CREDENTIAL_BODY)
    username, password = await services(request).letter_settings.create_smtp_credential(
        agency_id(request),
        data.get("username"),
        actor=admin.actor,
        client_addr=client_addr(request),
    )
    return json_response({"username": username, "password": password}, status=201)


async def revoke_smtp_credential(request: web.Request) -> web.Response:
    """DELETE /admin/v1/agencies/{agency_id}/letters/smtp-credentials/{username}."""
    admin = await admin_auth(request, write=True)
    await services(request).letter_settings.revoke_smtp_credential(
        agency_id(request),
        request.match_info["username"],
        actor=admin.actor,
        client_addr=client_addr(request),
    )
    return web.Response(status=204)


def register(app: web.Application) -> None:
    base = "/admin/v1/agencies/{agency_id}/letters"
    app.router.add_get(f"{base}/settings", get_settings)
    app.router.add_patch(f"{base}/settings", patch_settings)
    app.router.add_post(f"{base}/smtp-credentials", create_smtp_credential)
    app.router.add_delete(f"{base}/smtp-credentials/{{username}}", revoke_smtp_credential)
