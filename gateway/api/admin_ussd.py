"""Admin routes for agencies' USSD menus (``/admin/v1/agencies/{agency_id}/ussd-menu``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.ussd.menus import Limits, MenuError, load_menu
from gateway.api.admin_agencies import agency_id
from gateway.api.http import admin_auth, client_addr, json_response, read_json, services
from gateway.errors import Problem
from gateway.store.ussd import StoredMenu


def _view(menu: StoredMenu) -> dict[str, Any]:
    return {
        "agency_id": str(menu.agency_id),
        "version": menu.version,
        "updated_by": menu.updated_by,
        "updated_at": menu.updated_at.isoformat(),
        "menu": menu.definition,
    }


async def put_menu(request: web.Request) -> web.Response:
    """PUT /admin/v1/agencies/{agency_id}/ussd-menu: validate and store the agency's menu tree;
    an invalid one is refused with every problem listed by screen id."""
    admin = await admin_auth(request, write=True)
    body = await read_json(request)
    svc = services(request)
    agency = await svc.agencies.get(agency_id(request))
    cfg = svc.config.ussd
    try:
        menu = load_menu(body, Limits(cfg.page_chars_ucs2, cfg.page_chars_gsm7))
    except MenuError as exc:
        first = exc.issues[0]
        raise Problem(
            "invalid_ussd_menu",
            f"screen {first.screen!r}: {first.error}",
            screen=first.screen,
            errors=[i.as_dict() for i in exc.issues],
        ) from None
    async with svc.store.transaction() as tx:
        stored = await tx.ussd.put_menu(agency.id, body, admin.actor)
        await tx.audit.record(
            actor=admin.actor,
            action="ussd.menu_put",
            target=str(agency.id),
            outcome="ok",
            client_addr=client_addr(request),
            detail={"version": stored.version, "screens": len(menu.screens)},
        )
    return json_response(_view(stored))


async def get_menu(request: web.Request) -> web.Response:
    """GET /admin/v1/agencies/{agency_id}/ussd-menu: the menu as last uploaded."""
    await admin_auth(request, write=False)
    svc = services(request)
    agency = await svc.agencies.get(agency_id(request))
    stored = await svc.store.ussd.get_menu(agency.id)
    if stored is None:
        raise Problem("not_found", "this agency has no USSD menu yet")
    return json_response(_view(stored))


def register(app: web.Application) -> None:
    app.router.add_put("/admin/v1/agencies/{agency_id}/ussd-menu", put_menu)
    app.router.add_get("/admin/v1/agencies/{agency_id}/ussd-menu", get_menu)
