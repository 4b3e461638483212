"""Verification of messages by citizens against the real database and HTTP: codes appended
and counted at accept, stored without text or number, genuine / forged / wrong number /
rate-limited on the JSON API and the web form, the SMS path through the SMPP simulator."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import asyncpg

from adapters.sms.encoding import plan
from gateway.persian import ascii_digits
from gateway.services import Services
from gateway.verification import NOT_SENT_FA, extract_code
from tests.conftest import auth
from tests.sealed import opened, opened_one
from tests.sms_harness import agency as sms_agency
from tests.sms_harness import sms, wait_for  # noqa: F401  (fixture)
from tests.test_messages_api import MSISDN, Agency, _agency

_CODE = re.compile(r"کد تأیید: ([۰-۹]+)$")


async def _policy(client: Any, admin_token: str, a: Agency, policy: str) -> None:
    resp = await client.put(
        f"/admin/v1/agencies/{a.id}/verification",
        json={"policy": policy},
        headers=auth(admin_token),
    )
    assert resp.status == 200, await resp.text()
    # No cache to clear: the service caches the policy for a second, but the process that
    # set it (the test's services) forgets its entry at once.


async def _sent(a: Agency, to: str = MSISDN, **fields: Any) -> tuple[str, dict[str, Any]]:
    """Send one message; return its code (read from the stored text) and the message row."""
    status, body = await a.send({"to": to, "text": "قبض آب شما صادر شد.", **fields})
    assert status == 202, body
    row = await opened_one(
        a.services.store,
        "SELECT id, data_key, body_sealed, body, parts, encoding, sender, created_at "
        "FROM messages WHERE id = $1",
        uuid.UUID(body["id"]),
    )
    assert row is not None
    m = _CODE.search(row["body"])
    assert m, row["body"]
    return ascii_digits(m.group(1)), dict(row)


async def _ask(client: Any, msisdn: str, code: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    resp = await client.post("/v1/verify", json={"msisdn": msisdn, "code": code})
    return resp.status, await resp.json(content_type=None), time.monotonic() - started


async def test_code_appended_counted_and_verified(
    services: Services, client: Any, admin_token: str
) -> None:
    a = await _agency(services, client, name_fa="سازمان ثبت اسناد", name_en="Deeds Registry")
    await _policy(client, admin_token, a, "per_message")
    # per_message: only when asked.
    status, body = await a.send({"to": MSISDN, "text": "بدون کد"})
    assert status == 202
    plain = (
        await opened_one(
            services.store,
            "SELECT id, data_key, body_sealed, body FROM messages WHERE id = $1::uuid",
            body["id"],
        )
    )["body"]
    assert "کد تأیید" not in plain
    code, row = await _sent(a, verify=True)
    assert len(code) == 6
    assert (row["encoding"], row["parts"]) == plan(row["body"])  # the code is in the count
    assert row["body"].startswith("قبض آب شما صادر شد.")

    # Genuine, from the number it was sent to (written any way a citizen writes it).
    for number in (MSISDN, "09121234567", "۰۹۱۲۱۲۳۴۵۶۷"):
        status, got, seconds = await _ask(client, number, code)
        assert status == 200, got
        assert got["genuine"] is True
        assert got["agency"] == {"name_fa": "سازمان ثبت اسناد", "name_en": "Deeds Registry"}
        assert got["sender"] == "404012"
        assert re.fullmatch(r"[۰-۹]{4}/[۰-۹]{2}/[۰-۹]{2} [۰-۹]{2}:[۰-۹]{2}", got["sent_at_jalali"])
        assert "سازمان ثبت اسناد" in got["message_fa"]
        assert seconds < 3.0
    # Persian digits in the code too.
    code_fa = code.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    assert (await _ask(client, MSISDN, code_fa))[1]["genuine"] is True

    # Wrong number: the same code means nothing for anyone else (no enumeration).
    status, got, _ = await _ask(client, "+989351112233", code)
    assert (status, got["status"], got["agency"]) == (200, "not_genuine", None)
    assert NOT_SENT_FA in got["message_fa"]
    # Forged code.
    forged = f"{(int(code) + 1) % 10**6:06d}"
    assert (await _ask(client, MSISDN, forged))[1]["status"] == "not_genuine"
    assert (await _ask(client, MSISDN, "12"))[1]["status"] == "not_genuine"

    # Stored: keyed hashes, agency, sender, time; no text, no number, no code.
    rows = await services.store.pool.fetch("SELECT * FROM verification_codes")
    assert len(rows) == 1
    raw = repr([dict(r) for r in rows]).encode() + b"".join(
        bytes(r["code_hash"]) + bytes(r["recipient_hash"]) for r in rows
    )
    for secret in (b"9121234567", code.encode(), "قبض".encode()):
        assert secret not in raw
    assert set(rows[0].keys()) == {
        "code_hash",
        "recipient_hash",
        "agency_id",
        "sender",
        "sent_at",
        "expires_at",
    }


async def test_policies_always_never_and_idempotent_path(
    services: Services, client: Any, admin_token: str
) -> None:
    a = await _agency(services, client)
    status, body = await a.send({"to": MSISDN, "text": "x", "verify": True})
    assert (status, body["code"]) == (422, "verification_off")  # default policy: never
    await _policy(client, admin_token, a, "always")
    code, _ = await _sent(a)
    assert (await _ask(client, MSISDN, code))[1]["genuine"] is True
    # With an Idempotency-Key (the other commit path), the code commits with the message.
    status, body = await a.send(
        {"to": "+989121234500", "text": "با کلید"}, **{"Idempotency-Key": "k-1"}
    )
    assert status == 202
    text = (
        await opened_one(
            services.store,
            "SELECT id, data_key, body_sealed, body FROM messages WHERE id = $1::uuid",
            body["id"],
        )
    )["body"]
    m = _CODE.search(text)
    assert m
    assert (await _ask(client, "+989121234500", ascii_digits(m.group(1))))[1]["genuine"]
    resp = await client.get(f"/admin/v1/agencies/{a.id}/verification", headers=auth(admin_token))
    assert (await resp.json())["policy"] == "always"
    bad = await client.put(
        f"/admin/v1/agencies/{a.id}/verification",
        json={"policy": "sometimes"},
        headers=auth(admin_token),
    )
    assert bad.status == 422
    entries = await services.store.audit.list(
        action="agency.set_verification", since=None, limit=5, before_id=None
    )
    assert [e.detail for e in entries] == [{"before": "never", "after": "always"}]


async def test_batch_messages_each_get_their_own_code(
    services: Services, client: Any, admin_token: str
) -> None:
    a = await _agency(services, client)
    await _policy(client, admin_token, a, "always")
    numbers = [f"+98912123450{i}" for i in range(3)]
    resp = await client.post(
        "/v1/batches",
        json={
            "template": "سلام {name}",
            "recipients": [{"to": n, "params": {"name": f"علی{i}"}} for i, n in enumerate(numbers)],
        },
        headers=a.headers(),
    )
    got = await resp.json()
    assert resp.status == 202, got
    rows = await opened(
        services.store,
        "SELECT id, data_key, body_sealed, recipient, body, parts, encoding FROM messages "
        "ORDER BY recipient",
    )
    codes = {}
    for r in rows:
        m = _CODE.search(r["body"])
        assert m
        assert (r["encoding"], r["parts"]) == plan(r["body"])
        codes[r["recipient"]] = ascii_digits(m.group(1))
    assert len(set(codes.values())) == 3
    for n, code in codes.items():
        assert (await _ask(client, n, code))[1]["genuine"] is True
    other = numbers[1] if numbers[0] != numbers[1] else numbers[2]
    assert (await _ask(client, other, codes[numbers[0]]))[1]["status"] == "not_genuine"


async def test_attempts_are_rate_limited_per_number(
    services: Services, client: Any, admin_token: str
) -> None:
    a = await _agency(services, client)
    await _policy(client, admin_token, a, "always")
    code, _ = await _sent(a)
    limit = services.config.verification.attempts_per_hour
    for i in range(limit - 1):
        assert (await _ask(client, MSISDN, f"{i:06d}"))[0] == 200
    assert (await _ask(client, MSISDN, code))[1]["genuine"] is True  # the last allowed
    status, got, _ = await _ask(client, MSISDN, code)  # even the right code, once over
    assert status == 429
    assert got["code"] == "verification_rate_limited"
    assert got["message_fa"]
    # The form says the same; another number is not affected.
    resp = await client.post("/verify", data={"msisdn": MSISDN, "code": code})
    assert resp.status == 429
    assert 'data-status="rate_limited"' in await resp.text()
    assert (await _ask(client, "+989351112233", code))[0] == 200
    # Counted in PostgreSQL: a second app (another process's view) sees the same count.
    count = await services.store.pool.fetchval("SELECT max(attempts) FROM verification_attempts")
    assert count == limit + 2


async def test_verify_page_form_answers(services: Services, client: Any, admin_token: str) -> None:
    a = await _agency(services, client)
    await _policy(client, admin_token, a, "always")
    code, _ = await _sent(a)
    resp = await client.get("/verify")
    page = await resp.text()
    assert resp.status == 200
    assert '<html lang="fa" dir="rtl">' in page
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert "http" not in page.replace('action="/verify"', "")  # no external asset at all
    resp = await client.post("/verify", data={"msisdn": "09121234567", "code": code})
    assert 'data-status="genuine"' in await resp.text()
    resp = await client.post("/verify", data={"msisdn": "09121234567", "code": "000000"})
    assert NOT_SENT_FA in await resp.text()
    resp = await client.post("/verify", data={"msisdn": "12", "code": "000000"})
    assert resp.status == 422
    resp = await client.post("/verify", data={"msisdn": "0912" * 5000, "code": "1"})
    assert resp.status == 413


def test_code_extraction_from_forwarded_text() -> None:
    assert extract_code("۱۲۳۴۵۶", 6) == "123456"
    forwarded = "قبض آب شما ۱۲۰۰۰۰ ریال است.\nلغو۱۱\nکد تأیید: ۶۵۴۳۲۱"
    assert extract_code(forwarded, 6) == "654321"
    assert extract_code("کد تایید:654321", 6) == "654321"
    assert extract_code("سلام", 6) is None
    assert extract_code("۱۱۱۱۱۱ و ۲۲۲۲۲۲", 6) is None  # ambiguous: no guess


async def test_sms_path_through_the_simulator(
    sms: Any, pool: asyncpg.Pool, admin_token: str
) -> None:
    sim, services, client = await sms()
    a = await sms_agency(services, client, name_fa="بیمه سلامت")
    await _policy(client, admin_token, a, "always")
    code, _ = await _sent(a)
    root = services.config.verification.root_number

    async def answer_to(number: str, after: int) -> str:
        digits = number.lstrip("+")

        async def arrived() -> bool:
            return len([m for m in sim.received if m.source == root]) > after

        await wait_for(arrived, timeout=20)
        got = [m for m in sim.received if m.source == root][after]
        assert got.destination.lstrip("+") == digits
        return got.text

    started = time.monotonic()
    # 1. The code alone.
    await sim.inject_mo("989121234567", root, code)
    text = await answer_to("989121234567", 0)
    assert "بیمه سلامت" in text
    assert "۴۰۴۰۱۲" in text
    # 2. The whole message forwarded.
    original = next(m for m in sim.received if m.source == "404012").text
    await sim.inject_mo("989121234567", root, original)
    assert "بیمه سلامت" in await answer_to("989121234567", 1)
    # 3. Forged code, and 4. the right code from another number: not sent through Payam Iran.
    await sim.inject_mo("989121234567", root, "000001")
    assert NOT_SENT_FA in await answer_to("989121234567", 2)
    await sim.inject_mo("989351112233", root, code)
    assert NOT_SENT_FA in await answer_to("989351112233", 3)
    # 5. Rate limited: the same counter as the web path.
    limit = services.config.verification.attempts_per_hour
    for _ in range(limit - 3):
        assert (await _ask(client, MSISDN, "000000"))[0] == 200
    await sim.inject_mo("989121234567", root, code)
    assert "بیش از حد" in await answer_to("989121234567", 4)
    # The answers are the platform's own messages: nothing reached an agency's replies.
    assert await pool.fetchval("SELECT count(*) FROM replies") == 0
    assert time.monotonic() - started < 60


async def test_expired_codes_are_purged_and_no_longer_verify(
    services: Services, client: Any, admin_token: str
) -> None:
    a = await _agency(services, client)
    await _policy(client, admin_token, a, "always")
    code, _ = await _sent(a)
    await services.store.pool.execute(
        "UPDATE verification_codes SET expires_at = now() - interval '1 second'"
    )
    assert (await _ask(client, MSISDN, code))[1]["status"] == "not_genuine"
    assert await services.verification.purge() == 1
    assert await services.store.pool.fetchval("SELECT count(*) FROM verification_codes") == 0


async def test_csv_batch_per_message_verify(
    services: Services, client: Any, admin_token: str
) -> None:
    a = await _agency(services, client)
    await _policy(client, admin_token, a, "per_message")
    resp = await client.post(
        "/v1/batches",
        params={"template": "نوبت شما فردا است", "verify": "true"},
        data=b"to\n09121234567\n",
        headers=a.headers(**{"Content-Type": "text/csv"}),
    )
    assert resp.status == 202, await resp.text()
    body = (
        await opened_one(services.store, "SELECT id, data_key, body_sealed, body FROM messages")
    )["body"]
    m = _CODE.search(body)
    assert m
    assert (await _ask(client, MSISDN, ascii_digits(m.group(1))))[1]["genuine"] is True
