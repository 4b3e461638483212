"""Reading sealed rows in tests: texts are encrypted at rest (gateway/vault.py), so a test that
looks at a stored text opens it the way the store does."""

from __future__ import annotations

from typing import Any

from gateway.store import Store
from gateway.store.messages import open_body


async def opened(store: Store, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of ``sql`` (which must select the messages columns id, data_key, body_sealed and
    body) with ``body`` opened."""
    rows = await store.pool.fetch(sql, *args)
    if store.vault is not None:
        await store.vault.load({r["data_key"] for r in rows})
    return [{**dict(r), "body": open_body(store.vault, r)} for r in rows]


async def opened_one(store: Store, sql: str, *args: Any) -> dict[str, Any]:
    rows = await opened(store, sql, *args)
    assert rows, sql
    return rows[0]
