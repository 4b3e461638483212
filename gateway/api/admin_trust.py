"""Admin routes for citizen trust (docs/TRUST.md): an agency's registered link domains, its
verification-code policy and its retention of contents."""

from __future__ import annotations

from aiohttp import web

from gateway.api.admin_agencies import agency_id
from gateway.api.http import admin_auth, client_addr, json_response, read_json, services
from gateway.errors import Problem
from gateway.validation import Field, parse_object
from gateway.verification import POLICIES


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


_POLICY = {"policy": Field(str, required=True, max_length=16)}


async def get_verification(request: web.Request) -> web.Response:
    """GET /admin/v1/agencies/{agency_id}/verification: always, never or per_message."""
    await admin_auth(request, write=False)
    svc = services(request)
    agency = await svc.agencies.get(agency_id(request))
    return json_response({"policy": await svc.store.verification.policy(agency.id) or "never"})


async def put_verification(request: web.Request) -> web.Response:
    """PUT /admin/v1/agencies/{agency_id}/verification: set the policy (audited)."""
    admin = await admin_auth(request, write=True)
    data = parse_object(await read_json(request), _POLICY)
    if data["policy"] not in POLICIES:
        raise Problem("invalid_value", f"policy: one of {', '.join(POLICIES)}")
    svc = services(request)
    agency = await svc.agencies.get(agency_id(request))
    async with svc.store.transaction() as tx:
        before = await tx.verification.policy(agency.id) or "never"
        await tx.verification.set_policy(agency.id, data["policy"])
        await tx.audit.record(
            actor=admin.actor,
            action="agency.set_verification",
            target=str(agency.id),
            outcome="ok",
            client_addr=client_addr(request),
            detail={"before": before, "after": data["policy"]},
        )
    # This process applies it at once; other processes and nodes within their cache's second.
    svc.verification.forget_policy(agency.id)
    return json_response({"policy": data["policy"]})


async def get_retention(request: web.Request) -> web.Response:
    """GET /admin/v1/agencies/{agency_id}/retention: days kept per channel, and whether each is
    the platform default."""
    await admin_auth(request, write=False)
    svc = services(request)
    agency = await svc.agencies.get(agency_id(request))
    return json_response(await svc.privacy.retention(agency.id))


async def put_retention(request: web.Request) -> web.Response:
    """PUT /admin/v1/agencies/{agency_id}/retention ``{"sms": 30, "letter": null}``: days per
    channel, null for the default (audited)."""
    admin = await admin_auth(request, write=True)
    data = await read_json(request)
    if not isinstance(data, dict) or not data:
        raise Problem("wrong_type", 'an object such as {"sms": 30, "letter": 1825}')
    svc = services(request)
    agency = await svc.agencies.get(agency_id(request))
    before = await svc.privacy.retention(agency.id)
    await svc.privacy.set_retention(agency.id, data)
    after = await svc.privacy.retention(agency.id)
    await svc.store.audit.record(
        actor=admin.actor,
        action="agency.set_retention",
        target=str(agency.id),
        outcome="ok",
        client_addr=client_addr(request),
        detail={"before": before, "after": after},
    )
    return json_response(after)


def register(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/v1/agencies/{agency_id}/domains", get_domains)
    r.add_put("/admin/v1/agencies/{agency_id}/domains", put_domains)
    r.add_get("/admin/v1/agencies/{agency_id}/verification", get_verification)
    r.add_put("/admin/v1/agencies/{agency_id}/verification", put_verification)
    r.add_get("/admin/v1/agencies/{agency_id}/retention", get_retention)
    r.add_put("/admin/v1/agencies/{agency_id}/retention", put_retention)
