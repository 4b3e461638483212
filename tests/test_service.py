"""Service plumbing: readiness while draining, metrics names, client address, JSON logs."""

from __future__ import annotations

import gc
import json
import logging
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.api.app import build_app
from gateway.config import Config, LogConfig
from gateway.logs import JsonFormatter, setup_logging
from gateway.sealing import Sealer
from gateway.server import create_app
from gateway.services import Services, build_services
from tests.conftest import auth


async def test_readyz_turns_503_when_draining(services: Services, aiohttp_client: Any) -> None:
    app = build_app(services)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    resp = await client.get("/readyz")
    assert (resp.status, (await resp.json())["database"]) == (200, "up")
    await app.shutdown()  # what SIGTERM triggers first
    resp = await client.get("/readyz")
    assert (resp.status, (await resp.json())["status"]) == (503, "draining")
    assert (await client.get("/healthz")).status == 200


async def test_readyz_503_when_database_unreachable(
    services: Services, aiohttp_client: Any
) -> None:
    await services.store.pool.close()
    client: TestClient[Any, Any] = await aiohttp_client(build_app(services))
    resp = await client.get("/readyz")
    assert (resp.status, (await resp.json())["database"]) == (503, "down")


async def test_metrics_use_route_templates_not_raw_paths(client: Any, admin_token: str) -> None:
    await client.get(
        "/admin/v1/agencies/00000000-0000-0000-0000-000000000001", headers=auth(admin_token)
    )
    await client.get("/admin/v1/agencies", headers=auth("pa_wrong"))
    text = await (await client.get("/metrics")).text()
    assert 'route="/admin/v1/agencies/{agency_id}"' in text
    assert "00000000-0000-0000-0000-000000000001" not in text
    assert "payam_store_query_duration_seconds_bucket" in text
    assert 'payam_auth_failures_total{reason="unknown_admin_token"}' in text


async def test_forwarded_for_believed_only_from_trusted_proxy(
    services: Services, aiohttp_client: Any
) -> None:
    hdr = {"X-Forwarded-For": "203.0.113.9", **auth("pa_unknown")}
    plain: TestClient[Any, Any] = await aiohttp_client(build_app(services))
    await plain.get("/admin/v1/agencies", headers=hdr)
    cfg = replace(
        services.config, http=replace(services.config.http, trusted_proxies=("127.0.0.1",))
    )
    proxied_services = build_services(cfg, services.store, services.sealer)
    proxied: TestClient[Any, Any] = await aiohttp_client(build_app(proxied_services))
    await proxied.get("/admin/v1/agencies", headers=hdr)
    entries = await services.store.audit.list(
        action="auth.refused", since=None, limit=10, before_id=None
    )
    assert [e.client_addr for e in reversed(entries)] == ["127.0.0.1", "203.0.113.9"]


def test_json_log_lines() -> None:
    record = logging.LogRecord("gateway.x", logging.INFO, __file__, 1, "sent %s", ("id-1",), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "sent id-1"
    assert line["level"] == "INFO"
    assert line["logger"] == "gateway.x"
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging(LogConfig(level="WARNING", json=True))
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        assert root.level == logging.WARNING
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


async def test_startup_objects_are_frozen_out_of_the_collector(
    config: Config, database_url: str, sealer: Sealer, pool: Any, aiohttp_client: Any
) -> None:
    """The real app factory (gateway/server.py) freezes what startup built, as its last step,
    so that full collections under load do not walk it."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    # ``pool``: the test database, migrated. HTTP only: no dispatchers or binds here.
    app = await create_app(config, database_url, sealer, background=False)
    try:
        client = await aiohttp_client(app)
        assert gc.get_freeze_count() > 1000
        assert (await client.get("/healthz")).status == 200
    finally:
        gc.unfreeze()
