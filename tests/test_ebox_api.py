"""The e-box deposit API (EBOX-PROTOCOL §1) over real HTTP into a real PostgreSQL."""

from __future__ import annotations

import hashlib

import aiohttp
import pytest

from tests.conftest import legal_id
from tests.ebox_harness import (  # noqa: F401  (fixtures)
    G2E,
    RunningEbox,
    deposit,
    ebox,
    ebox_database_url,
    ebox_pool,
    gateway_standin,
    letter_metadata,
    national_code,
)

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40


async def test_first_deposit_stores_letter_and_attachment(ebox: RunningEbox) -> None:
    owner = national_code(76229)
    files = [("برگ تشخیص.pdf", "application/pdf", PDF)]
    meta = letter_metadata(owner, attachments=files)
    status, body = await deposit(ebox.url, meta, files)
    assert status == 201, body
    assert body["letter_id"] == meta["letter_id"]
    assert body["deposited_at"].endswith("Z")
    letter = await ebox.store.letters.get(owner, meta["letter_id"])
    assert letter is not None
    assert letter.subject == meta["subject"]
    assert [a.name for a in letter.attachments] == ["برگ تشخیص.pdf"]
    att = await ebox.store.letters.attachment(owner, meta["letter_id"], 0)
    assert att is not None
    assert att.data == PDF
    assert await ebox.store.access.box_kind(owner) == "person"


async def test_repeat_is_idempotent_with_original_time(ebox: RunningEbox) -> None:
    meta = letter_metadata(national_code(123456))
    first_status, first = await deposit(ebox.url, meta)
    again_status, again = await deposit(ebox.url, meta)
    assert (first_status, again_status) == (201, 200)
    assert again == first
    assert len(await ebox.store.letters.list_for_box(national_code(123456))) == 1


async def test_same_id_other_content_is_conflict(ebox: RunningEbox) -> None:
    meta = letter_metadata(national_code(2222))
    assert (await deposit(ebox.url, meta))[0] == 201
    other = {**meta, "content_sha256": hashlib.sha256(b"other").hexdigest(), "subject": "x"}
    status, body = await deposit(ebox.url, other)
    assert status == 409
    assert body["code"] == "letter_conflict"
    letter = await ebox.store.letters.get(national_code(2222), meta["letter_id"])
    assert letter is not None
    assert letter.subject == meta["subject"]


async def test_company_box_is_made_on_first_deposit(ebox: RunningEbox) -> None:
    company = legal_id()
    status, _ = await deposit(ebox.url, letter_metadata(company, kind="company"))
    assert status == 201
    assert await ebox.store.access.box_kind(company) == "company"


@pytest.mark.parametrize(
    "recipient",
    [
        {"kind": "person", "id": "0076229646"},  # bad check digit
        {"kind": "person", "id": "1111111111"},  # all equal digits
        {"kind": "company", "id": "10380284791"},  # bad legal-entity check digit
        {"kind": "person", "id": "10380284790"},  # a legal-entity id given as a person
        {"kind": "robot", "id": "0076229645"},
    ],
)
async def test_bad_recipient(ebox: RunningEbox, recipient: dict[str, str]) -> None:
    meta = letter_metadata("0076229645")
    meta["recipient"] = recipient
    status, body = await deposit(ebox.url, meta)
    assert status == 422
    assert body["code"] == "invalid_recipient"
    assert await ebox.store.letters.list_for_box(recipient["id"]) == []


async def test_persian_digits_in_recipient_are_normalised(ebox: RunningEbox) -> None:
    meta = letter_metadata("۰۰۷۶۲۲۹۶۴۵")
    assert (await deposit(ebox.url, meta))[0] == 201
    assert len(await ebox.store.letters.list_for_box("0076229645")) == 1


async def test_attachment_hash_mismatch_stores_nothing(ebox: RunningEbox) -> None:
    owner = national_code(3333)
    files = [("a.pdf", "application/pdf", PDF)]
    meta = letter_metadata(owner, attachments=files)
    tampered = [("a.pdf", "application/pdf", PDF[:-1] + b"X")]
    status, body = await deposit(ebox.url, meta, tampered)
    assert status == 422
    assert body["code"] == "invalid_letter"
    assert "sha256" in body["detail"]
    assert await ebox.store.letters.list_for_box(owner) == []


async def test_attachment_count_mismatch(ebox: RunningEbox) -> None:
    files = [("a.pdf", "application/pdf", PDF)]
    meta = letter_metadata(national_code(4444), attachments=files)
    status, body = await deposit(ebox.url, meta, [])
    assert (status, body["code"]) == (422, "invalid_letter")
    status, body = await deposit(ebox.url, meta, files + files)
    assert (status, body["code"]) == (422, "invalid_letter")


async def test_letter_id_must_match_url(ebox: RunningEbox) -> None:
    meta = letter_metadata(national_code(5555))
    status, body = await deposit(ebox.url, meta, letter_id="another-id")
    assert (status, body["code"]) == (422, "invalid_letter")


@pytest.mark.parametrize("token", ["", "wrong", G2E + "x", "ebox-to-gateway-" + "e" * 32])
async def test_unauthorised(ebox: RunningEbox, token: str) -> None:
    meta = letter_metadata(national_code(6666))
    status, body = await deposit(ebox.url, meta, token=token)
    assert status == 401
    assert body["code"] == "unauthorised"
    assert await ebox.store.letters.list_for_box(national_code(6666)) == []


async def test_too_large(
    ebox_database_url: str, ebox_pool: object, gateway_standin: object
) -> None:
    from adapters.kartpooshe.ebox.app import build_app, build_context
    from adapters.kartpooshe.ebox.store import EboxStore
    from tests.ebox_harness import _serve, ebox_config

    cfg = ebox_config(ebox_database_url, "http://127.0.0.1:9", PAYAM_EBOX_MAX_DEPOSIT_BYTES="4096")
    runner, url = await _serve(build_app(build_context(cfg, EboxStore(ebox_pool))))  # type: ignore[arg-type]
    try:
        files = [("big.pdf", "application/pdf", PDF)]
        status, body = await deposit(
            url, letter_metadata(national_code(7777), attachments=files), files
        )
        assert status == 413
        assert body["code"] == "too_large"
    finally:
        await runner.cleanup()


async def test_metrics_count_deposits(ebox: RunningEbox) -> None:
    meta = letter_metadata(national_code(8888))
    await deposit(ebox.url, meta)
    await deposit(ebox.url, meta)
    async with aiohttp.ClientSession() as s, s.get(f"{ebox.url}/metrics") as resp:
        text = await resp.text()
    assert 'payam_ebox_deposits_total{outcome="created"}' in text
    assert 'payam_ebox_deposits_total{outcome="repeated"}' in text
    assert "payam_http_requests_total" not in text  # its own registry, not the gateway's
