"""Letters in the usage statement (Art 6, issue 8 part 6) against known letter traffic: letters
sent over real HTTP, deposited into an e-box peer over real HTTP, their SMS notices sent over
real SMPP; the statement's letter lines, attachment MiB and notice fragments are compared with
the rows in the store, as JSON and as CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

from gateway.api.app import build_app
from gateway.config import Config, load_config
from gateway.letters.runtime import letters_context
from gateway.numbering import Request
from gateway.reports import current_month
from gateway.runtime import sms_context
from gateway.sealing import Sealer
from gateway.services import build_services
from gateway.store import Store
from tests.conftest import auth, make_agency, make_key
from tests.letters_harness import (
    COMPANY,
    PDF,
    PERSON,
    PNG,
    EboxPeer,
    LetterAgency,
    letters_env,
    metadata,
)
from tests.sms_harness import start_sim, wait_for

MIB = 1_048_576
TARIFFS = """currency = "IRR"
[sms]
crisis = 0
high = 1500
normal = 1000
bulk = 700
[letters]
person = 2000
company = 2500
attachment_mib = 100
"""


async def test_usage_statement_bills_deposited_letters_exactly(
    config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any, tmp_path: Path
) -> None:
    tariffs = tmp_path / "tariffs.toml"
    tariffs.write_text(TARIFFS, encoding="utf-8")
    sim = await start_sim()
    peer = EboxPeer()
    try:
        op = {"name": "mci", "prefixes": ["9"], "port": sim.port, "system_id": "payam"}
        cfg = load_config(
            None,
            env=letters_env(
                tmp_path,
                {
                    "PAYAM_DATABASE_URL": config.database.url,
                    "PAYAM_SECURITY_MASTER_KEY_FILE": config.security.master_key_file,
                    "PAYAM_OPERATORS": json.dumps([{**op, "password": "secret"}]),
                    "PAYAM_SMS_QUIET_HOURS_START": "00:00",
                    "PAYAM_SMS_QUIET_HOURS_END": "00:00",
                    "PAYAM_KARTPOOSHE_BASE_URL": await peer.start(),
                    "PAYAM_OPS_TARIFFS_FILE": str(tariffs),
                },
                PAYAM_KARTPOOSHE_MAX_ATTACHMENT_BYTES=str(3 * MIB),
                PAYAM_KARTPOOSHE_MAX_TOTAL_BYTES=str(6 * MIB),
                PAYAM_KARTPOOSHE_MAX_ATTEMPTS="1",
            ),
        )
        svc = build_services(cfg, Store(pool), sealer)
        app = build_app(svc)
        app.cleanup_ctx.append(sms_context(svc))
        app.cleanup_ctx.append(letters_context(svc))
        client = await aiohttp_client(app)
        peer.gateway_url = str(client.make_url("")).rstrip("/")
        await svc.store.messages.put_citizens([(PERSON, "+989121234567")])
        admin = (await svc.credentials.create_admin_token(name="o", role="admin", actor="t")).value

        async def letter_agency(code: str, name: str, key_type: str = "live") -> LetterAgency:
            agency_id = await make_agency(svc, name_en=name)
            a = await svc.agencies.get(agency_id)
            await svc.numbering.allocate(a, Request("shortcode", code), actor="t")
            return LetterAgency(client, agency_id, await make_key(svc, agency_id, key_type))

        tax = await letter_agency("404012", "=cmd|' /C calc'!A0")  # a hostile name, too
        reg = await letter_agency("404013", "Registry")
        big = PDF + b"\x00" * (MIB + MIB // 2)  # 1.5 MiB: two started MiB
        company = {"kind": "company", "id": COMPANY}
        sends: list[tuple[LetterAgency, dict[str, Any], list[tuple[str, str, bytes]]]] = [
            (tax, metadata(), []),  # person, notice SMS from 404012
            # aiohttp streams a body over 1 MiB only from a file object (it warns on bytes).
            (tax, metadata(), [("big.pdf", "application/pdf", io.BytesIO(big))]),  # type: ignore[list-item]
            (tax, metadata(recipient=company), [("s.png", "image/png", PNG)]),  # 1 MiB
            (tax, metadata(recipient=company, notify_sms=False), []),
            (reg, metadata(notify_sms=False), []),
        ]
        ids = []
        for who, meta, files in sends:
            status, got = await who.send(meta, files)
            assert status == 202, got
            ids.append(got["id"])
        # Not billed: a test key's letter, and one the e-box refuses for good.
        test_key = LetterAgency(client, tax.id, await make_key(svc, tax.id, "test"))
        status, got = await test_key.send(metadata(), [("t.pdf", "application/pdf", PDF)])
        assert status == 202, got

        async def settled() -> bool:
            n = await pool.fetchval(
                "SELECT count(*) FROM letters WHERE deposited_at IS NULL AND failed_at IS NULL"
            )
            return int(n) == 0

        await wait_for(settled, timeout=30)
        peer.fail_next = [422]
        status, refused = await reg.send(metadata(notify_sms=False))
        assert status == 202
        await wait_for(settled, timeout=30)
        assert (
            await pool.fetchval(
                "SELECT status FROM letters WHERE id = $1", uuid.UUID(refused["id"])
            )
        ) == "failed"

        # The notices: person letters with notify_sms reach a phone; letters to a company's
        # box never get one (notify_sms applies to persons only: gateway/letters/service.py),
        # noted in docs/OPERATIONS.md.
        async def notices_final() -> bool:
            n = await pool.fetchval(
                "SELECT count(*) FROM letters WHERE notice_state = 'delivered' AND agency_id = $1",
                tax.id,
            )
            return int(n) == 2

        await wait_for(notices_final, timeout=30)
        states = dict(
            await pool.fetch(
                "SELECT recipient_kind || ':' || notice_state, count(*) FROM letters "
                "WHERE NOT is_test AND agency_id = $1 GROUP BY 1",
                tax.id,
            )
        )
        assert states == {"person:delivered": 2, "company:off": 2}

        # One letter deposited last month is billed there, not in this month.
        moved = uuid.UUID(ids[4])
        month = current_month()
        await pool.execute(
            "UPDATE letters SET deposited_at = $2, accepted_at = $2 WHERE id = $1",
            moved,
            month.start - timedelta(hours=1),
        )

        resp = await client.get("/admin/v1/reports/usage", headers=auth(admin))
        assert resp.status == 200
        statement = await resp.json()
        rows = {r["agency_id"]: r for r in statement["agencies"]}
        t = rows[str(tax.id)]
        lines = {x["item"]: x for x in t["lines"] if x["item"].startswith("letter")}
        assert {k: (v["quantity"], v["unit_price"], v["amount"]) for k, v in lines.items()} == {
            "letter_person": (2, 2000, 4000),
            "letter_person_attachment_mib": (2, 100, 200),
            "letter_company": (2, 2500, 5000),
            "letter_company_attachment_mib": (1, 100, 100),
        }
        assert (t["letters"], t["letter_attachment_mib"]) == (4, 3)
        assert str(reg.id) not in rows  # its one letter was deposited last month; one failed
        previous = await client.get(
            "/admin/v1/reports/usage",
            params={"month": f"{month.year - (month.month == 1)}-{(month.month - 2) % 12 + 1}"},
            headers=auth(admin),
        )
        prev_rows = {r["agency_id"]: r for r in (await previous.json())["agencies"]}
        assert prev_rows[str(reg.id)]["letters"] == 1

        # Totals equal the store exactly: deposited, live letters this month and their bytes.
        stored = await pool.fetch(
            """SELECT l.agency_id, count(*) AS n,
                      sum(ceil(coalesce((SELECT sum(size) FROM letter_attachments a
                                         WHERE a.letter_id = l.id), 0) / $2::numeric)) AS mib
               FROM letters l
               WHERE NOT is_test AND deposited_at >= $1 GROUP BY l.agency_id""",
            month.start,
            MIB,
        )
        assert {str(r["agency_id"]): (int(r["n"]), int(r["mib"])) for r in stored} == {
            k: (v["letters"], v["letter_attachment_mib"]) for k, v in rows.items() if v["letters"]
        }
        sizes = [0, len(big), len(PNG), 0]
        assert t["letter_attachment_mib"] == sum(math.ceil(s / MIB) for s in sizes)
        # The notices are the agency's SMS fragments, shown apart, priced in the high lane.
        notice_parts = await pool.fetchval(
            "SELECT count(*) FROM message_parts p JOIN letters l ON l.notice_message_id = "
            "p.message_id WHERE l.agency_id = $1",
            tax.id,
        )
        assert t["letter_notice_fragments"] == int(notice_parts) == t["sms_fragments"] >= 2
        assert t["total"] == sum(x["amount"] for x in t["lines"])
        assert t["total"] == 4000 + 200 + 5000 + 100 + 1500 * t["sms_fragments"]

        resp = await client.get(
            "/admin/v1/reports/usage", params={"format": "csv"}, headers=auth(admin)
        )
        table = list(csv.DictReader(io.StringIO(await resp.text())))
        mine = [r for r in table if r["agency_id"] == str(tax.id)]
        assert {r["name_en"] for r in mine} == {"'=cmd|' /C calc'!A0"}  # defused
        by_item = {r["item"]: r for r in mine}
        assert by_item["letter_company"]["quantity"] == "2"
        assert int(by_item["total"]["amount"]) == t["total"]
    finally:
        await peer.stop()
        await sim.stop()
