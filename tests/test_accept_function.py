"""The accept function across a rolling upgrade (migration 0015): a node still on the previous
release calls the JSON entry point, one on this release the binary one. The JSON one converts
its rows and calls the binary one, so both store the same message and keep duplicate
suppression between them, advisory lock included."""

from __future__ import annotations

import asyncio
import base64
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from gateway.sending import tehran_day
from gateway.services import Services
from gateway.store.models import NewMessage
from tests.conftest import agency_jwt
from tests.sms_harness import agency

TEXT = "قبض آب شما صادر شد"


async def _build(services: Services, use: Any, now: datetime) -> NewMessage:
    m, _ = await services.sending.build(use.principal, {"to": "+989121234567", "text": TEXT}, now)
    return m


def _previous_release_row(m: NewMessage, sealed: tuple[int, bytes, bytes], since: datetime) -> Any:
    """One row as the previous release's MessageStore.accept_many sent it (JSON, base64)."""
    return {
        "id": str(m.id),
        "agency_id": str(m.agency_id),
        "key_id": m.key_id,
        "is_test": m.is_test,
        "recipient": m.recipient,
        "sender": m.sender,
        "body": "",
        "encoding": m.encoding,
        "parts": m.parts,
        "priority": m.priority,
        "mandatory": m.mandatory,
        "status": m.status,
        "valid_until": m.valid_until,
        "client_ref": m.client_ref,
        "callback_url": m.callback_url,
        "vt": m.vt,
        "jti": secrets.token_hex(12),
        "expires": since + timedelta(minutes=10),
        "opt_check": True,
        "day": tehran_day(since),
        "quota": 1000,
        "dup_since": since,
        "data_key": sealed[0],
        "body_sealed": base64.b64encode(sealed[1]).decode(),
        "body_mac": base64.b64encode(sealed[2]).decode(),
    }


async def test_previous_and_current_accept_functions_suppress_each_others_duplicates(
    services: Services, client: Any, pool: asyncpg.Pool
) -> None:
    a = await agency(services, client)
    token = agency_jwt(a.key.key.key_id, a.key.secret)
    use = await services.auth.agency_deferred(f"Bearer {token}", "127.0.0.1")
    now = datetime.now(UTC)
    since = now - timedelta(minutes=5)
    old = await _build(services, use, now)
    (sealed,) = await services.store.messages._sealed([old])
    assert sealed is not None
    row = orjson.dumps([_previous_release_row(old, sealed, since)]).decode()

    async with pool.acquire() as conn, conn.transaction():
        # The old node's batch, not yet committed: it holds the (agency, recipient, text) lock.
        codes = await conn.fetchval("SELECT codes FROM payam_accept_messages($1::jsonb)", row)
        assert codes == [None]
        new = await _build(services, use, now)
        current = asyncio.create_task(
            services.store.messages.accept_many(
                [new],
                jtis=[secrets.token_hex(12)],
                expires=[now + timedelta(minutes=10)],
                check_opt_out=[True],
                duplicate_since=[since],
                days=[tehran_day(now)],
                quotas=[1000],
            )
        )
        await asyncio.sleep(0.5)
        assert not current.done()  # waits on the same advisory lock
    codes, _ = await current
    assert codes == ["duplicate_message"]
    n = await pool.fetchval("SELECT count(*) FROM messages WHERE agency_id = $1", a.id)
    assert n == 1
    # The previous release's base64 reached the row as the sealed bytes: it opens.
    stored = await services.store.messages.get(a.id, old.id)
    assert stored is not None
    assert stored.body == old.body
