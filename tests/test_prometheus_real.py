"""The operators' view on a real Prometheus (issue 8): Debian's prometheus scrapes a gateway that
carries simulated traffic over real SMPP, evaluates the alert rules itself, and every expression
of the dashboards and rules is evaluated through its HTTP API.

Every dashboard expression must return a series (the E-box and e-mail panels included: letters
go through the API and real SMTP, are deposited into an e-box peer over real HTTP, opened and
answered), except the short list below; every alert rule either fires on the traffic made for
it or stays silent for the stated reason.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.sms.simulator import SmscSimulator
from adapters.ussd.http_front import SECRET_HEADER
from gateway.config import Config, load_config
from gateway.sending import tehran_day
from tests.conftest import auth
from tests.debian import ensure_debian_package
from tests.letters_harness import PDF, PERSON, EboxPeer, LetterAgency, letters_env, metadata
from tests.prometheus_exprs import RULES, dashboard_exprs, metric_names, rule_exprs
from tests.sms_harness import agency, start_sim, wait_for

USSD_SECRET = "mci-shared-secret-0123456789"

# Alerts the traffic below is made to trigger.
EXPECTED_FIRING = {
    "PayamSmppBindDown": "operator rightel points at a closed port",
    "PayamOperatorUnreachable": "rightel has no bind on any node",
    "PayamDeliveryRatioLow": "the simulator answers UNDELIV for 40% of mci's messages",
    "PayamCallbackFailures": "agency B's callback endpoint answers 503",
    "PayamAgencyQuotaNearLimit": "agency B sends 19 of its 20 daily fragments",
    "PayamAgencySlaLatencyBreach": "agency A's SLA asks for a p95 of 1 ms",
    "PayamAgencySlaRatioBreach": "60% delivered is below the default 95% target",
    "PayamUssdUnavailable": "most dialled codes are unknown",
}
# Alerts that must stay silent, and why nothing here makes them fire.
EXPECTED_SILENT = {
    "PayamGatewayDown": "the gateway answers every scrape",
    "PayamDatabaseNotReady": "PostgreSQL is up",
    "PayamCrisisLaneDelayed": "crisis messages leave at once",
    "PayamQueueBacklog": "nothing waits 15 minutes in a 40-second test",
    "PayamUnmatchedReceiptsSpike": "every receipt matches (unmatched ones wait 10 minutes)",
    "PayamSmppThrottled": "10% throttling of a few submits/s stays under 1/s",
    "PayamCrisisModeOn": "crisis mode is off",
    "PayamOperatorPaused": "no operator is paused",
    "PayamUssdRemoteFailures": "the remote screen's endpoint answers",
    "PayamUssdSessionsTimingOut": "no dialog is left idle",
    "PayamAppProviderFailing": "the app provider simulator takes every push",
}
# Dashboard expressions allowed to be empty here, with the reason.
ALLOWED_EMPTY: dict[str, str] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(base: Config, sim_port: int, closed_port: int, tmp_path: Path, ebox_url: str) -> Config:
    operators = [
        {
            "name": "mci",
            "prefixes": ["9"],
            "port": sim_port,
            "system_id": "payam",
            "password": "secret",
            "window": 10,
            "tps": 200.0,
            "response_timeout_seconds": 2.0,
            "enquire_link_seconds": 5.0,
        },
        {
            "name": "rightel",
            "prefixes": ["920", "921", "922"],
            "port": closed_port,
            "system_id": "payam",
            "password": "secret",
            "tps": 100.0,
        },
    ]
    return load_config(
        None,
        env=letters_env(
            tmp_path,
            {
                "PAYAM_KARTPOOSHE_BASE_URL": ebox_url,
                "PAYAM_DATABASE_URL": base.database.url,
                "PAYAM_SECURITY_MASTER_KEY_FILE": base.security.master_key_file,
                "PAYAM_OPERATORS": json.dumps(operators),
                "PAYAM_SMS_RETRY_BASE_SECONDS": "0.05",
                "PAYAM_SMS_QUIET_HOURS_START": "00:00",
                "PAYAM_SMS_QUIET_HOURS_END": "00:00",
                "PAYAM_SMS_DUPLICATE_WINDOW_SECONDS": "0",
                "PAYAM_SMS_DISPATCH_WORKERS": "2",
                "PAYAM_USSD_HTTP_SECRETS": f"mci={USSD_SECRET}",
                "PAYAM_OPS_SAMPLE_SECONDS": "1",
                "PAYAM_OPS_REFRESH_SECONDS": "1",
            },
        ),
    )


@pytest.fixture
async def prometheus_bin() -> str:
    return await asyncio.to_thread(ensure_debian_package, "prometheus")


async def _receiver(status: int) -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        if request.path == "/remote":
            return web.json_response({"text": "بدهی شما صفر است"})
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


@pytest.fixture
async def ok_receiver() -> AsyncIterator[str]:
    async for url in _receiver(200):
        yield url


@pytest.fixture
async def failing_receiver() -> AsyncIterator[str]:
    async for url in _receiver(503):
        yield url


class Prometheus:
    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{RULES}/*.yml']\n"
            "scrape_configs:\n"
            "  - job_name: payam\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n",
            encoding="utf-8",
        )
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def api(self, http: aiohttp.ClientSession, path: str, **params: str) -> Any:
        async with http.get(self.url + path, params=params) as resp:
            body = await resp.json()
            assert body["status"] == "success", (path, params, body)
            return body["data"]

    async def query(self, http: aiohttp.ClientSession, expr: str) -> list[Any]:
        data = await self.api(http, "/api/v1/query", query=expr)
        return list(data["result"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


async def _app_channel(services: Any, client: Any, admin: str, a: Any) -> tuple[Any, Any]:
    """The app channel (docs/APP_CHANNEL.md): a provider simulator with one signed-in citizen,
    and a step that sends agency A one notice to them (pushed, confirmed, read) and one to a
    citizen with no app (the SMS fallback)."""
    from adapters.app.simulator import AppSimSettings, AppSimulator

    app = AppSimulator(AppSimSettings(str(client.make_url("")), "", ""))
    await app.start()
    resp = await client.post(
        "/admin/v1/app-providers",
        json={"name": "dowlat-hamrah", "push_url": app.push_url},
        headers=auth(admin),
    )
    provider = (await resp.json())["provider"]["id"]
    resp = await client.post(
        f"/admin/v1/app-providers/{provider}/keys", json={"name": "k"}, headers=auth(admin)
    )
    key = await resp.json()
    app.settings.key_id, app.settings.key_secret = key["key"]["key_id"], key["secret"]
    await services.store.messages.put_citizens(
        [("0076229645", "+989121230001"), ("0012345679", "+989121230002")]
    )
    assert (await app.register("0076229645"))[0] == 200

    async def step(i: int) -> None:
        for code in ("0076229645", "0012345679"):
            status, view = await a.send(
                {"national_code": code, "text": f"app{i}", "channels": ["app", "sms"]}
            )
            assert status == 202, view
        await wait_for(lambda: _pushed(app), timeout=5)
        await app.read("0076229645", app.pushes[-1]["id"])

    return app, step


async def _pushed(app: Any) -> bool:
    return bool(app.pushes)


async def _traffic(
    sim: SmscSimulator,
    client: Any,
    a: Any,
    b: Any,
    callback: str,
    seconds: float,
    app_step: Any = None,
) -> None:
    """SMS to both agencies in every lane, USSD dialogs, a citizen's reply and a refused key,
    and app notices (``app_step``), spread over ``seconds`` so that rates have several
    scrapes."""
    deadline = time.monotonic() + seconds
    i = 0
    lanes = ("normal", "bulk", "high", "normal")
    b_left = 19
    while time.monotonic() < deadline:
        i += 1
        sent = await asyncio.gather(
            *(
                a.send(
                    {
                        "to": f"+98912{i:04d}{k:03d}",
                        "text": f"n{i}",
                        "priority": lanes[k],
                        # One in four asks for a callback (to the working endpoint), so that
                        # B's failing ones stay well above the alert's 20 %.
                        **({"callback_url": callback} if k == 0 else {}),
                    }
                )
                for k in range(4)
            )
        )
        assert [status for status, _ in sent] == [202] * 4
        if b_left:
            status, _ = await b.send({"to": f"+98913{i:07d}", "text": f"b{i}"})
            assert status == 202
            b_left -= 1
        session = f"s{i}"
        for text in ("", "1"):  # dial *412#, then option 1: a remote screen (ends the dialog)
            resp = await client.post(
                "/ussd/mci",
                data={
                    "sessionId": session,
                    "serviceCode": "*412#",
                    "phoneNumber": "09121112233",
                    "text": text,
                },
                headers={SECRET_HEADER: USSD_SECRET},
            )
            assert resp.status == 200
        for k in range(2):
            resp = await client.post(
                "/ussd/mci",
                data={
                    "sessionId": f"u{i}-{k}",
                    "serviceCode": "*499#",
                    "phoneNumber": "09121112233",
                    "text": "",
                },
                headers={SECRET_HEADER: USSD_SECRET},
            )
            assert resp.status == 200
        if app_step is not None and i % 3 == 1:
            await app_step(i)
        if i % 5 == 0:
            await sim.inject_mo("989121112233", "404012", "سلام")
            resp = await client.get("/v1/me", headers={"Authorization": "Bearer nonsense"})
            assert resp.status == 401
        await asyncio.sleep(0.25)


OA_FROM = "dabirkhane@tax.gov.ir"


def _smtp_letter(port: int, user: str, password: str, good: bool) -> int:
    """One letter by real SMTP (STARTTLS, AUTH); ``good=False``: a wrong password (535) and a
    From the agency did not register (553), so that the rejection panel has reasons."""
    import smtplib
    import ssl
    import uuid
    from email.message import EmailMessage

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.starttls(context=ctx)
        if not good:
            with pytest.raises(smtplib.SMTPAuthenticationError, match="535"):
                s.login(user, password + "x")
        s.login(user, password)
        msg = EmailMessage()
        msg["From"] = OA_FROM if good else "boss@evil.example"
        msg["Subject"] = "ابلاغیه"
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@tax.gov.ir>"
        msg["X-Payam-Notify-SMS"] = "no"
        msg.set_content("متن ابلاغیه")
        msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="a.pdf")
        try:
            s.send_message(msg, from_addr=OA_FROM, to_addrs=[f"{PERSON}@ebox.test.ir"])
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code
        return 250


async def _letter_traffic(
    peer: EboxPeer, sender: LetterAgency, smtp: tuple[int, str, str], seconds: float
) -> None:
    """Letters by the API and by SMTP, deposited into the e-box peer, then opened and (every
    other one) answered by the citizen, so that reply deliveries run: the E-box panels."""
    import base64
    import uuid
    from datetime import UTC, datetime

    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        i += 1
        status, letter = await sender.send(
            metadata(notify_sms=False), [("a.pdf", "application/pdf", PDF)]
        )
        assert status == 202, letter
        if i % 3 == 1:
            code = await asyncio.to_thread(_smtp_letter, *smtp, i % 2 == 1)
            assert code in (250, 553)
        lid = letter["id"]
        await wait_for(functools.partial(_deposited, peer, lid), timeout=10)
        at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        base = {"letter_id": letter["id"], "at": at, "actor": {"kind": "owner"}}
        opened = {"event_id": str(uuid.uuid4()), "type": "opened", **base}
        assert await peer.send_event(opened) == 204
        if i % 2:
            reply = {
                "reply_id": f"r{i}",
                "text": "پاسخ شهروند",
                "attachments": [
                    {
                        "name": "r.pdf",
                        "content_type": "application/pdf",
                        "data_base64": base64.b64encode(PDF).decode(),
                    }
                ],
            }
            event = {"event_id": str(uuid.uuid4()), "type": "replied", "reply": reply, **base}
            assert await peer.send_event(event) == 204
        await asyncio.sleep(0.5)


async def _deposited(peer: EboxPeer, letter_id: str) -> bool:
    return letter_id in peer.deposits


async def test_every_dashboard_and_rule_expression_on_a_real_prometheus(
    config: Config,
    pool: asyncpg.Pool,
    sealer: Any,
    aiohttp_client: Any,
    prometheus_bin: str,
    ok_receiver: str,
    failing_receiver: str,
    tmp_path: Path,
) -> None:
    from adapters.kartpooshe.smtp_ingest import start_smtp
    from gateway.api.app import build_app
    from gateway.letters.runtime import letters_context, sample_letter_states
    from gateway.runtime import sms_context
    from gateway.services import build_services
    from gateway.store import Store
    from tests.conftest import make_key

    sim = await start_sim(outcomes={"DELIVRD": 0.6, "UNDELIV": 0.4}, throttle_pct=10.0)
    prom: Prometheus | None = None
    peer = EboxPeer()
    smtp_server: asyncio.Server | None = None
    try:
        cfg = _config(config, sim.port, _free_port(), tmp_path, await peer.start())
        services = build_services(cfg, Store(pool), sealer)
        app = build_app(services)
        app.cleanup_ctx.append(sms_context(services))
        app.cleanup_ctx.append(letters_context(services))
        client = await aiohttp_client(app)
        peer.gateway_url = str(client.make_url("")).rstrip("/")
        admin = (
            await services.credentials.create_admin_token(name="ops", role="admin", actor="t")
        ).value
        a = await agency(services, client, "404012", callback_url="")
        b = await agency(
            services,
            client,
            "404013",
            callback_url=failing_receiver + "/cb",
            daily_fragment_quota=20,
        )
        resp = await client.put(
            f"/admin/v1/agencies/{a.id}/sla",
            json={"latency_p95_seconds": 0.001, "delivery_ratio": 0.99},
            headers=auth(admin),
        )
        assert resp.status == 200
        menu = {
            "root": "main",
            "screens": {
                "main": {
                    "kind": "menu",
                    "text": "سازمان امور مالیاتی",
                    "options": [{"label": "استعلام", "next": "debt"}],
                },
                "debt": {"kind": "remote", "url": ok_receiver + "/remote", "fallback": "بعداً"},
            },
        }
        agency_a = await services.agencies.get(a.id)
        from gateway.numbering import Request

        await services.numbering.allocate(agency_a, Request("ussd_code", "*412#"), actor="t")
        resp = await client.put(
            f"/admin/v1/agencies/{a.id}/ussd-menu", json=menu, headers=auth(admin)
        )
        assert resp.status == 200, await resp.text()
        assert await services.store.pool.fetchval("SELECT 1")  # the gateway is up
        # Letters: agency A sends by the API and by SMTP; citizens' replies go to its webhook.
        letter_sender = LetterAgency(client, a.id, await make_key(services, a.id))
        await services.letter_settings.update(
            a.id,
            {"from_addresses": [OA_FROM], "reply_webhook_url": ok_receiver + "/replies"},
            actor="t",
        )
        user, password = await services.letter_settings.create_smtp_credential(
            a.id, "oa.tax", actor="t"
        )
        smtp_server = await start_smtp(services, port=0)
        smtp = (smtp_server.sockets[0].getsockname()[1], user, password)

        prom = Prometheus(prometheus_bin, tmp_path, f"127.0.0.1:{client.server.port}")
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                try:
                    async with http.get(prom.url + "/-/ready") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(ready, timeout=30, interval=0.2)
            app_sim, app_step = await _app_channel(services, client, admin, a)
            started = datetime.now(UTC)
            try:
                await asyncio.gather(
                    _traffic(sim, client, a, b, ok_receiver + "/cb", 14.0, app_step),
                    _letter_traffic(peer, letter_sender, smtp, seconds=14.0),
                )
            finally:
                await app_sim.stop()
            await sample_letter_states(services)  # the gauge's own period is 15 s
            # Let the last receipts, callbacks and samples land and be scraped twice.
            await asyncio.sleep(4.0)

            # Prometheus loaded the rule files itself and is evaluating them.
            groups = (await prom.api(http, "/api/v1/rules"))["groups"]
            loaded = {r["name"] for g in groups for r in g["rules"]}
            assert loaded == set(rule_exprs())
            assert all(r["health"] == "ok" for g in groups for r in g["rules"]), groups
            alerts = await prom.api(http, "/api/v1/alerts")
            active = {al["labels"]["alertname"] for al in alerts["alerts"]}
            if tehran_day(datetime.now(UTC)) == tehran_day(started):
                assert "PayamAgencyQuotaNearLimit" in active  # pending or firing
            # else midnight in Tehran fell inside the traffic: B's quota is a new day's, unused.

            # Every metric a dashboard or rule reads exists.
            names = set(await prom.api(http, "/api/v1/label/__name__/values"))
            families = set().union(*(metric_names(n) for n in names))
            wanted: set[str] = set()
            for e in dashboard_exprs():
                wanted |= metric_names(e.expr)
            for expr in rule_exprs().values():
                wanted |= metric_names(expr)
            assert wanted - families == set(), "metrics used but never exported"

            empty = []
            for e in dashboard_exprs():
                result = await prom.query(http, e.expr)  # asserts it evaluates
                if not result and e.source not in ALLOWED_EMPTY:
                    empty.append(e.source)
            assert empty == [], f"dashboard panels without data: {empty}"

            rules = rule_exprs()
            assert set(rules) == set(EXPECTED_FIRING) | set(EXPECTED_SILENT)
            wrong = []
            for name, expr in rules.items():
                fired = bool(await prom.query(http, expr))
                if fired != (name in EXPECTED_FIRING):
                    wrong.append(f"{name}: {'fired' if fired else 'silent'}")
            finals = await prom.query(http, "sum by (operator, outcome) (payam_sms_final_total)")
            assert wrong == [], (wrong, finals)
    finally:
        if prom is not None:
            prom.stop()
        if smtp_server is not None:
            smtp_server.close()
            await smtp_server.wait_closed()
        await peer.stop()
        await sim.stop()
