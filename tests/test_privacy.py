"""Encryption at rest, KEK rotation, retention and crypto-shredding (issue 7 parts 4-5) against
real PostgreSQL, real HTTP and real SMPP to the simulator.

The end-to-end test sends an SMS and a batch through to DELIVERED, receives a reply (MO), sends
a letter with an attachment, then reads every row of every table as text (bytea as hex): no
text is there in the clear. It stands past retention, runs the purge, reads everything again
and also the files under the test's directory: no number (any form), national code or text is
left, the data keys are gone, and the SLA report and the usage statement are unchanged."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.config import Config, ConfigError, load_config
from gateway.reports import current_month, sla_report, usage_statement
from gateway.sealing import Sealer, write_new_key
from gateway.services import Services, build_services
from gateway.store import Store
from gateway.store.data_keys import DataKeyStore
from gateway.store.db import Executor
from gateway.vault import Keyring, Vault, VaultError, rewrap_all
from tests.conftest import auth
from tests.letters_harness import PDF, PERSON, letter_form, letters_env, metadata
from tests.sms_harness import agency, gateway, start_sim, wait_for

NUMBER = "9121234567"  # every form: +989121234567, 989121234567, 09121234567
OTHER = "9351112233"
SMS_TEXT = "نوبت شما فردا ساعت ۱۰ صبح است، شماره پرونده ZQX-7731"
BATCH_TEXT = "قبض گاز {name} صادر شد، کد رهگیری QWV-5512"
REPLY_TEXT = "ممنون، فردا می‌آیم RPL-8830"
SUBJECT = "ابلاغ برگ تشخیص مالیات LTR-4419"
LETTER_BODY = "برگ تشخیص مالیات عملکرد ۱۴۰۴ پیوست است. BDY-2290"


def _config(base: Config, tmp_path: Path, sim_port: int, **extra: str) -> Config:
    op = {
        "name": "mci",
        "prefixes": ["9"],
        "host": "127.0.0.1",
        "port": sim_port,
        "system_id": "payam",
        "password": "secret",
        "window": 10,
    }
    env = {
        "PAYAM_DATABASE_URL": base.database.url,
        "PAYAM_SECURITY_MASTER_KEY_FILE": base.security.master_key_file,
        "PAYAM_OPERATORS": json.dumps([op]),
        "PAYAM_SMS_RETRY_BASE_SECONDS": "0.05",
        "PAYAM_SMS_QUIET_HOURS_START": "00:00",
        "PAYAM_SMS_QUIET_HOURS_END": "00:00",
        **extra,
    }
    return load_config(None, env=letters_env(tmp_path, env))


def _needles(*texts: str) -> list[tuple[str, str]]:
    """(what, how it could appear in a row's text): plain, and as hex inside a bytea."""
    out = []
    for t in texts:
        out.append((t, t))
        out.append((t, t.encode().hex()))
    return out


async def _dump(pool: asyncpg.Pool) -> dict[str, str]:
    """Every row of every table in the public schema, as PostgreSQL's text of the row."""
    tables = [
        r["tablename"]
        for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    out = {}
    for t in tables:
        rows = await pool.fetch(f'SELECT t::text AS r FROM "{t}" t')
        out[t] = "\n".join(r["r"] for r in rows)
    return out


def _found(dump: dict[str, str], needles: list[tuple[str, str]], skip: set[str]) -> list[str]:
    return [
        f"{what!r} in {table}"
        for table, text in dump.items()
        if table not in skip
        for what, form in needles
        if form.lower() in text.lower()
    ]


def _in_files(root: Path, texts: list[str]) -> list[str]:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files  # the master, evidence and KEK files at least
    return [f"{t!r} in {f}" for f in files for t in texts if t.encode() in f.read_bytes()]


async def _figures(svc: Services) -> tuple[Any, Any]:
    period = current_month()
    sla = await sla_report(svc.store, svc.config, period, None)
    usage = await usage_statement(svc.store, svc.ops.tariffs, period, None)
    return sla, usage


async def test_contents_sealed_then_purged_and_shredded_after_retention(
    config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any, tmp_path: Path
) -> None:
    sim = await start_sim()
    try:
        cfg = _config(config, tmp_path, sim.port)
        svc, client = await gateway(cfg, Store(pool), sealer, aiohttp_client)
        a = await agency(svc, client)
        status, sent = await a.send({"to": "+98" + NUMBER, "text": SMS_TEXT})
        assert status == 202, sent
        resp = await client.post(
            "/v1/batches",
            json={
                "template": BATCH_TEXT,
                "recipients": [
                    {"to": "0" + NUMBER, "params": {"name": "علی"}},
                    {"to": "98" + OTHER, "params": {"name": "رضا"}},
                ],
            },
            headers=a.headers(),
        )
        assert resp.status == 202, await resp.text()

        async def delivered() -> bool:
            n = await pool.fetchval("SELECT count(*) FROM messages WHERE status = 'delivered'")
            return bool(n == 3)

        await wait_for(delivered)
        await sim.inject_mo("98" + NUMBER, "404012", REPLY_TEXT)
        await wait_for(lambda: _count(pool, "replies", 1))
        form = letter_form(
            metadata(subject=SUBJECT, body=LETTER_BODY, notify_sms=False),
            [("برگ.pdf", "application/pdf", PDF)],
        )
        resp = await client.post("/v1/letters", data=form, headers=a.headers())
        assert resp.status == 202, await resp.text()
        letter_id = uuid.UUID((await resp.json())["id"])

        # Read back through the API: the gateway opens what it sealed.
        resp = await client.get(f"/v1/messages/{sent['id']}", headers=a.headers())
        assert (await resp.json())["text"].startswith(SMS_TEXT)  # then the opt-out hint
        resp = await client.get("/v1/replies", headers=a.headers())
        assert (await resp.json())["replies"][0]["text"] == REPLY_TEXT
        letter = await svc.store.letters.get(letter_id)
        assert letter is not None
        assert (letter.subject, letter.body) == (SUBJECT, LETTER_BODY)
        assert (await svc.store.letters.attachments(letter_id))[0].data == PDF

        # At rest: ciphertext only, in every column of every table.
        texts = [SMS_TEXT, "قبض گاز علی صادر شد", REPLY_TEXT, SUBJECT, LETTER_BODY, "ZQX-7731"]
        dump = await _dump(pool)
        assert _found(dump, _needles(*texts), set()) == []
        assert PDF.hex() not in dump["letter_attachments"]
        keys = await pool.fetch("SELECT agency_id, channel, period FROM data_keys")
        assert {(r["agency_id"], r["channel"]) for r in keys} == {(a.id, "sms"), (a.id, "letter")}
        # A sealed value moved to another row does not open (the row id is associated data).
        rows = await pool.fetch("SELECT id, body_sealed FROM messages ORDER BY id LIMIT 2")
        await pool.execute(
            "UPDATE messages SET body_sealed = $2 WHERE id = $1",
            rows[0]["id"],
            rows[1]["body_sealed"],
        )
        with pytest.raises(VaultError):
            await svc.store.messages.get(a.id, rows[0]["id"])
        await pool.execute(
            "UPDATE messages SET body_sealed = $2 WHERE id = $1",
            rows[0]["id"],
            rows[0]["body_sealed"],
        )

        before = await _figures(svc)
        # Retention, then the purge run by the primary process, standing six years later.
        later = datetime.now(UTC) + timedelta(days=6 * 366)
        result = await svc.privacy.purge(later)
        assert (result.messages, result.replies, result.letters) == (3, 1, 1)
        assert result.keys_shredded == 2
        assert await pool.fetchval("SELECT count(*) FROM data_keys") == 0
        assert await _figures(svc) == before  # SLA and usage from PII-free history

        dump = await _dump(pool)
        needles = _needles(NUMBER, OTHER, PERSON, *texts, "علی", "رضا")
        # The directories a sender needs (national code -> number, ported numbers) and the
        # opt-out list are not history: they are kept as long as they are true (docs/TRUST.md).
        assert _found(dump, needles, {"citizens", "portability", "opt_outs"}) == []
        assert PDF.hex() not in dump["letter_attachments"]
        # The files the gateway writes (keys; it logs to stderr, tested in test_log_privacy).
        assert _in_files(tmp_path, [NUMBER, OTHER, PERSON, *texts]) == []
        # History stays: statuses, parts, timings and keyed hashes instead of numbers.
        row = await pool.fetchrow(
            "SELECT recipient, status, parts, final_at FROM messages WHERE id = $1",
            uuid.UUID(sent["id"]),
        )
        assert row["status"] == "delivered"
        assert row["recipient"].startswith("h:")
        assert row["final_at"] is not None
        resp = await client.get(f"/v1/messages/{sent['id']}", headers=a.headers())
        assert resp.status == 200
        assert (await resp.json())["text"] == ""
        # A second pass has nothing left to do.
        again = await svc.privacy.purge(later)
        assert (again.messages, again.replies, again.letters, again.keys_shredded) == (0, 0, 0, 0)
    finally:
        await sim.stop()


async def _count(pool: asyncpg.Pool, table: str, n: int) -> bool:
    return bool(await pool.fetchval(f'SELECT count(*) FROM "{table}"') == n)


async def test_retention_per_agency_and_channel(
    services: Services, client: Any, admin_token: str
) -> None:
    """The admin API sets days per channel; the purge honours one agency's short SMS retention
    without touching another agency's rows or keys."""
    from tests.test_messages_api import _agency

    a = await _agency(services, client)
    b = await _agency(services, client, "404013")
    resp = await client.get(f"/admin/v1/agencies/{a.id}/retention", headers=auth(admin_token))
    assert await resp.json() == {
        "sms": {"days": 30, "default": True},
        "letter": {"days": 1825, "default": True},
    }
    resp = await client.put(
        f"/admin/v1/agencies/{a.id}/retention", json={"sms": 2}, headers=auth(admin_token)
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["sms"] == {"days": 2, "default": False}
    for bad in ({"sms": 0}, {"fax": 3}, {"sms": "30"}, [], {"letter": True}):
        resp = await client.put(
            f"/admin/v1/agencies/{a.id}/retention", json=bad, headers=auth(admin_token)
        )
        assert resp.status == 422, (bad, await resp.text())
    assert (
        await services.store.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'agency.set_retention'"
        )
        == 1
    )
    ids = []
    for x in (a, b):
        status, body = await x.send({"to": "+98" + NUMBER, "text": SMS_TEXT})
        assert status == 202, body
        ids.append(uuid.UUID(body["id"]))
    await services.store.pool.execute(
        "UPDATE messages SET status = 'delivered', final_at = now() WHERE id = ANY($1::uuid[])",
        ids,
    )
    # Ten days on: past A's 2 days, within B's default 30 (and within both keys' months + 2).
    result = await services.privacy.purge(datetime.now(UTC) + timedelta(days=10))
    assert result.messages == 1
    assert result.keys_shredded == 0
    assert (await services.store.messages.get(a.id, ids[0])).body == ""  # type: ignore[union-attr]
    assert (await services.store.messages.get(b.id, ids[1])).body.startswith(SMS_TEXT)  # type: ignore[union-attr]
    # Two months on, A's key (month + 2 days) is shredded, B's (month + 30 days) is not.
    result = await services.privacy.purge(datetime.now(UTC) + timedelta(days=40))
    left = await services.store.pool.fetch("SELECT agency_id FROM data_keys")
    assert [r["agency_id"] for r in left] == [b.id]
    assert result.messages == 1  # B's row is past 30 days now


async def test_kek_rotation_online(
    services: Services,
    client: Any,
    config: Config,
    sealer: Sealer,
    tmp_path: Path,
    aiohttp_client: Any,
) -> None:
    """The procedure of docs/TRUST.md ("Rotation") with gateways running at every step: the new
    KEK added to every process, then made first (it wraps new data keys), re-wrap online, old
    KEK dropped. A process holding only the new KEK reads every text; only the old, none."""
    from gateway.api.app import build_app
    from tests.test_messages_api import Agency, _agency

    a = await _agency(services, client)
    status, body = await a.send({"to": "+98" + NUMBER, "text": SMS_TEXT})
    assert status == 202
    m1 = uuid.UUID(body["id"])
    new = tmp_path / "kek-2.key"
    assert write_new_key(new)
    pool = services.store.pool
    master_id = Keyring.for_platform(sealer).current
    new_id = Keyring.for_platform(sealer, [str(new)]).current

    async def gateway_with(*keks: str) -> tuple[Services, Any]:
        cfg = replace(config, privacy=replace(config.privacy, data_kek_files=tuple(keks)))
        svc = build_services(cfg, Store(pool), sealer)
        return svc, await aiohttp_client(build_app(svc))

    async def text(c: Any, x: Agency, mid: uuid.UUID) -> str:
        resp = await c.get(f"/v1/messages/{mid}", headers=x.headers())
        assert resp.status == 200, await resp.text()
        got: str = (await resp.json())["text"]
        return got

    # Step 1: every process restarted holding the new KEK after the old one.
    _, client1 = await gateway_with("master", str(new))
    assert (await text(client1, a, m1)).startswith(SMS_TEXT)
    # Step 2: the new KEK first; new data keys are wrapped under it. Processes still on step 1
    # read them (they hold both).
    svc2, client2 = await gateway_with(str(new), "master")
    b = await _agency(svc2, client2, "404013")
    status, body = await b.send({"to": "+98" + NUMBER, "text": SMS_TEXT})
    assert status == 202
    m2 = uuid.UUID(body["id"])
    assert await svc2.store.data_keys.kek_counts() == {master_id: 1, new_id: 1}
    assert (await text(client1, b, m2)).startswith(SMS_TEXT)
    # Step 3: payam keys rotate-master, while both keep serving.
    keyring = Keyring.for_platform(sealer, [str(new), "master"])
    assert await rewrap_all(DataKeyStore(Executor(pool)), keyring) == 1
    assert await svc2.store.data_keys.kek_counts() == {new_id: 2}
    for c in (client1, client2):
        assert (await text(c, a, m1)).startswith(SMS_TEXT)
        assert (await text(c, b, m2)).startswith(SMS_TEXT)
    # Step 4: the old KEK dropped: a fresh process reads everything.
    _, client4 = await gateway_with(str(new))
    assert (await text(client4, a, m1)).startswith(SMS_TEXT)
    assert (await text(client4, b, m2)).startswith(SMS_TEXT)
    # A fresh process with only the old KEK cannot unwrap any more.
    old_only = Vault(DataKeyStore(Executor(pool)), Keyring.for_platform(sealer), sealer)
    ids = [r["id"] for r in await pool.fetch("SELECT id FROM data_keys")]
    with pytest.raises(VaultError, match="does not hold"):
        await old_only.load(ids)


def test_missing_kek_file_fails_fast_naming_the_key(
    config: Config, pool: asyncpg.Pool, sealer: Sealer, tmp_path: Path
) -> None:
    cfg = replace(
        config, privacy=replace(config.privacy, data_kek_files=(str(tmp_path / "gone.key"),))
    )
    with pytest.raises(ConfigError, match=r"privacy\.data_kek_files"):
        build_services(cfg, Store(pool), sealer)
