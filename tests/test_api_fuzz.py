"""Hostile input, HTTP API (issue 9, item 5): schemathesis generates requests for every operation
of /v1/openapi.json and sends them, authenticated, to ``payam serve`` as a real process. No
answer may be a 5xx, and every answer must conform to the spec (status code, content type,
headers, body schema). A bounded number of examples per operation in CI
(PAYAM_FUZZ_EXAMPLES raises it for longer runs).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.config import load_config
from gateway.sealing import Sealer
from gateway.services import build_services
from gateway.store import Store
from tests.gateway_process import GatewayProcess, free_port, gateway_env
from tests.reliability_setup import Tenant, make_tenant

EXAMPLES = int(os.environ.get("PAYAM_FUZZ_EXAMPLES", "8"))
STATUSES: Counter[tuple[str, int]] = Counter()
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


async def _setup(db_url: str, key_file: Path) -> tuple[Tenant, str]:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    try:
        tenant = await make_tenant(pool, db_url, key_file)
        cfg = load_config(
            None,
            env={"PAYAM_DATABASE_URL": db_url, "PAYAM_SECURITY_MASTER_KEY_FILE": str(key_file)},
        )
        services = build_services(cfg, Store(pool), Sealer.from_file(key_file))
        admin = await services.credentials.create_admin_token(
            name="fuzz", role="admin", actor="test"
        )
        return tenant, admin.value
    finally:
        await pool.close()


def test_every_operation_fuzzed_no_5xx_and_conforms(database_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    tenant, admin_token = asyncio.run(_setup(database_url, key_file))
    gw = GatewayProcess(
        gateway_env(database_url, str(key_file), free_port(), []), tmp_path / "gateway.log"
    )
    gw.start()
    failures: list[str] = []
    try:
        asyncio.run(gw.wait_ready())
        schema = schemathesis.openapi.from_url(f"{gw.url}/v1/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) > 20
        for op in operations:
            _fuzz(op, gw.url, tenant, admin_token, failures)
    finally:
        gw.stop()
    print(
        f"\nRELIABILITY api-fuzz: {sum(STATUSES.values())} requests, statuses "
        f"{dict(Counter(status for _, status in STATUSES.elements()))}"
    )
    assert failures == [], "\n".join(failures[:20])
    assert "unhandled error" not in gw.log_tail(200_000)


def _fuzz(op: Any, base_url: str, tenant: Tenant, admin_token: str, failures: list[str]) -> None:
    seen: set[str] = set()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy())
    def run(case: Any) -> None:
        # Agency JWTs are single-use (jti), so every request gets a fresh one.
        auth = (
            {"Authorization": f"Bearer {admin_token}"}
            if op.path.startswith("/admin/")
            else tenant.headers()
        )
        response = case.call(base_url=base_url, headers=auth, timeout=15)
        label = f"{op.method.upper()} {op.path}"
        STATUSES[(label, response.status_code)] += 1
        if response.status_code >= 500:
            key = f"{label} -> {response.status_code}"
            if key not in seen:
                seen.add(key)
                failures.append(f"{key}: {response.text[:300]} (body {case.body!r:.200})")
            return
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:  # a conformance failure: keep the first of each kind
            key = f"{label}: {type(exc).__name__}: {str(exc)[:400]}"
            if key[:200] not in seen:
                seen.add(key[:200])
                failures.append(key)

    run()
