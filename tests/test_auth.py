"""Agency JWT and admin-token authentication, through real HTTP against a real database."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import jwt
import pytest

from gateway.credentials import key_context, new_key_material, shown_secret
from gateway.sealing import Sealer
from gateway.services import Services
from tests.conftest import agency_jwt, auth, make_agency, make_key


async def _me(client: Any, token: str) -> tuple[int, dict[str, Any]]:
    resp = await client.get("/v1/me", headers=auth(token))
    return resp.status, await resp.json(content_type=None)


async def _audit_outcomes(services: Services) -> list[str]:
    entries = await services.store.audit.list(
        action="auth.refused", since=None, limit=100, before_id=None
    )
    return [e.outcome for e in entries]


async def test_good_token_returns_agency_numbers_and_limits(
    services: Services, client: Any
) -> None:
    agency_id = await make_agency(services, tps=77)
    agency = await services.agencies.get(agency_id)
    from gateway.numbering import Request

    await services.numbering.allocate(agency, Request("shortcode", "404077"), actor="test")
    issued = await make_key(services, agency_id)
    status, body = await _me(client, agency_jwt(issued.key.key_id, issued.secret))
    assert status == 200
    assert body["agency"]["id"] == str(agency_id)
    assert body["limits"] == {"tps": 77, "daily_fragment_quota": 500_000}
    assert body["test_mode"] is False
    assert [n["value"] for n in body["numbers"]] == ["404077"]
    keys = await services.store.credentials.list_keys(agency_id)
    assert keys[0].last_used_at is not None


async def test_test_key_is_marked_test(services: Services, client: Any) -> None:
    agency_id = await make_agency(services)
    issued = await make_key(services, agency_id, key_type="test")
    status, body = await _me(client, agency_jwt(issued.key.key_id, issued.secret))
    assert status == 200
    assert body["test_mode"] is True
    assert body["key"]["key_type"] == "test"
    assert issued.key.key_id.startswith("test_")


@pytest.mark.parametrize(
    ("iat_offset", "code"),
    [
        (-31, "token_expired"),
        (-600, "token_expired"),
        (31, "token_from_future"),
        (3600, "token_from_future"),
    ],
)
async def test_iat_outside_window_refused(
    services: Services, client: Any, iat_offset: int, code: str
) -> None:
    agency_id = await make_agency(services)
    issued = await make_key(services, agency_id)
    token = agency_jwt(issued.key.key_id, issued.secret, iat=time.time() + iat_offset)
    status, body = await _me(client, token)
    assert (status, body["code"]) == (401, code)
    assert body["status"] == 401


async def test_iat_inside_window_accepted(services: Services, client: Any) -> None:
    agency_id = await make_agency(services)
    issued = await make_key(services, agency_id)
    for offset in (-25, 25):
        status, _ = await _me(
            client, agency_jwt(issued.key.key_id, issued.secret, iat=time.time() + offset)
        )
        assert status == 200


async def test_replayed_jti_refused(services: Services, client: Any) -> None:
    agency_id = await make_agency(services)
    issued = await make_key(services, agency_id)
    token = agency_jwt(issued.key.key_id, issued.secret)
    assert (await _me(client, token))[0] == 200
    status, body = await _me(client, token)
    assert (status, body["code"]) == (401, "token_replayed")
    # Same jti in a new token (new iat) is still a replay.
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    again = agency_jwt(issued.key.key_id, issued.secret, iat=time.time() - 1, jti=jti)
    assert (await _me(client, again))[1]["code"] == "token_replayed"


async def test_wrong_secret_refused_and_audited_without_secret(
    services: Services, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    agency_id = await make_agency(services)
    issued = await make_key(services, agency_id)
    forged = agency_jwt(issued.key.key_id, "not-the-secret-" + "x" * 20)
    status, body = await _me(client, forged)
    assert (status, body["code"]) == (401, "bad_signature")
    entries = await services.store.audit.list(
        action="auth.refused", since=None, limit=10, before_id=None
    )
    assert entries[0].outcome == "bad_signature"
    assert entries[0].target == issued.key.key_id
    assert entries[0].client_addr == "127.0.0.1"
    dumped = repr(entries) + caplog.text
    assert issued.secret not in dumped
    assert forged not in dumped
    assert "not-the-secret" not in dumped


async def test_revoked_key_refused(services: Services, client: Any) -> None:
    agency_id = await make_agency(services)
    issued = await make_key(services, agency_id)
    other = await make_key(services, agency_id)
    await services.credentials.revoke_key(agency_id, issued.key.key_id, actor="test")
    status, body = await _me(client, agency_jwt(issued.key.key_id, issued.secret))
    assert (status, body["code"]) == (401, "key_revoked")
    # Rotation: the agency's other key keeps working.
    assert (await _me(client, agency_jwt(other.key.key_id, other.secret)))[0] == 200


async def test_suspended_agency_refused_until_resumed(services: Services, client: Any) -> None:
    agency_id = await make_agency(services)
    issued = await make_key(services, agency_id)
    await services.agencies.set_status(agency_id, "suspended", "audit", actor="test")
    status, body = await _me(client, agency_jwt(issued.key.key_id, issued.secret))
    assert (status, body["code"]) == (403, "agency_suspended")
    await services.agencies.set_status(agency_id, "active", "", actor="test")
    assert (await _me(client, agency_jwt(issued.key.key_id, issued.secret)))[0] == 200


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_token"),
        ("Basic dXNlcjpwYXNz", "missing_token"),
        ("Bearer ", "missing_token"),
        ("Bearer not.a.jwt", "malformed_token"),
        ("Bearer " + "a" * 5000, "malformed_token"),
    ],
)
async def test_malformed_headers(client: Any, header: str | None, code: str) -> None:
    headers = {"Authorization": header} if header is not None else {}
    resp = await client.get("/v1/me", headers=headers)
    body = await resp.json(content_type=None)
    assert resp.status == 401
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert body["code"] == code
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_unknown_key_missing_claims_and_alg_none(services: Services, client: Any) -> None:
    agency_id = await make_agency(services)
    issued = await make_key(services, agency_id)
    cases = {
        agency_jwt("live_0000000000000000", issued.secret): "unknown_key",
        jwt.encode(
            {"iss": issued.key.key_id, "iat": int(time.time())}, issued.secret, algorithm="HS256"
        ): "missing_claim",
        jwt.encode(
            {"iat": int(time.time()), "jti": "x"}, issued.secret, algorithm="HS256"
        ): "missing_claim",
        jwt.encode(
            {"iss": issued.key.key_id, "iat": int(time.time()), "jti": "y"}, None, algorithm="none"
        ): "unsupported_algorithm",
        _hs512(issued.key.key_id, issued.secret): "unsupported_algorithm",
    }
    for token, code in cases.items():
        status, body = await _me(client, token)
        assert (status, body["code"]) == (401, code), token
    assert sorted(await _audit_outcomes(services)) == sorted(cases.values())


def _hs512(key_id: str, secret: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns that the key is short for SHA-512
        return jwt.encode(
            {"iss": key_id, "iat": int(time.time()), "jti": "z"}, secret, algorithm="HS512"
        )


async def test_expired_exp_claim_refused(services: Services, client: Any) -> None:
    agency_id = await make_agency(services)
    issued = await make_key(services, agency_id)
    token = agency_jwt(issued.key.key_id, issued.secret, exp=int(time.time()) - 5)
    assert (await _me(client, token))[1]["code"] == "token_expired"


async def test_agency_key_on_admin_route_forbidden(services: Services, client: Any) -> None:
    agency_id = await make_agency(services)
    issued = await make_key(services, agency_id)
    token = agency_jwt(issued.key.key_id, issued.secret)
    for method, path in [
        ("GET", "/admin/v1/agencies"),
        ("POST", "/admin/v1/agencies"),
        ("GET", f"/admin/v1/agencies/{agency_id}/keys"),
    ]:
        resp = await client.request(method, path, headers=auth(token), json={})
        body = await resp.json(content_type=None)
        assert (resp.status, body["code"]) == (403, "agency_key_on_admin_route"), path
    assert "agency_key_on_admin_route" in await _audit_outcomes(services)


async def test_admin_token_on_agency_route_forbidden(client: Any, admin_token: str) -> None:
    status, body = await _me(client, admin_token)
    assert (status, body["code"]) == (403, "admin_token_on_agency_route")


async def test_viewer_reads_but_cannot_write(
    services: Services, client: Any, viewer_token: str
) -> None:
    agency_id = await make_agency(services)
    resp = await client.get("/admin/v1/agencies", headers=auth(viewer_token))
    assert resp.status == 200
    writes = [
        ("POST", "/admin/v1/agencies", {"name_fa": "x", "name_en": "x", "legal_id": "1"}),
        ("POST", f"/admin/v1/agencies/{agency_id}/suspend", {}),
        ("POST", f"/admin/v1/agencies/{agency_id}/keys", {"name": "k", "key_type": "live"}),
        ("POST", f"/admin/v1/agencies/{agency_id}/numbers", {"kind": "shortcode"}),
        ("PATCH", f"/admin/v1/agencies/{agency_id}", {"tps": 5}),
    ]
    for method, path, body in writes:
        resp = await client.request(method, path, headers=auth(viewer_token), json=body)
        problem = await resp.json(content_type=None)
        assert (resp.status, problem["code"]) == (403, "insufficient_role"), path
    agency = await services.agencies.get(agency_id)
    assert agency.status == "active"
    assert agency.tps == 100
    assert await services.store.credentials.list_keys(agency_id) == []


async def test_unknown_and_revoked_admin_tokens(services: Services, client: Any) -> None:
    resp = await client.get("/admin/v1/agencies", headers=auth("pa_nope"))
    assert (await resp.json(content_type=None))["code"] == "unknown_admin_token"
    issued = await services.credentials.create_admin_token(name="old", role="admin", actor="t")
    await services.credentials.revoke_admin_token(issued.token.id, actor="t")
    resp = await client.get("/admin/v1/agencies", headers=auth(issued.value))
    assert (resp.status, (await resp.json(content_type=None))["code"]) == (
        401,
        "admin_token_revoked",
    )


def test_new_key_material_keeps_its_secret_out_of_repr(sealer: Sealer) -> None:
    made = new_key_material(sealer, "live_", key_context)
    assert made.key_id.startswith("live_")
    assert len(made.key_id) == 5 + 16
    assert made.secret not in repr(made)
    assert made.secret_sealed != made.secret.encode()
    assert sealer.open(made.secret_sealed, key_context(made.key_id)) == made.secret.encode()


def test_shown_secrets_never_begin_with_a_dash() -> None:
    # token_urlsafe starts with '-' once in 64 draws: 3000 draws all miss it by chance with
    # probability (63/64)**3000 < 1e-20, so this fails if shown_secret stops filtering.
    drawn = [shown_secret(24) for _ in range(3000)]
    assert not [s for s in drawn if s.startswith("-")]
    assert len(set(drawn)) == len(drawn)
    assert {len(s) for s in drawn} == {32}
