"""Admin API for agencies and keys, including every kind of bad input (nothing is written)."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest

from gateway.services import Services
from tests.conftest import agency_body, agency_jwt, auth, legal_id, make_agency


async def _count(services: Services) -> int:
    return len(await services.store.agencies.list(status=None, limit=1000, after=None))


async def test_create_show_list_update_suspend_resume(
    services: Services, client: Any, admin_token: str
) -> None:
    h = auth(admin_token)
    body = agency_body(
        name_fa="سازمان ثبت اسناد و املاك",
        contact_phone="۰۲۱۸۸۱۲۳۴۵۶",
        link_domains=["Sabt.gov.ir", "اسناد.ایران"],
    )
    resp = await client.post("/admin/v1/agencies", json=body, headers=h)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    agency = created["agency"]
    assert created["webhook_secret"].startswith("whsec_")
    assert agency["name_fa"] == "سازمان ثبت اسناد و املاک"  # Arabic kaf normalised
    assert agency["contact_phone"] == "+982188123456"
    assert agency["link_domains"] == sorted(["sabt.gov.ir", "اسناد.ایران".encode("idna").decode()])
    assert agency["status"] == "active"
    stored = await services.agencies.get(uuid.UUID(agency["id"]))
    assert services.agencies.webhook_secret(stored) == created["webhook_secret"]

    resp = await client.get(f"/admin/v1/agencies/{agency['id']}", headers=h)
    assert (await resp.json())["agency"]["legal_id"] == body["legal_id"]
    resp = await client.get("/admin/v1/agencies", headers=h)
    assert [a["id"] for a in (await resp.json())["agencies"]] == [agency["id"]]

    resp = await client.patch(
        f"/admin/v1/agencies/{agency['id']}",
        headers=h,
        json={"tps": 250, "callback_url": "http://127.0.0.1:9/cb"},
    )
    updated = (await resp.json())["agency"]
    assert (updated["tps"], updated["callback_url"]) == (250, "http://127.0.0.1:9/cb")

    resp = await client.post(
        f"/admin/v1/agencies/{agency['id']}/suspend", headers=h, json={"reason": "contract expired"}
    )
    assert (await resp.json())["agency"]["status"] == "suspended"
    resp = await client.get("/admin/v1/agencies", params={"status": "suspended"}, headers=h)
    assert len((await resp.json())["agencies"]) == 1
    resp = await client.post(f"/admin/v1/agencies/{agency['id']}/resume", headers=h)
    assert (await resp.json())["agency"]["status"] == "active"

    resp = await client.post(f"/admin/v1/agencies/{agency['id']}/webhook-secret", headers=h)
    rotated = (await resp.json())["webhook_secret"]
    assert rotated != created["webhook_secret"]

    actions = [
        e.action
        for e in await services.store.audit.list(action=None, since=None, limit=50, before_id=None)
    ]
    for action in (
        "agency.create",
        "agency.update",
        "agency.suspend",
        "agency.resume",
        "agency.rotate_webhook_secret",
    ):
        assert action in actions
    # Secrets never reach the audit trail.
    dumped = repr(
        await services.store.audit.list(action=None, since=None, limit=50, before_id=None)
    )
    assert created["webhook_secret"] not in dumped
    assert rotated not in dumped


async def test_keys_issue_list_revoke(services: Services, client: Any, admin_token: str) -> None:
    h = auth(admin_token)
    agency_id = await make_agency(services)
    resp = await client.post(
        f"/admin/v1/agencies/{agency_id}/keys",
        headers=h,
        json={"name": "backend", "key_type": "live"},
    )
    assert resp.status == 201
    issued = await resp.json()
    key_id, secret = issued["key"]["key_id"], issued["secret"]
    resp = await client.get("/v1/me", headers=auth(agency_jwt(key_id, secret)))
    assert resp.status == 200
    resp = await client.get(f"/admin/v1/agencies/{agency_id}/keys", headers=h)
    listed = (await resp.json())["keys"]
    assert [k["key_id"] for k in listed] == [key_id]
    assert listed[0]["last_used_at"] is not None
    assert secret not in await resp.text()
    # The database holds only a hash and a sealed copy, never the secret in clear.
    row = await services.store.pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", key_id)
    assert secret.encode() not in b"".join(
        v if isinstance(v, bytes) else str(v).encode() for v in row.values()
    )
    resp = await client.post(f"/admin/v1/agencies/{agency_id}/keys/{key_id}/revoke", headers=h)
    assert (await resp.json())["key"]["active"] is False
    resp = await client.get("/v1/me", headers=auth(agency_jwt(key_id, secret)))
    assert (await resp.json())["code"] == "key_revoked"
    resp = await client.post(
        f"/admin/v1/agencies/{agency_id}/keys", headers=h, json={"name": "x", "key_type": "sandbox"}
    )
    assert (resp.status, (await resp.json())["code"]) == (422, "invalid_value")


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed_json"),
        (b"[1, 2]", "application/json", 422, "wrong_type"),
        (b'{"name_fa": "x"}', "text/plain", 415, "unsupported_media_type"),
    ],
)
async def test_malformed_bodies(
    services: Services,
    client: Any,
    admin_token: str,
    raw: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    resp = await client.post(
        "/admin/v1/agencies", data=raw, headers={**auth(admin_token), "Content-Type": content_type}
    )
    body = await resp.json(content_type=None)
    assert (resp.status, body["code"]) == (status, code)
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert body["title"]
    assert body["title_fa"]
    assert await _count(services) == 0


@pytest.mark.parametrize(
    ("override", "code", "field"),
    [
        ({"colour": "blue"}, "unknown_field", "colour"),
        ({"tps": "fast"}, "wrong_type", "tps"),
        ({"tps": True}, "wrong_type", "tps"),
        ({"tps": 0}, "invalid_value", "tps"),
        ({"link_domains": "tax.gov.ir"}, "wrong_type", "link_domains"),
        ({"link_domains": ["1.2.3.4"]}, "invalid_value", "link_domains"),
        ({"link_domains": ["https://tax.gov.ir/x"]}, "invalid_value", "link_domains"),
        ({"callback_url": "http://tax.gov.ir/cb"}, "invalid_value", "callback_url"),
        ({"callback_url": "ftp://tax.gov.ir"}, "invalid_value", "callback_url"),
        ({"contact_email": "nobody"}, "invalid_value", "contact_email"),
        ({"contact_phone": "12"}, "invalid_value", "contact_phone"),
        ({"legal_id": "10380284791"}, "invalid_legal_id", "legal_id"),
        ({"legal_id": "1038028479"}, "invalid_legal_id", "legal_id"),
        ({"legal_id": "11111111111"}, "invalid_legal_id", "legal_id"),
        ({"name_fa": "   "}, "invalid_value", "name_fa"),
        ({"name_en": "x" * 201}, "invalid_value", "name_en"),
    ],
)
async def test_invalid_fields(
    services: Services,
    client: Any,
    admin_token: str,
    override: dict[str, Any],
    code: str,
    field: str,
) -> None:
    resp = await client.post(
        "/admin/v1/agencies", json=agency_body(**override), headers=auth(admin_token)
    )
    body = await resp.json(content_type=None)
    assert resp.status == 422
    assert body["code"] == code
    assert body["errors"][0]["field"] == field
    assert await _count(services) == 0


async def test_missing_fields_all_listed(services: Services, client: Any, admin_token: str) -> None:
    resp = await client.post("/admin/v1/agencies", json={"tps": 5}, headers=auth(admin_token))
    body = await resp.json()
    assert body["code"] == "missing_field"
    assert {e["field"] for e in body["errors"]} == {"name_fa", "name_en", "legal_id"}


async def test_duplicate_legal_id(services: Services, client: Any, admin_token: str) -> None:
    lid = legal_id()
    assert (
        await client.post(
            "/admin/v1/agencies", json=agency_body(legal_id=lid), headers=auth(admin_token)
        )
    ).status == 201
    resp = await client.post(
        "/admin/v1/agencies", json=agency_body(legal_id=lid), headers=auth(admin_token)
    )
    assert (resp.status, (await resp.json())["code"]) == (409, "legal_id_taken")
    assert await _count(services) == 1


async def test_oversized_body_413(services: Services, client: Any, admin_token: str) -> None:
    big = agency_body(contact_name="x" * (services.config.http.max_body_bytes + 10))
    resp = await client.post(
        "/admin/v1/agencies",
        data=io.BytesIO(json.dumps(big).encode()),
        headers={**auth(admin_token), "Content-Type": "application/json"},
    )
    assert (resp.status, (await resp.json(content_type=None))["code"]) == (413, "body_too_large")
    assert await _count(services) == 0


async def test_unknown_agency_and_bad_ids(client: Any, admin_token: str) -> None:
    h = auth(admin_token)
    for path in (
        "/admin/v1/agencies/not-a-uuid",
        "/admin/v1/agencies/00000000-0000-0000-0000-000000000000",
    ):
        resp = await client.get(path, headers=h)
        assert (resp.status, (await resp.json())["code"]) == (404, "not_found")
    resp = await client.get("/admin/v1/agencies", params={"limit": "0"}, headers=h)
    assert (resp.status, (await resp.json())["code"]) == (400, "invalid_parameter")
    resp = await client.get("/no/such/route")
    assert (resp.status, (await resp.json(content_type=None))["code"]) == (404, "not_found")
    resp = await client.delete("/v1/me")
    assert (resp.status, (await resp.json(content_type=None))["code"]) == (
        405,
        "method_not_allowed",
    )
