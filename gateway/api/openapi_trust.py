"""OpenAPI paths of the citizen-trust routes (docs/TRUST.md), merged into gateway/api/openapi.py."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi import ADMIN_R, ADMIN_W, AGENCY_ID, STR, _body, _obj, _ok, _op

_DOMAINS = _obj(
    {
        "domains": {
            "type": "array",
            "items": STR,
            "maxItems": 100,
            "description": "bare domain names, Unicode or punycode; stored in punycode. Links "
            "in the agency's SMS may point only to these and their subdomains.",
        }
    },
    ["domains"],
)


def trust_paths() -> dict[str, Any]:
    return {
        "/admin/v1/agencies/{agency_id}/domains": {
            "get": _op(
                "The agency's registered link domains",
                _ok("domains", _DOMAINS),
                security="adminToken",
                params=[AGENCY_ID],
                errors=ADMIN_R,
            ),
            "put": _op(
                "Replace the agency's registered link domains (audited)",
                _ok("domains now registered", _DOMAINS),
                security="adminToken",
                params=[AGENCY_ID],
                body=_body(_DOMAINS),
                errors=ADMIN_W,
            ),
        },
    }
