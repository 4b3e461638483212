"""Shared test harness: a real PostgreSQL database per test session, emptied before each test.

The server comes from $PAYAM_TEST_DATABASE_URL (an admin URL), else the machine's PostgreSQL on
127.0.0.1:5432, else an embedded one under var/test-pg. Each session (each xdist worker) creates
its own database and drops it at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest
from aiohttp.test_utils import TestClient

from gateway.api.app import build_app
from gateway.config import Config, NumberingConfig, load_config
from gateway.credentials import IssuedKey
from gateway.embedded_pg import EmbeddedPostgres
from gateway.identity import legal_id_check_digit
from gateway.persian import TEHRAN
from gateway.sealing import Sealer
from gateway.services import Services, build_services
from gateway.store import Store
from gateway.store.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _admin_url() -> str:
    url = os.environ.get("PAYAM_TEST_DATABASE_URL")
    if url:
        return url
    if _reachable("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    pg = EmbeddedPostgres(ROOT / "var" / "test-pg", 54339)
    return pg.ensure_running().rsplit("/", 1)[0] + "/postgres"


@pytest.fixture(scope="session")
def admin_url() -> str:
    return _admin_url()


@pytest.fixture(scope="session")
def database_url(admin_url: str) -> Iterator[str]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"payam_test_{worker}_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        conn = await asyncpg.connect(_with_db(admin_url, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    yield _with_db(admin_url, name)
    asyncio.run(drop())


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


_TABLES = (
    "agencies, api_keys, jwt_replay, admin_tokens, numbering, audit_log, batches, messages, "
    "queue, message_events, message_parts, receipts_inbox, idempotency_keys, opt_outs, "
    "daily_usage, portability, citizens, replies, mo_fragments, callbacks, ussd_menus, "
    "ussd_sessions, ussd_pushes, ebox_otp_sent"
    # issue 8 (operators' view): platform flags and USSD usage counts.
    ", ops_flags, agency_sla, ussd_usage, api_availability"
    # issue 7 (trust): the audit chain, verification codes.
    ", audit_chain_head, audit_checkpoints, verification_codes, "
    "verification_attempts, agency_verification"
    # issue 7 (encryption at rest, retention): data keys, per-agency retention.
    ", data_keys, retention_settings"
    # issue 6 (app channel): providers, keys, registrations, app deliveries.
    ", app_providers, app_provider_keys, app_registrations, app_deliveries"
)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(database_url, min_size=1, max_size=12)
    assert p is not None
    # The audit tables refuse TRUNCATE (append-only): replica mode skips their triggers.
    await p.execute(
        "SET session_replication_role = replica; "
        f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE; "
        "SET session_replication_role = DEFAULT"
    )
    yield p
    await p.close()


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Config:
    return load_config(
        None,
        env={
            "PAYAM_DATABASE_URL": database_url,
            "PAYAM_SECURITY_MASTER_KEY_FILE": str(tmp_path / "master.key"),
            "PAYAM_AUTH_ADMIN_TOKEN_FILE": str(tmp_path / "admin.token"),
        },
    )


def with_numbering(cfg: Config, **changes: Any) -> Config:
    numbering: NumberingConfig = replace(cfg.numbering, **changes)
    return replace(cfg, numbering=numbering)


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(secrets.token_bytes(32))


@pytest.fixture
def services(config: Config, pool: asyncpg.Pool, sealer: Sealer) -> Services:
    return build_services(config, Store(pool), sealer)


@pytest.fixture
async def client(services: Services, aiohttp_client: Any) -> TestClient[Any, Any]:
    app = build_app(services)
    c: TestClient[Any, Any] = await aiohttp_client(app)
    return c


@pytest.fixture
async def admin_token(services: Services) -> str:
    issued = await services.credentials.create_admin_token(name="ops", role="admin", actor="test")
    return issued.value


@pytest.fixture
async def viewer_token(services: Services) -> str:
    issued = await services.credentials.create_admin_token(
        name="watcher", role="viewer", actor="test"
    )
    return issued.value


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


_seq = iter(range(10**6))


async def clear_of_tehran_midnight(margin: float = 10.0) -> None:
    """Wait until past midnight in Tehran when it is less than ``margin`` seconds away: the
    daily quota is per Tehran day by design, so a test that sends and then reads the day's
    usage would see the day change under it."""
    now = datetime.now(TEHRAN)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), TEHRAN)
    left = (midnight - now).total_seconds()
    if left < margin:
        await asyncio.sleep(left + 0.5)


def legal_id(n: int | None = None) -> str:
    """A fresh legal-entity ID with a valid check digit."""
    first10 = f"10{(n if n is not None else next(_seq) + int(time.time()) % 10**6):08d}"
    return first10 + legal_id_check_digit(first10)


def agency_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name_fa": "سازمان امور مالیاتی",
        "name_en": "Iranian National Tax Administration",
        "legal_id": legal_id(),
        "contact_email": "ops@tax.gov.ir",
        "tps": 100,
        "daily_fragment_quota": 500_000,
        "link_domains": ["tax.gov.ir"],
        "callback_url": "https://tax.gov.ir/payam/callback",
    }
    body.update(overrides)
    return body


async def make_agency(services: Services, **overrides: Any) -> uuid.UUID:
    agency, _ = await services.agencies.create(agency_body(**overrides), actor="test")
    return agency.id


async def make_key(services: Services, agency_id: uuid.UUID, key_type: str = "live") -> IssuedKey:
    return await services.credentials.create_key(
        agency_id, name="integration", key_type=key_type, actor="test"
    )


def agency_jwt(
    key_id: str, secret: str, *, iat: float | None = None, jti: str | None = None, **extra: Any
) -> str:
    claims: dict[str, Any] = {
        "iss": key_id,
        "iat": int(time.time() if iat is None else iat),
        "jti": jti or secrets.token_hex(16),
        **extra,
    }
    return jwt.encode(claims, secret, algorithm="HS256")
