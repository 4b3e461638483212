"""Admin routes for citizen trust (docs/TRUST.md): an agency's registered link domains."""

from __future__ import annotations

from aiohttp import web

from gateway.api.admin_agencies import agency_id
from gateway.api.http import admin_auth, client_addr, json_response, read_json, services


async def get_domains(request: web.Request) -> web.Response:
    """GET /admin/v1/agencies/{agency_id}/domains: the domains its SMS links may point to."""
    await admin_auth(request, write=False)
    agency = await services(request).agencies.get(agency_id(request))
    return json_response({"domains": list(agency.link_domains)})


async def put_domains(request: web.Request) -> web.Response:
    """PUT /admin/v1/agencies/{agency_id}/domains: replace them (IDNA-normalised; audited)."""
    admin = await admin_auth(request, write=True)
    agency = await services(request).agencies.set_domains(
        agency_id(request),
        await read_json(request),
        actor=admin.actor,
        client_addr=client_addr(request),
    )
    return json_response({"domains": list(agency.link_domains)})


def register(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/v1/agencies/{agency_id}/domains", get_domains)
    r.add_put("/admin/v1/agencies/{agency_id}/domains", put_domains)
