"""The calling agency's own view: ``GET /v1/me``."""

from __future__ import annotations

from aiohttp import web

from gateway.api.http import agency_auth, json_response, services
from gateway.api.views import agency_view, allocation_view


async def me(request: web.Request) -> web.Response:
    """GET /v1/me: the agency behind the key, its numbers, codes, masks and limits."""
    principal = await agency_auth(request)
    agency = principal.agency
    held = await services(request).store.numbering.for_agency(agency.id, include_released=False)
    view = agency_view(agency)
    return json_response(
        {
            "agency": {k: view[k] for k in ("id", "name_fa", "name_en", "legal_id", "status")},
            "key": {"key_id": principal.key.key_id, "key_type": principal.key.key_type},
            "test_mode": principal.is_test,
            "limits": {"tps": agency.tps, "daily_fragment_quota": agency.daily_fragment_quota},
            "numbers": [allocation_view(a) for a in held],
            "link_domains": list(agency.link_domains),
            "callback_url": agency.callback_url,
        }
    )


def register(app: web.Application) -> None:
    app.router.add_get("/v1/me", me)
