"""Operator routing: prefix defaults, overridden by the portability table admins load."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.api.app import build_app
from gateway.config import Config, load_config
from gateway.recipients import normalize_msisdn
from gateway.routing import Router
from gateway.services import Services, build_services
from tests.conftest import auth


def _two_operators(base: Config) -> Config:
    ops = [
        {"name": "mci", "prefixes": ["91", "990"]},
        {"name": "irancell", "prefixes": ["93", "90"]},
        {"name": "shatel", "prefixes": ["99810"]},
    ]
    return load_config(
        None, env={"PAYAM_DATABASE_URL": base.database.url, "PAYAM_OPERATORS": json.dumps(ops)}
    )


def test_longest_prefix_default() -> None:
    cfg = load_config(
        None,
        env={
            "PAYAM_OPERATORS": json.dumps(
                [{"name": "mci", "prefixes": ["99"]}, {"name": "shatel", "prefixes": ["99810"]}]
            )
        },
    )
    router = Router(cfg.operators)
    assert router.by_prefix("+989981012345") == "shatel"
    assert router.by_prefix("+989901234567") == "mci"
    assert router.by_prefix("+989351234567") is None


def test_msisdn_spellings() -> None:
    for raw in (
        "09121234567",
        "+989121234567",
        "00989121234567",
        "989121234567",
        "9121234567",
        "۰۹۱۲۱۲۳۴۵۶۷",
        "0912 123 4567",
        "0912-123-4567",
    ):
        assert normalize_msisdn(raw) == "+989121234567", raw
    for raw in ("0912123456", "02188123456", "+4915112345678", "0912123456a", ""):
        assert normalize_msisdn(raw) is None, raw


async def test_portability_load_overrides_prefix(
    services: Services, aiohttp_client: Any, admin_token: str, viewer_token: str
) -> None:
    cfg = _two_operators(services.config)
    svc = build_services(cfg, services.store, services.sealer)
    client: TestClient[Any, Any] = await aiohttp_client(build_app(svc))
    before = await svc.router.route(svc.store, ["+989121234567", "+989351234567"])
    assert before == {"+989121234567": "mci", "+989351234567": "irancell"}
    csv_body = b"msisdn,operator\n09121234567,irancell\n"
    resp = await client.post(
        "/admin/v1/portability",
        data=csv_body,
        headers={**auth(admin_token), "Content-Type": "text/csv"},
    )
    assert (resp.status, (await resp.json())["loaded"]) == (200, 1)
    after = await svc.router.route(svc.store, ["+989121234567", "+989351234567"])
    assert after == {"+989121234567": "irancell", "+989351234567": "irancell"}
    resp = await client.post(
        "/admin/v1/portability",
        headers=auth(admin_token),
        json={"numbers": [{"msisdn": "09121234567", "operator": "acme"}]},
    )
    assert (resp.status, (await resp.json())["code"]) == (422, "invalid_value")
    resp = await client.post(
        "/admin/v1/portability", headers=auth(viewer_token), json={"numbers": []}
    )
    assert resp.status == 403
    entries = await svc.store.audit.list(
        action="portability.load", since=None, limit=5, before_id=None
    )
    assert len(entries) == 1
