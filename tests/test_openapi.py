"""The OpenAPI document covers every route the app serves, and nothing else."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from gateway.api.app import build_app
from gateway.api.openapi import spec
from gateway.errors import CATALOGUE
from gateway.services import Services


def _routes(services: Services) -> set[tuple[str, str]]:
    app = build_app(services)
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue  # aiohttp adds HEAD for every GET
        assert route.resource is not None
        found.add((route.method.lower(), route.resource.canonical))
    return found


def test_every_route_is_documented_and_every_documented_route_exists(
    services: Services,
) -> None:
    documented = {(method, path) for path, ops in spec()["paths"].items() for method in ops}
    served = _routes(services)
    assert served - documented == set(), "undocumented routes"
    assert documented - served == set(), "documented routes that do not exist"


def test_document_is_valid_openapi_3_1() -> None:
    doc: Any = spec()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_problem_codes_are_the_catalogue() -> None:
    assert spec()["components"]["schemas"]["Problem"]["properties"]["code"]["enum"] == sorted(
        CATALOGUE
    )


async def test_served_at_v1_openapi_json(client: Any) -> None:
    resp = await client.get("/v1/openapi.json")
    assert resp.status == 200
    assert (await resp.json())["paths"].keys() == spec()["paths"].keys()
