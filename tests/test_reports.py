"""SLA report (Art 9) and usage statement (Art 6) against known traffic: figures computed here
from the rows written, compared with what the admin API serves as JSON and CSV."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.sms.encoding import plan
from adapters.ussd.http_front import SECRET_HEADER
from gateway import availability
from gateway.config import Config
from gateway.numbering import Request
from gateway.reports import current_month, jalali_month, safe_cell
from gateway.sealing import Sealer
from gateway.services import Services
from gateway.store import Store
from tests.conftest import auth, make_agency
from tests.sms_harness import agency, all_final, gateway, sms_config, start_sim, wait_for

# Azar 1405 began at Tehran midnight, 2026-11-22 00:00 +03:30.
AZAR_START = datetime(2026, 11, 21, 20, 30, tzinfo=UTC)
AZAR_END = datetime(2026, 12, 21, 20, 30, tzinfo=UTC)


def percentile_cont(values: list[float], q: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


async def _insert(
    pool: asyncpg.Pool,
    agency_id: uuid.UUID,
    created: datetime,
    status: str,
    latency: float | None,
    *,
    is_test: bool = False,
) -> None:
    final = created + timedelta(seconds=latency) if latency is not None else None
    await pool.execute(
        """INSERT INTO messages (agency_id, key_id, is_test, recipient, sender, body, encoding,
               parts, priority, status, valid_until, created_at, final_at)
           VALUES ($1, 'k', $2, '+989120000000', '404012', 'x', 'gsm7', 1, 2, $3, $4, $5, $6)""",
        agency_id,
        is_test,
        status,
        created + timedelta(days=1),
        created,
        final,
    )


def test_jalali_months_and_labels() -> None:
    p = jalali_month("۱۴۰۵-۰۹")  # Persian digits, as people type them
    assert (p.start, p.end) == (AZAR_START, AZAR_END)
    assert p.label_fa == "آذر ۱۴۰۵"
    assert (p.view()["first_day_jalali"], p.view()["last_day_jalali"]) == (
        "1405/09/01",
        "1405/09/30",
    )
    esfand = jalali_month("1404-12")  # the last month ends where the next year begins
    assert esfand.end == jalali_month("1405-01").start
    assert current_month(AZAR_START + timedelta(seconds=1)).key == "1405-09"
    assert current_month(AZAR_START - timedelta(seconds=1)).key == "1405-08"


def test_csv_cells_cannot_become_formulas() -> None:
    for value in ("=1+1", "+98912", "-3", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(value) == "'" + value
    assert safe_cell("سازمان") == "سازمان"
    assert safe_cell(0.5) == "0.5"


async def test_sla_report_against_known_latencies(
    services: Services, client: Any, admin_token: str, pool: asyncpg.Pool
) -> None:
    a = await make_agency(services, name_en='=HYPERLINK("http://evil")')
    b = await make_agency(services, name_en="Registry")
    resp = await client.put(
        f"/admin/v1/agencies/{a}/sla",
        json={"latency_p95_seconds": 50, "delivery_ratio": 0.9},
        headers=auth(admin_token),
    )
    assert resp.status == 200
    t0 = AZAR_START + timedelta(days=3)
    latencies = [float(i) for i in range(1, 101)]
    for i, lat in enumerate(latencies):
        await _insert(pool, a, t0 + timedelta(minutes=i), "delivered", lat)
    for i in range(10):
        await _insert(pool, a, t0 + timedelta(hours=5, minutes=i), "undeliverable", 30.0)
    for _ in range(5):
        await _insert(pool, a, t0, "cancelled", 1.0)  # not the platform's to deliver
    await _insert(pool, a, t0, "delivered", 9999.0, is_test=True)  # test keys are left out
    await _insert(pool, a, AZAR_START, "delivered", 120.0)  # the month's first instant: in
    latencies.append(120.0)
    await _insert(pool, a, AZAR_START - timedelta(seconds=1), "delivered", 1.0)  # Aban: out
    await _insert(pool, a, AZAR_END, "delivered", 1.0)  # Dey: out
    await _insert(pool, a, t0, "queued", None)  # accepted, not finished
    for _ in range(4):
        await _insert(pool, b, t0, "delivered", 2.0)
    await _insert(pool, b, t0, "expired", 86400.0)

    # API availability: what the gateway answered on agency routes, stored per Tehran day.
    await availability.flush(services.store, AZAR_START - timedelta(days=60))  # earlier tests'
    for _ in range(3):
        assert (await client.get("/v1/me")).status == 401  # answered: not a server error
    availability.note("/v1/messages", 503)  # overloaded
    availability.note("/admin/v1/agencies", 500)  # not an agency route
    await availability.flush(services.store, t0)
    resp = await client.get(
        "/admin/v1/reports/sla", params={"month": "1405-09"}, headers=auth(admin_token)
    )
    assert resp.status == 200
    report = await resp.json()
    assert report["api"] == {"requests": 4, "server_errors": 1, "availability": 0.75}
    assert report["period"]["label_fa"] == "آذر ۱۴۰۵"
    assert report["period"]["from"] == AZAR_START.isoformat()
    rows = {r["agency_id"]: r for r in report["agencies"]}
    ra, rb = rows[str(a)], rows[str(b)]
    assert (ra["volume"], ra["finished"], ra["delivered"]) == (117, 111, 101)
    assert ra["delivery_ratio"] == round(101 / 111, 6)
    assert ra["latency_seconds"] == {
        k: round(percentile_cont(latencies, q), 3)
        for k, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    }
    assert ra["delivered_late"] == sum(1 for v in latencies if v > 50)
    assert ra["targets"] == {"latency_p95_seconds": 50.0, "delivery_ratio": 0.9}
    assert ra["breaches"] == ["latency_p95"]  # 0.91 delivered meets its 0.9
    assert (rb["volume"], rb["finished"], rb["delivered"]) == (5, 5, 4)
    assert rb["targets"] == {"latency_p95_seconds": 60.0, "delivery_ratio": 0.95}  # defaults
    assert rb["breaches"] == ["delivery_ratio"]
    assert rb["latency_seconds"]["p99"] == 2.0

    resp = await client.get(
        "/admin/v1/reports/sla",
        params={"month": "1405-09", "agency_id": str(a), "format": "csv"},
        headers=auth(admin_token),
    )
    assert resp.status == 200
    assert resp.content_type == "text/csv"
    table = list(csv.DictReader(io.StringIO(await resp.text())))
    assert len(table) == 1
    (line,) = table
    assert line["name_en"] == '\'=HYPERLINK("http://evil")'  # formula defused
    assert line["period_fa"] == "آذر ۱۴۰۵"
    assert (line["volume"], line["delivered"], line["breaches"]) == ("117", "101", "latency_p95")
    assert float(line["p95_seconds"]) == ra["latency_seconds"]["p95"]
    assert line["api_availability"] == "0.75"  # the platform's, on every row

    (entry,) = await services.store.audit.list(
        action="agency.sla", since=None, limit=5, before_id=None
    )
    assert entry.target == str(a)
    for bad in ({"month": "1405-13"}, {"month": "x"}, {"format": "xml"}, {"agency_id": "1"}):
        resp = await client.get("/admin/v1/reports/sla", params=bad, headers=auth(admin_token))
        assert resp.status == 400
        assert (await resp.json(content_type=None))["code"] == "invalid_parameter"
    resp = await client.put(
        f"/admin/v1/agencies/{a}/sla",
        json={"latency_p95_seconds": 0, "delivery_ratio": 2},
        headers=auth(admin_token),
    )
    assert resp.status == 422


USSD_SECRET = "mci-shared-secret-0123456789"
TARIFFS = """currency = "IRR"
[sms]
crisis = 0
high = 1500
normal = 1000
bulk = 700
[sms_operators.mci]
crisis = 10
[ussd]
session = 300
"""


@pytest.fixture
def tariffs(tmp_path: Path) -> str:
    path = tmp_path / "tariffs.toml"
    path.write_text(TARIFFS, encoding="utf-8")
    return str(path)


async def test_usage_statement_totals_equal_the_message_store(
    config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any, tariffs: str
) -> None:
    sim = await start_sim()
    try:
        cfg = sms_config(config, sim.port)
        cfg = replace(
            cfg,
            ops=replace(cfg.ops, tariffs_file=tariffs),
            ussd=replace(cfg.ussd, http_secrets=(f"mci={USSD_SECRET}",)),
        )
        services, client = await gateway(cfg, Store(pool), sealer, aiohttp_client)
        admin = (
            await services.credentials.create_admin_token(name="o", role="admin", actor="t")
        ).value
        a = await agency(services, client, "404012", mandatory_allowed=True)
        b = await agency(services, client, "404013")
        long_text = "ا" * 200  # 3 UCS2 parts
        sends = [
            (a, {"to": "+989120000001", "text": "hi", "priority": "normal"}),
            (a, {"to": "+989120000002", "text": "hi", "priority": "normal"}),
            (a, {"to": "+989120000003", "text": long_text, "mandatory": True, "priority": "high"}),
            (a, {"to": "+989120000004", "text": "alert", "priority": "crisis"}),
            (b, {"to": "+989120000005", "text": "x", "priority": "bulk"}),
        ]
        for who, body in sends:
            status, got = await who.send(body)
            assert status == 202, got
        await wait_for(lambda: all_final(services, len(sends)))
        agency_a = await services.agencies.get(a.id)
        await services.numbering.allocate(agency_a, Request("ussd_code", "*412#"), actor="t")
        menu = {"root": "m", "screens": {"m": {"kind": "message", "text": "ساعات کاری"}}}
        resp = await client.put(
            f"/admin/v1/agencies/{a.id}/ussd-menu", json=menu, headers=auth(admin)
        )
        assert resp.status == 200
        for i in range(3):
            resp = await client.post(
                "/ussd/mci",
                data={"sessionId": f"s{i}", "serviceCode": "*412#", "phoneNumber": "09121112233"},
                headers={SECRET_HEADER: USSD_SECRET},
            )
            assert resp.status == 200
        resp = await client.post(  # an unknown code is no agency's dialog
            "/ussd/mci",
            data={"sessionId": "z", "serviceCode": "*499#", "phoneNumber": "09121112233"},
            headers={SECRET_HEADER: USSD_SECRET},
        )
        assert resp.status == 200

        resp = await client.get("/admin/v1/reports/usage", headers=auth(admin))
        assert resp.status == 200
        statement = await resp.json()
        assert statement["currency"] == "IRR"
        assert statement["period"]["month"] == current_month().key
        rows = {r["agency_id"]: r for r in statement["agencies"]}
        hint_parts = plan("hi\n" + services.config.sms.opt_out_hint)[1]
        lines_a = {(x["item"], x["priority"]): x for x in rows[str(a.id)]["lines"]}
        assert lines_a[("sms_fragment", "normal")]["quantity"] == 2 * hint_parts
        assert lines_a[("sms_fragment", "high")]["quantity"] == 3
        assert lines_a[("sms_fragment", "crisis")]["unit_price"] == 10  # mci override
        assert lines_a[("ussd_session", "")]["quantity"] == 3
        assert lines_a[("ussd_session", "")]["amount"] == 900
        # Totals equal the message store exactly.
        stored = await pool.fetch(
            "SELECT m.agency_id, count(*) AS n FROM message_parts p "
            "JOIN messages m ON m.id = p.message_id GROUP BY m.agency_id"
        )
        assert {str(r["agency_id"]): int(r["n"]) for r in stored} == {
            k: v["sms_fragments"] for k, v in rows.items()
        }
        planned = await pool.fetch(
            "SELECT agency_id, sum(parts) AS n FROM messages WHERE status = 'delivered' "
            "GROUP BY agency_id"
        )
        assert {str(r["agency_id"]): int(r["n"]) for r in planned} == {
            k: v["sms_fragments"] for k, v in rows.items()
        }
        for r in rows.values():
            assert r["total"] == sum(x["amount"] for x in r["lines"])
            assert all(x["amount"] == x["quantity"] * x["unit_price"] for x in r["lines"])
        assert rows[str(b.id)]["total"] == 700 * rows[str(b.id)]["sms_fragments"]

        resp = await client.get(
            "/admin/v1/reports/usage", params={"format": "csv"}, headers=auth(admin)
        )
        table = list(csv.DictReader(io.StringIO(await resp.text())))
        totals = {r["agency_id"]: int(r["amount"]) for r in table if r["item"] == "total"}
        assert totals == {k: v["total"] for k, v in rows.items()}
        assert sum(int(r["quantity"]) for r in table if r["item"] == "sms_fragment") == sum(
            v["sms_fragments"] for v in rows.values()
        )
    finally:
        await sim.stop()
