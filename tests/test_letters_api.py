"""POST/GET /v1/letters against the real database: multipart with attachments, magic-byte
checks, limits, recipients by checksum, idempotency, tracking numbers, isolation between
agencies, and receipts verified offline by `payam verify-receipt` (and refused when altered)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.api.app import build_app
from gateway.config import Config, load_config
from gateway.letters.tracking_numbers import damm_digit, new_tracking_number, parse_tracking
from gateway.numbering import Request
from gateway.sealing import Sealer
from gateway.services import Services, build_services
from gateway.store import Store
from tests.conftest import make_agency, make_key
from tests.letters_harness import (
    COMPANY,
    EXE,
    PDF,
    PNG,
    LetterAgency,
    letters_env,
    metadata,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def lcfg(config: Config, tmp_path: Path) -> Config:
    return load_config(
        None,
        env=letters_env(
            tmp_path,
            {
                "PAYAM_DATABASE_URL": config.database.url,
                "PAYAM_SECURITY_MASTER_KEY_FILE": config.security.master_key_file,
            },
        ),
    )


@pytest.fixture
async def lsvc(lcfg: Config, pool: asyncpg.Pool, sealer: Sealer) -> Services:
    return build_services(lcfg, Store(pool), sealer)


@pytest.fixture
async def lclient(lsvc: Services, aiohttp_client: Any) -> Any:
    return await aiohttp_client(build_app(lsvc))


async def letter_agency(
    svc: Services, client: Any, shortcode: str | None = "404012"
) -> LetterAgency:
    agency_id = await make_agency(svc)
    if shortcode:
        agency = await svc.agencies.get(agency_id)
        await svc.numbering.allocate(agency, Request("shortcode", shortcode), actor="t")
    return LetterAgency(client, agency_id, await make_key(svc, agency_id))


def test_tracking_number_check_digit_catches_typos() -> None:
    for _ in range(50):
        t = new_tracking_number()
        assert parse_tracking(t) == t
        digits = t.replace("KP-", "").replace("-", "")
        assert damm_digit(digits) == "0"
        for i in range(12):  # every single-digit error
            for d in "0123456789":
                if d != digits[i]:
                    assert parse_tracking(digits[:i] + d + digits[i + 1 :]) is None
        for i in range(11):  # every adjacent transposition
            if digits[i] != digits[i + 1]:
                swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
                assert parse_tracking(swapped) is None
    persian = t.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")).replace("KP-", "")
    assert parse_tracking(persian) == t
    assert parse_tracking(" kp " + digits) == t


async def test_send_with_attachments_then_get_with_evidence(lsvc: Services, lclient: Any) -> None:
    tax = await letter_agency(lsvc, lclient)
    status, body = await tax.send(
        metadata(client_ref="t-1", deemed_delivery={"after_days": 14}),
        [("برگ.pdf", "application/pdf", PDF), ("scan.png", "image/png", PNG)],
    )
    assert status == 202, body
    assert parse_tracking(body["tracking_number"]) == body["tracking_number"]
    assert body["status"] == "accepted"
    assert body["deemed_delivery"] == {"after_days": 14}
    assert [a["content_type"] for a in body["attachments"]] == ["application/pdf", "image/png"]
    assert body["attachments"][0]["name"] == "برگ.pdf"
    status, got = await tax.get(f"/v1/letters/{body['id']}")
    assert status == 200
    assert [e["type"] for e in got["evidence"]] == ["accepted"]
    ev = got["evidence"][0]
    assert ev["content_sha256"] == got["content_sha256"]
    assert ev["prev_sha256"] == "0" * 64
    assert ev["detail"]["tracking_number"] == body["tracking_number"]
    data = await lsvc.store.pool.fetchval(
        "SELECT data FROM letter_attachments WHERE letter_id = $1 AND idx = 0",
        __import__("uuid").UUID(body["id"]),
    )
    assert PDF not in bytes(data)  # sealed at rest (docs/TRUST.md)
    stored = await lsvc.store.letters.attachments(__import__("uuid").UUID(body["id"]))
    assert stored[0].data == PDF
    status, by_tracking = await tax.get(
        "/v1/letters/tracking/" + body["tracking_number"].replace("-", " ")
    )
    assert status == 200
    assert by_tracking["id"] == body["id"]
    digits = body["tracking_number"].replace("KP-", "").replace("-", "")
    typo = digits[:3] + str((int(digits[3]) + 1) % 10) + digits[4:]
    status, problem = await tax.get(f"/v1/letters/tracking/{typo}")
    assert status == 422
    assert problem["code"] == "invalid_tracking_number"


@pytest.mark.parametrize(
    ("meta", "files", "status", "code"),
    [
        (
            metadata(),
            [("virus.pdf", "application/pdf", EXE)],
            422,
            "unsupported_attachment",
        ),
        (metadata(), [("x.png", "application/pdf", PNG)], 422, "unsupported_attachment"),
        (
            metadata(),
            [("big.pdf", "application/pdf", PDF + b"0" * 5000)],
            413,
            "attachment_too_large",
        ),
        (
            metadata(),
            [("a.pdf", "application/pdf", PDF + b"0" * 3000)] * 3,
            413,
            "attachment_too_large",
        ),
        (
            metadata(recipient={"kind": "person", "id": "0076229646"}),
            [],
            422,
            "invalid_letter_recipient",
        ),
        (
            metadata(recipient={"kind": "company", "id": "10380284791"}),
            [],
            422,
            "invalid_letter_recipient",
        ),
        (metadata(subject=""), [], 422, "invalid_value"),
        (metadata(deemed_delivery={"after_days": 0}), [], 422, "invalid_value"),
        (metadata(deemed_delivery="sometime"), [], 422, "invalid_value"),
        (metadata(colour="red"), [], 422, "unknown_field"),
    ],
)
async def test_refusals_write_nothing(
    lsvc: Services, lclient: Any, meta: Any, files: Any, status: int, code: str
) -> None:
    tax = await letter_agency(lsvc, lclient)
    got_status, problem = await tax.send(meta, files)
    assert (got_status, problem["code"]) == (status, code), problem
    assert await lsvc.store.pool.fetchval("SELECT count(*) FROM letters") == 0


async def test_not_multipart_and_no_metadata(lsvc: Services, lclient: Any) -> None:
    tax = await letter_agency(lsvc, lclient)
    resp = await lclient.post("/v1/letters", json=metadata(), headers=tax.headers())
    assert resp.status == 400
    assert (await resp.json())["code"] == "malformed_multipart"
    resp = await lclient.post("/v1/letters", headers=tax.headers())
    assert resp.status == 400
    resp = await lclient.post(
        "/v1/letters", data=letter_form_without_metadata(), headers=tax.headers()
    )
    assert (await resp.json())["code"] == "malformed_multipart"
    resp = await lclient.post(
        "/v1/letters", data=b"", headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert resp.status == 401


async def test_control_characters_in_a_part_header_are_400_not_500(
    lsvc: Services, lclient: Any
) -> None:
    """Found by the schemathesis run (tests/test_api_fuzz.py): aiohttp's part-header parser
    raises its own HttpProcessingError, which escaped as a 500."""
    tax = await letter_agency(lsvc, lclient)
    body = b'--b\r\nContent-Disposition: form-data; name="\x16"\r\n\r\n{}\r\n--b--\r\n'
    resp = await lclient.post(
        "/v1/letters",
        data=body,
        headers={**tax.headers(), "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert resp.status == 400
    assert (await resp.json())["code"] == "malformed_multipart"


def letter_form_without_metadata() -> Any:
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("attachment", PDF, filename="a.pdf", content_type="application/pdf")
    return form


async def test_company_recipient_and_notice_needs_a_4040_number(
    lsvc: Services, lclient: Any
) -> None:
    no_number = await letter_agency(lsvc, lclient, shortcode=None)
    status, problem = await no_number.send(metadata())
    assert status == 409
    assert problem["code"] == "no_sender"
    status, body = await no_number.send(metadata(notify_sms=False))
    assert status == 202, body
    status, body = await no_number.send(metadata(recipient={"kind": "company", "id": COMPANY}))
    assert status == 202, body  # no SMS notice for companies: no directory holds their numbers
    assert body["notify_sms"] is False
    assert body["recipient"]["kind"] == "company"


async def test_idempotency_key(lsvc: Services, lclient: Any) -> None:
    tax = await letter_agency(lsvc, lclient)
    files = [("a.pdf", "application/pdf", PDF)]
    s1, b1 = await tax.send(metadata(), files, **{"Idempotency-Key": "k-1"})
    s2, b2 = await tax.send(metadata(), files, **{"Idempotency-Key": "k-1"})
    assert (s1, s2) == (202, 200)
    assert b1["id"] == b2["id"]
    assert b1["tracking_number"] == b2["tracking_number"]
    s3, b3 = await tax.send(metadata(subject="دیگر"), files, **{"Idempotency-Key": "k-1"})
    assert s3 == 409
    assert b3["code"] == "idempotency_key_reused"
    assert await lsvc.store.pool.fetchval("SELECT count(*) FROM letters") == 1


async def test_agencies_do_not_see_each_others_letters(lsvc: Services, lclient: Any) -> None:
    a = await letter_agency(lsvc, lclient, "404012")
    b = await letter_agency(lsvc, lclient, "404013")
    _, letter = await a.send(metadata())
    for path in (
        f"/v1/letters/{letter['id']}",
        f"/v1/letters/{letter['id']}/receipt",
        f"/v1/letters/tracking/{letter['tracking_number']}",
    ):
        status, _problem = await b.get(path)
        assert status == 404, path
        assert (await a.get(path))[0] == 200


def _verify(receipt: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "verify-receipt", str(receipt), *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


async def test_receipt_verifies_offline_and_tampering_fails(
    lsvc: Services, lclient: Any, tmp_path: Path
) -> None:
    tax = await letter_agency(lsvc, lclient)
    _, letter = await tax.send(metadata(), [("a.pdf", "application/pdf", PDF)])
    status, receipt = await tax.get(f"/v1/letters/{letter['id']}/receipt")
    assert status == 200
    keys = await (await lclient.get("/v1/keys/evidence")).json()  # public: no auth
    assert keys["keys"][0]["algorithm"] == "Ed25519"
    assert keys["keys"][0]["current"] is True
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(keys))
    pem_file = tmp_path / "key.pem"
    pem_file.write_text(keys["keys"][0]["public_key_pem"])
    good = tmp_path / "receipt.json"
    good.write_text(json.dumps(receipt, ensure_ascii=False))
    for extra in ((), ("--public-key", str(keys_file)), ("--public-key", str(pem_file))):
        done = _verify(good, *extra)
        assert done.returncode == 0, done.stderr
        assert "VALID" in done.stdout
        assert letter["tracking_number"] in done.stdout

    def tampered(change: Any, name: str) -> Path:
        doc = json.loads(json.dumps(receipt))
        change(doc)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc, ensure_ascii=False))
        return path

    cases = {
        "subject": (lambda d: d["letter"].update(subject="متن دیگر"), "content altered"),
        "attachment": (
            lambda d: d["letter"]["attachments"][0].update(sha256="0" * 64),
            "content altered",
        ),
        "event_time": (
            lambda d: d["events"][0].update(at="2020-01-01T00:00:00Z"),
            "event_sha256 does not match",
        ),
        "event_detail_rehashed": (lambda d: _rehash(d, "source", "smtp"), "signature is not valid"),
        "dropped": (lambda d: d["events"].clear(), "must start"),
    }
    for name, (change, reason) in cases.items():
        done = _verify(tampered(change, name), "--public-key", str(keys_file))
        assert done.returncode == 1, (name, done.stdout)
        assert reason in done.stderr, (name, done.stderr)
    # A receipt re-signed with another key passes only its own embedded key, not the platform's.
    other = tmp_path / "other.pem"
    from gateway.letters.evidence import write_new_evidence_key

    write_new_evidence_key(tmp_path / "other.key")
    from cryptography.hazmat.primitives import serialization

    priv = serialization.load_pem_private_key((tmp_path / "other.key").read_bytes(), None)
    other.write_bytes(
        priv.public_key().public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    done = _verify(good, "--public-key", str(other))
    assert done.returncode == 1
    assert "unknown key" in done.stderr


def _rehash(doc: dict[str, Any], key: str, value: str) -> None:
    """Edit an event's detail and recompute its hash (as a forger would): only the signature
    can catch it."""
    from gateway.letters.evidence import canonical, sha256_hex

    event = doc["events"][0]
    event["detail"][key] = value
    payload = {
        k: event[k]
        for k in (
            "letter_id",
            "seq",
            "type",
            "at",
            "content_sha256",
            "prev_sha256",
            "key_id",
            "detail",
        )
    }
    event["event_sha256"] = sha256_hex(canonical({"v": 1, **payload}))


async def test_garbled_multipart_and_an_event_before_the_deposit(
    lsvc: Services, lclient: Any
) -> None:
    tax = await letter_agency(lsvc, lclient)
    resp = await lclient.post(
        "/v1/letters",
        data=b"--x\r\nContent-Disposition: form-data\r\n\r\nno end",
        headers={**tax.headers(), "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert resp.status == 400
    assert (await resp.json())["code"] in ("malformed_multipart", "malformed_json")
    _, letter = await tax.send(metadata())
    from tests.letters_harness import EBOX_TO_GW

    body = {
        "event_id": "0b0e5bb6-7a5c-4d1e-9a52-8d1b8b9b7a11",
        "letter_id": letter["id"],
        "type": "opened",
        "at": "2026-12-03T10:05:00Z",
        "actor": {"kind": "owner"},
    }
    resp = await lclient.post(
        "/kartpooshe/v1/events", json=body, headers={"Authorization": f"Bearer {EBOX_TO_GW}"}
    )
    assert resp.status == 503  # not recorded as deposited yet: the e-box retries
    assert await lsvc.store.pool.fetchval("SELECT count(*) FROM ebox_events_seen") == 0


async def test_agency_default_deemed_policy_and_per_letter_override(
    lsvc: Services, lclient: Any, admin_token: str
) -> None:
    from tests.conftest import auth

    tax = await letter_agency(lsvc, lclient)
    status, body = await tax.send(metadata())
    assert body["deemed_delivery"] == {"after_days": 10}  # the platform default
    resp = await lclient.patch(
        f"/admin/v1/agencies/{tax.id}/letters/settings",
        json={"deemed_delivery": "on_open"},
        headers=auth(admin_token),
    )
    assert resp.status == 200
    resp = await lclient.patch(
        f"/admin/v1/agencies/{tax.id}/letters/settings",
        json={"deemed_delivery": {"after_days": 0}},
        headers=auth(admin_token),
    )
    assert (await resp.json())["code"] == "invalid_value"
    _, body = await tax.send(metadata(subject="دوم"))
    assert body["deemed_delivery"] == "on_open"
    _, body = await tax.send(metadata(subject="سوم", deemed_delivery={"after_days": 20}))
    assert body["deemed_delivery"] == {"after_days": 20}
    status, _ = await tax.get(f"/admin/v1/agencies/{tax.id}/letters/settings")
    assert status == 403  # an agency key cannot read admin routes
