"""The app and portal channel (issue 6), end to end: real HTTP (gateway and the app provider
simulator), real PostgreSQL, real SMPP to the SMSC simulator for the SMS fallback."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest

from adapters.app.simulator import AppSimSettings, AppSimulator
from adapters.sms.simulator import SmscSimulator
from gateway.app_channel.worker import AppPushWorker
from gateway.config import AppConfig, Config
from gateway.metrics import scrape
from gateway.sealing import Sealer
from gateway.services import Services
from gateway.store import Store
from tests.conftest import agency_jwt, auth
from tests.sms_harness import agency, gateway, sms_config, start_sim, wait_for
from tests.test_messages_api import Agency

CITIZEN = "0076229645"
MSISDN = "+989121234567"
OTHER_CITIZEN = "0012345679"
OTHER_MSISDN = "+989121112233"
CONFIRM = 1.5


@dataclass
class Env:
    sim: SmscSimulator
    services: Services
    client: Any
    admin: str
    tax: Agency
    app: AppSimulator  # provider "dowlat-hamrah"
    provider_id: str

    async def provider(self, name: str, push_url: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        resp = await self.client.post(
            "/admin/v1/app-providers",
            json={"name": name, "push_url": push_url, **fields},
            headers=auth(self.admin),
        )
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        return body["provider"]["id"], body

    async def key(self, provider_id: str) -> dict[str, Any]:
        resp = await self.client.post(
            f"/admin/v1/app-providers/{provider_id}/keys",
            json={"name": "prod"},
            headers=auth(self.admin),
        )
        assert resp.status == 201, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    async def simulator(self, name: str, **fields: Any) -> tuple[AppSimulator, str]:
        app = AppSimulator(
            AppSimSettings(gateway_url=str(self.client.make_url("")), key_id="", key_secret="")
        )
        await app.start()
        pid, created = await self.provider(name, app.push_url, **fields)
        key = await self.key(pid)
        app.settings.key_id = key["key"]["key_id"]
        app.settings.key_secret = key["secret"]
        app.settings.push_secret = created["push_secret"]
        return app, pid

    async def history(self, message_id: str) -> list[dict[str, Any]]:
        status, view = await self.tax.get(message_id)
        assert status == 200
        return list(view["history"])

    async def status(self, message_id: str) -> str:
        return str((await self.tax.get(message_id))[1]["status"])


@pytest.fixture
async def env(
    config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any
) -> AsyncIterator[Env]:
    sim = await start_sim()
    cfg = sms_config(config, sim.port)
    cfg = replace(
        cfg,
        app=AppConfig(
            confirm_timeout_seconds=CONFIRM,
            push_timeout_seconds=0.5,
            retry_base_seconds=0.1,
            retry_max_seconds=0.3,
            poll_seconds=0.05,
        ),
    )
    services, client = await gateway(cfg, Store(pool), sealer, aiohttp_client)
    admin = await services.credentials.create_admin_token(name="ops", role="admin", actor="t")
    tax = await agency(services, client, callback_url="https://tax.gov.ir/payam/callback")
    await services.store.messages.put_citizens([(CITIZEN, MSISDN), (OTHER_CITIZEN, OTHER_MSISDN)])
    e = Env(sim, services, client, admin.value, tax, None, "")  # type: ignore[arg-type]
    e.app, e.provider_id = await e.simulator("dowlat-hamrah")
    sims = [e.app]
    e._extra = sims  # type: ignore[attr-defined]
    yield e
    for s in sims:
        await s.stop()
    await sim.stop()


async def _send(env: Env, **body: Any) -> dict[str, Any]:
    status, view = await env.tax.send({"text": "قبض مالیات شما صادر شد", **body})
    assert status == 202, view
    return view


async def test_push_delivered_and_confirmed(env: Env) -> None:
    status, _ = await env.app.register(CITIZEN, "acct-42")
    assert status == 200
    view = await _send(env, national_code=CITIZEN, channels=["app", "sms"])
    mid = view["id"]
    await wait_for(lambda: _is(env, mid, "delivered"), timeout=5)
    [push] = env.app.pushes
    # The push names the provider's own account id; the national code never leaves.
    assert push["id"] == mid
    assert push["citizen_ref"] == "acct-42"
    assert "قبض مالیات" in push["text"]
    assert CITIZEN not in str(push)
    assert push["agency"]["name_en"] == "Iranian National Tax Administration"
    assert env.app.refused_signatures == 0
    assert env.app.settings.push_secret
    history = await env.history(mid)
    assert history[-1]["status"] == "delivered"
    assert history[-1]["detail"]["channel"] == "app"
    assert history[-1]["detail"]["provider"] == "dowlat-hamrah"
    await asyncio.sleep(0.3)
    assert env.sim.received == []  # no SMS
    pool = env.services.store.pool
    assert (
        await pool.fetchval("SELECT count(*) FROM queue WHERE message_id = $1", uuid.UUID(mid)) == 0
    )
    # Only an HMAC of the national code is stored.
    stored = await pool.fetch("SELECT citizen_key::text AS k, citizen_ref FROM app_registrations")
    assert len(stored) == 1
    assert CITIZEN not in stored[0]["k"]
    metrics = scrape().decode()
    assert (
        f'payam_app_pushes_total{{agency="{env.tax.id}",outcome="ok",provider="dowlat-hamrah"}}'
        in metrics
    )
    assert "payam_app_confirmations_total{" in metrics
    # A callback for the final status went out like an SMS's.
    assert await pool.fetchval("SELECT count(*) FROM callbacks WHERE kind = 'message.status'") == 1


async def _is(env: Env, mid: str, status: str) -> bool:
    return await env.status(mid) == status


async def test_provider_down_falls_back_to_sms_once_within_timeout(env: Env) -> None:
    await env.app.register(CITIZEN)
    env.app.settings.mode = "fail"
    # A second node's push worker on the same database races the gateway's own.
    s = env.services
    other = AppPushWorker(s.store, s.app_channel, s.app_providers, s.config.app, s.config.sms)  # type: ignore[arg-type]
    task = asyncio.create_task(other.run())
    try:
        started = time.monotonic()
        view = await _send(env, national_code=CITIZEN, channels=["app", "sms"])
        mid = view["id"]
        await wait_for(lambda: _received(env, 1), timeout=CONFIRM + 5)
        took = time.monotonic() - started
        await wait_for(lambda: _is(env, mid, "delivered"), timeout=5)
        await asyncio.sleep(1.0)  # any second SMS would have gone by now
    finally:
        other.stop()
        await task
    print(f"\nAPP fallback: SMS received {took:.2f} s after accept (timeout {CONFIRM} s)")
    assert CONFIRM <= took < CONFIRM + 1.5, took
    assert [m.destination for m in env.sim.received] == [MSISDN.lstrip("+")]
    statuses = [h["status"] for h in await env.history(mid)]
    assert statuses.count("app_fallback") == 1
    assert statuses.index("app_fallback") < statuses.index("submitted")
    fallback = next(h for h in await env.history(mid) if h["status"] == "app_fallback")
    assert fallback["detail"] == {
        "channel": "app",
        "provider": "dowlat-hamrah",
        "reason": "not_confirmed",
        "next": "sms",
    }
    row = await s.store.pool.fetchrow("SELECT state, attempts FROM app_deliveries")
    assert row["state"] == "fallen_back"
    assert row["attempts"] >= 2
    assert env.app.pushes == []


async def _received(env: Env, n: int) -> bool:
    return len(env.sim.received) >= n


async def test_no_registration_sends_sms_directly(env: Env) -> None:
    view = await _send(env, national_code=CITIZEN, channels=["app", "sms"])
    by_number = await _send(env, to="09121112233", channels=["app", "sms"], text="دوم")
    for mid in (view["id"], by_number["id"]):
        await wait_for(lambda mid=mid: _is(env, mid, "delivered"), timeout=5)
    skipped = [h for h in await env.history(view["id"]) if h["status"] == "app_skipped"]
    assert skipped[0]["detail"] == {"channel": "app", "reason": "not_registered", "next": "sms"}
    skipped = [h for h in await env.history(by_number["id"]) if h["status"] == "app_skipped"]
    assert skipped[0]["detail"]["reason"] == "no_national_code"
    assert len(env.sim.received) == 2
    assert env.app.pushes == []
    # The app alone: refused at once, nothing written.
    before = await env.tax.messages()
    status, problem = await env.tax.send({"text": "x", "national_code": CITIZEN, "channel": "app"})
    assert (status, problem["code"]) == (409, "app_not_registered")
    status, problem = await env.tax.send({"text": "x", "to": "09121234567", "channel": "app"})
    assert (status, problem["code"]) == (422, "app_needs_national_code")
    status, problem = await env.tax.send(
        {"text": "x", "national_code": CITIZEN, "channels": ["sms", "app"]}
    )
    assert (status, problem["code"]) == (422, "invalid_value")
    assert await env.tax.messages() == before


async def test_app_only_not_confirmed_is_undeliverable(env: Env) -> None:
    await env.app.register(CITIZEN)
    env.app.settings.mode = "fail"
    view = await _send(env, national_code=CITIZEN, channel="app")
    await wait_for(lambda: _is(env, view["id"], "undeliverable"), timeout=CONFIRM + 4)
    _, got = await env.tax.get(view["id"])
    assert got["error_code"] == "app_not_confirmed"
    await asyncio.sleep(0.3)
    assert env.sim.received == []


async def test_read_receipt_and_pull_inbox_with_cursor(env: Env) -> None:
    await env.app.register(CITIZEN)
    ids = []
    for i in range(3):
        view = await _send(env, national_code=CITIZEN, channel="app", text=f"اعلان {i}")
        ids.append(view["id"])
    for mid in ids:
        await wait_for(lambda mid=mid: _is(env, mid, "delivered"), timeout=5)
    status, page = await env.app.inbox(CITIZEN, limit=2)
    assert status == 200
    assert [n["id"] for n in page["notices"]] == ids[:2]
    status, rest = await env.app.inbox(CITIZEN, limit=2, cursor=page["next_cursor"])
    assert [n["id"] for n in rest["notices"]] == ids[2:]
    assert rest["next_cursor"] is None
    assert page["notices"][0]["text"].startswith("اعلان 0")
    status, read = await env.app.read(CITIZEN, ids[0])
    assert status == 200
    assert read["read_at"]
    status, again = await env.app.read(CITIZEN, ids[0])
    assert again["read_at"] == read["read_at"]  # idempotent
    history = await env.history(ids[0])
    reads = [h for h in history if h["status"] == "read"]
    assert len(reads) == 1
    assert reads[0]["detail"] == {"channel": "app", "provider": "dowlat-hamrah"}
    _, page = await env.app.inbox(CITIZEN)
    assert page["notices"][0]["read_at"] == read["read_at"]
    assert (
        await env.services.store.pool.fetchval(
            "SELECT count(*) FROM callbacks WHERE kind = 'message.read'"
        )
        == 1
    )
    # Signed out: no pushes any more, and the inbox is closed to the provider.
    assert (await env.app.sign_out(CITIZEN))[0] == 200
    status, problem = await env.app.inbox(CITIZEN)
    assert (status, problem["code"]) == (404, "not_registered_here")


async def test_reply_from_app_reaches_agency(env: Env) -> None:
    await env.app.register(CITIZEN)
    view = await _send(env, national_code=CITIZEN, channels=["app", "sms"])
    await wait_for(lambda: _is(env, view["id"], "delivered"), timeout=5)
    status, reply = await env.app.reply(CITIZEN, view["id"], "پرداخت کردم")
    assert status == 201, reply
    resp = await env.client.get("/v1/replies", headers=env.tax.headers())
    [got] = (await resp.json())["replies"]
    assert got["channel"] == "app"
    assert got["text"] == "پرداخت کردم"
    assert got["in_reply_to"] == view["id"]
    assert got["operator"] == "app:dowlat-hamrah"
    assert got["to"] == "404012"
    assert (
        await env.services.store.pool.fetchval(
            "SELECT count(*) FROM callbacks WHERE kind = 'reply.received'"
        )
        == 1
    )


async def test_provider_a_cannot_read_provider_b_citizens(env: Env) -> None:
    other, _ = await env.simulator("portal-b")
    env._extra.append(other)  # type: ignore[attr-defined]
    await env.app.register(CITIZEN)
    await other.register(OTHER_CITIZEN)
    view = await _send(env, national_code=CITIZEN, channel="app")
    await wait_for(lambda: _is(env, view["id"], "delivered"), timeout=5)
    status, problem = await other.inbox(CITIZEN)
    assert (status, problem["code"]) == (404, "not_registered_here")
    status, problem = await other.read(CITIZEN, view["id"])
    assert (status, problem["code"]) == (404, "unknown_notice")
    status, problem = await other.reply(CITIZEN, view["id"], "hi")
    assert (status, problem["code"]) == (404, "unknown_notice")
    # Even when B knows a citizen of its own, A's notice to another citizen stays A's.
    status, problem = await other.read(OTHER_CITIZEN, view["id"])
    assert (status, problem["code"]) == (404, "unknown_notice")
    assert other.pushes == []
    assert len(env.app.pushes) == 1
    # Restricted to other agencies: B is never chosen for the tax agency's notices.
    await other.register(CITIZEN)
    resp = await env.client.patch(
        f"/admin/v1/app-providers/{env.provider_id}",
        json={"agencies": [str(uuid.uuid4())]},
        headers=auth(env.admin),
    )
    assert resp.status == 200
    view = await _send(env, national_code=CITIZEN, channel="app", text="دوم")
    await wait_for(lambda: _is(env, view["id"], "delivered"), timeout=5)
    assert len(other.pushes) == 1
    assert len(env.app.pushes) == 1


async def test_bad_provider_credentials_refused(env: Env) -> None:
    s = env.app.settings
    body = {"national_code": CITIZEN, "citizen_ref": "acct-1"}

    async def post(token: str, path: str = "/app/v1/registrations") -> tuple[int, str]:
        resp = await env.client.post(path, json=body, headers=auth(token))
        return resp.status, (await resp.json(content_type=None)).get("code", "")

    assert await post(agency_jwt(s.key_id, s.key_secret, iat=time.time() - 3600)) == (
        401,
        "token_expired",
    )
    assert await post(agency_jwt(s.key_id, s.key_secret, exp=int(time.time()) - 1)) == (
        401,
        "token_expired",
    )
    assert await post(agency_jwt(s.key_id, "x" * 43)) == (401, "bad_signature")
    # An agency's key is no provider credential, and a provider's key no agency credential.
    tax_key = env.tax.key
    assert await post(agency_jwt(tax_key.key.key_id, tax_key.secret)) == (
        401,
        "agency_key_on_app_route",
    )
    assert await post(agency_jwt(s.key_id, s.key_secret), "/v1/messages") == (401, "unknown_key")
    assert await post(env.admin) == (401, "malformed_token")
    # Malformed tokens, shared with agency routes (gateway.auth.parse_hs256).
    assert await post("not.a.jwt") == (401, "malformed_token")
    now = int(time.time())
    claims = {"iss": s.key_id, "iat": now, "jti": "alg-none"}
    assert await post(jwt.encode(claims, None, algorithm="none")) == (
        401,
        "unsupported_algorithm",
    )
    assert await post(
        jwt.encode({"iat": now, "jti": "no-iss"}, s.key_secret, algorithm="HS256")
    ) == (401, "missing_claim")
    replayed = agency_jwt(s.key_id, s.key_secret, jti="once")
    assert (await post(replayed))[0] == 200
    assert await post(replayed) == (401, "token_replayed")
    # Revoked keys and suspended providers.
    resp = await env.client.post(
        f"/admin/v1/app-providers/{env.provider_id}/keys/{s.key_id}/revoke", headers=auth(env.admin)
    )
    assert resp.status == 200
    assert await post(env.app.token()) == (401, "key_revoked")
    key = await env.key(env.provider_id)
    fresh = agency_jwt(key["key"]["key_id"], key["secret"])
    resp = await env.client.patch(
        f"/admin/v1/app-providers/{env.provider_id}",
        json={"status": "suspended"},
        headers=auth(env.admin),
    )
    assert resp.status == 200
    assert await post(fresh) == (403, "provider_suspended")
    refusals = await env.services.store.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'app_auth.refused'"
    )
    assert refusals >= 7


async def test_admin_api_checks_providers(env: Env, viewer_token: str) -> None:
    async def create(body: dict[str, Any], token: str | None = None) -> tuple[int, str]:
        resp = await env.client.post(
            "/admin/v1/app-providers", json=body, headers=auth(token or env.admin)
        )
        return resp.status, (await resp.json()).get("code", "")

    ok = {"name": "sana", "push_url": "https://sana.gov.ir/push"}
    assert await create({**ok, "push_url": "http://sana.gov.ir/push"}) == (422, "invalid_value")
    assert await create({**ok, "scopes": ["everything"]}) == (422, "invalid_value")
    assert await create({**ok, "name": "bad name!"}) == (422, "invalid_value")
    assert await create({**ok, "extra": 1}) == (422, "unknown_field")
    assert await create(ok, viewer_token) == (403, "insufficient_role")
    assert (await create(ok))[0] == 201
    assert await create(ok) == (409, "provider_name_taken")
    resp = await env.client.get("/admin/v1/app-providers", headers=auth(viewer_token))
    names = [p["name"] for p in (await resp.json())["providers"]]
    assert names == ["dowlat-hamrah", "sana"]
    resp = await env.client.get(
        f"/admin/v1/app-providers/{env.provider_id}/keys", headers=auth(viewer_token)
    )
    [key] = (await resp.json())["keys"]
    assert key["key_id"].startswith("app_")
    assert "secret" not in key
    # Registrations check what they store.
    status, problem = await env.app.register("0076229646")
    assert (status, problem["code"]) == (422, "invalid_national_code")
    status, problem = await env.app.register(CITIZEN, citizen_ref=CITIZEN)
    assert (status, problem["code"]) == (422, "invalid_value")


async def test_cancel_signed_out_schedule_and_idempotency(env: Env) -> None:
    await env.app.register(CITIZEN)
    env.app.settings.mode = "fail"
    # Cancelled while the push is pending: neither the app nor an SMS.
    view = await _send(env, national_code=CITIZEN, channels=["app", "sms"])
    resp = await env.client.post(f"/v1/messages/{view['id']}/cancel", headers=env.tax.headers())
    assert resp.status == 200
    assert (await resp.json())["status"] == "cancelled"
    # Signed out while pending: the fallback does not wait for the deadline.
    signed_out = await _send(env, national_code=CITIZEN, channels=["app", "sms"], text="دوم")
    await wait_for(lambda: _attempted(env, signed_out["id"]), timeout=3)
    started = time.monotonic()
    await env.app.sign_out(CITIZEN)
    await wait_for(lambda: _received(env, 1), timeout=CONFIRM + 3)
    assert time.monotonic() - started < CONFIRM
    fallback = [h for h in await env.history(signed_out["id"]) if h["status"] == "app_fallback"]
    assert fallback[0]["detail"]["reason"] == "signed_out"
    await asyncio.sleep(CONFIRM)
    assert len(env.sim.received) == 1  # the cancelled one never went
    state = await env.services.store.pool.fetchval(
        "SELECT state FROM app_deliveries WHERE message_id = $1", uuid.UUID(view["id"])
    )
    assert state == "cancelled"
    # Scheduled: pushed at send_at, not before. Idempotent: one message for one key.
    env.app.settings.mode = "ack"
    await env.app.register(CITIZEN)
    at = time.time() + 1.0
    body = {
        "text": "سوم",
        "national_code": CITIZEN,
        "channels": ["app", "sms"],
        "send_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(at + 1)),
    }
    first = await env.tax.send(body, **{"Idempotency-Key": "k-1"})
    again = await env.tax.send(body, **{"Idempotency-Key": "k-1"})
    assert first[0] == again[0] == 202
    assert first[1]["id"] == again[1]["id"]
    assert first[1]["status"] == "scheduled"
    await asyncio.sleep(0.5)
    assert env.app.pushes == []
    # Not the app's before its time: neither listed nor readable.
    _, page = await env.app.inbox(CITIZEN)
    assert page["notices"] == []
    status, problem = await env.app.read(CITIZEN, first[1]["id"])
    assert (status, problem["code"]) == (404, "unknown_notice")
    await wait_for(lambda: _is(env, first[1]["id"], "delivered"), timeout=5)
    assert time.time() >= at
    assert len(env.app.pushes) == 1


async def _attempted(env: Env, mid: str) -> bool:
    n = await env.services.store.pool.fetchval(
        "SELECT attempts FROM app_deliveries WHERE message_id = $1", uuid.UUID(mid)
    )
    return bool(n)


async def test_batch_routes_app_users_and_sends_the_rest_by_sms(env: Env) -> None:
    await env.app.register(CITIZEN)
    body = {
        "template": "سلام {name}",
        "channels": ["app", "sms"],
        "recipients": [
            {"national_code": CITIZEN, "params": {"name": "علی"}},
            {"national_code": OTHER_CITIZEN, "params": {"name": "مریم"}},
            {"to": "09129998877", "params": {"name": "شماره"}},
        ],
    }
    resp = await env.client.post("/v1/batches", json=body, headers=env.tax.headers())
    assert resp.status == 202, await resp.text()
    batch = await resp.json()
    assert batch["accepted"] == 3
    pool = env.services.store.pool

    async def done() -> bool:
        n = await pool.fetchval(
            "SELECT count(*) FROM messages WHERE status = 'delivered' AND batch_id = $1",
            uuid.UUID(batch["id"]),
        )
        return int(n) == 3

    await wait_for(done, timeout=8)
    # The signed-in citizen got it in the app; the other and the bare number by SMS.
    [push] = env.app.pushes
    assert push["text"].startswith("سلام علی")
    assert sorted(m.text.split("\n")[0] for m in env.sim.received) == ["سلام شماره", "سلام مریم"]
    bad = {**body, "channels": ["app"]}
    resp = await env.client.post("/v1/batches", json=bad, headers=env.tax.headers())
    assert resp.status == 422
    assert (await resp.json())["code"] == "invalid_value"


async def test_simulator_control_endpoint(env: Env) -> None:
    """The demo drives ``payam app-sim`` over HTTP, as the SMSC simulator's."""
    base = f"http://127.0.0.1:{env.app.port}/control"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/register", json={"national_code": CITIZEN}) as r:
            assert r.status == 200
            assert (await r.json())["registered"] is True
        async with http.post(f"{base}/mode", json={"mode": "nonsense"}) as r:
            assert r.status == 400
        async with http.post(f"{base}/mode", json={"mode": "ack"}) as r:
            assert r.status == 200
        view = await _send(env, national_code=CITIZEN, channel="app")
        await wait_for(lambda: _is(env, view["id"], "delivered"), timeout=5)
        async with http.get(f"{base}/pushes") as r:
            assert [p["id"] for p in await r.json()] == [view["id"]]
        body = {"national_code": CITIZEN, "id": view["id"]}
        async with http.post(f"{base}/read", json=body) as r:
            assert r.status == 200
            assert (await r.json())["read_at"]
        async with http.post(f"{base}/sign-out", json={"national_code": CITIZEN}) as r:
            assert r.status == 200
    # A push with a wrong signature is refused by the simulator.
    async with (
        aiohttp.ClientSession() as http,
        http.post(env.app.push_url, data=b"{}", headers={"Payam-Signature": "t=1,v1=0"}) as r,
    ):
        assert r.status == 401
    assert env.app.refused_signatures == 1


async def test_push_taken_then_confirmed_by_receipt_or_fallen_back(env: Env) -> None:
    """A provider may answer 202 and confirm later (the phone got it): confirmed in time, no
    SMS; no receipt before the deadline, the SMS, once."""
    await env.app.register(CITIZEN)
    env.app.settings.mode = "accept"
    view = await _send(env, national_code=CITIZEN, channels=["app", "sms"])
    await wait_for(lambda: _is(env, view["id"], "delivered"), timeout=5)
    delivered = [h for h in await env.history(view["id"]) if h["status"] == "delivered"]
    assert delivered[0]["detail"]["via"] == "ack"
    attempts = await env.services.store.pool.fetchval("SELECT attempts FROM app_deliveries")
    assert attempts == 1  # taken once, never pushed again
    env.app.settings.mode = "accept_only"
    late = await _send(env, national_code=CITIZEN, channels=["app", "sms"], text="دوم")
    await wait_for(lambda: _received(env, 1), timeout=CONFIRM + 3)
    await wait_for(lambda: _is(env, late["id"], "delivered"), timeout=5)
    statuses = [h["status"] for h in await env.history(late["id"])]
    assert "app_fallback" in statuses
    assert "submitted" in statuses
    # A receipt after the deadline changes nothing: the notice went by SMS.
    status, problem = await env.app.delivered(CITIZEN, late["id"])
    assert (status, problem["code"]) == (404, "unknown_notice")
    await asyncio.sleep(0.3)
    assert len(env.sim.received) == 1
