"""OpenAPI paths and schemas of the app and portal channel (merged into gateway/api/openapi.py;
docs/APP_CHANNEL.md)."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi_letters import JSON, STR, TIME, UUID, _ok, _op, _path, _ref

INT = {"type": "integer"}
BOOL = {"type": "boolean"}
NATIONAL_CODE = {**STR, "maxLength": 16, "description": "the citizen's national code (کد ملی)"}
ADMIN_W = (400, 401, 403, 404, 409, 413, 415, 422)
ADMIN_R = (401, 403, 404)
APP = (400, 401, 403, 404, 413, 415, 422)
SECURITY = "appProviderJwt"


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": schema}}}


def _post(summary: str, ok: dict[str, Any], body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return _op(summary, ok, SECURITY, APP, requestBody=_body(body), **extra)


def schemas() -> dict[str, Any]:
    return {
        "AppProviderCreate": _obj(
            {
                "name": {**STR, "maxLength": 64, "description": "letters, digits, - _ ."},
                "push_url": {**STR, "description": "https:// (http only for loopback)"},
                "scopes": {
                    "type": "array",
                    "items": {"enum": ["notices", "replies"]},
                    "description": "default both",
                },
                "agencies": {
                    "type": "array",
                    "items": UUID,
                    "description": "agencies whose notices it may carry; empty = all",
                },
            },
            ["name", "push_url"],
        ),
        "AppProviderPatch": _obj(
            {
                "push_url": STR,
                "scopes": {"type": "array", "items": {"enum": ["notices", "replies"]}},
                "agencies": {"type": "array", "items": UUID},
                "status": {"enum": ["active", "suspended"]},
            }
        ),
        "AppProvider": {
            "type": "object",
            "properties": {
                "id": UUID,
                "name": STR,
                "push_url": STR,
                "scopes": {"type": "array", "items": STR},
                "agencies": {"type": "array", "items": UUID},
                "status": STR,
                "created_at": TIME,
                "updated_at": TIME,
            },
        },
        "AppProviderKey": {
            "type": "object",
            "properties": {
                "key_id": {**STR, "description": "app_…; the JWT's iss"},
                "provider_id": UUID,
                "name": STR,
                "created_at": TIME,
                "revoked_at": TIME,
                "last_used_at": TIME,
            },
        },
        "AppNotice": {
            "type": "object",
            "properties": {
                "id": {**UUID, "description": "the message id"},
                "agency": {
                    "type": "object",
                    "properties": {"id": UUID, "name_fa": STR, "name_en": STR},
                },
                "sender": STR,
                "text": STR,
                "mandatory": BOOL,
                "created_at": TIME,
                "delivered_at": TIME,
                "read_at": TIME,
            },
        },
    }


def paths() -> dict[str, Any]:
    provider = _path("provider_id")
    return {
        "/admin/v1/app-providers": {
            "post": _op(
                "Register an app provider (the push secret is shown only here)",
                _ok(
                    "created",
                    {
                        "type": "object",
                        "properties": {"provider": _ref("AppProvider"), "push_secret": STR},
                    },
                    "201",
                ),
                "adminToken",
                ADMIN_W,
                requestBody=_body(_ref("AppProviderCreate")),
            ),
            "get": _op(
                "App providers",
                _ok(
                    "providers",
                    {
                        "type": "object",
                        "properties": {
                            "providers": {"type": "array", "items": _ref("AppProvider")}
                        },
                    },
                ),
                "adminToken",
                ADMIN_R,
            ),
        },
        "/admin/v1/app-providers/{provider_id}": {
            "get": _op(
                "One app provider",
                _ok("provider", _ref("AppProvider")),
                "adminToken",
                ADMIN_R,
                parameters=[provider],
            ),
            "patch": _op(
                "Change push_url, scopes, agencies or status (suspended: no pushes, no API)",
                _ok("provider", _ref("AppProvider")),
                "adminToken",
                ADMIN_W,
                parameters=[provider],
                requestBody=_body(_ref("AppProviderPatch")),
            ),
        },
        "/admin/v1/app-providers/{provider_id}/keys": {
            "post": _op(
                "Issue a provider API key (the secret is shown only here)",
                _ok(
                    "created",
                    {
                        "type": "object",
                        "properties": {"key": _ref("AppProviderKey"), "secret": STR},
                    },
                    "201",
                ),
                "adminToken",
                ADMIN_W,
                parameters=[provider],
                requestBody=_body(_obj({"name": {**STR, "maxLength": 100}}, ["name"])),
            ),
            "get": _op(
                "The provider's keys (never the secrets)",
                _ok(
                    "keys",
                    {
                        "type": "object",
                        "properties": {"keys": {"type": "array", "items": _ref("AppProviderKey")}},
                    },
                ),
                "adminToken",
                ADMIN_R,
                parameters=[provider],
            ),
        },
        "/admin/v1/app-providers/{provider_id}/keys/{key_id}/revoke": {
            "post": _op(
                "Revoke a provider key",
                _ok("revoked", _ref("AppProviderKey")),
                "adminToken",
                ADMIN_R,
                parameters=[provider, _path("key_id")],
            )
        },
        "/app/v1/registrations": {
            "post": _post(
                "A citizen signed in on the provider's app (pushes go to citizen_ref)",
                _ok(
                    "registered",
                    {"type": "object", "properties": {"registered": BOOL, "citizen_ref": STR}},
                ),
                _obj(
                    {
                        "national_code": NATIONAL_CODE,
                        "citizen_ref": {
                            **STR,
                            "maxLength": 128,
                            "description": "the app's own id of the account (not the code)",
                        },
                    },
                    ["national_code", "citizen_ref"],
                ),
            )
        },
        "/app/v1/registrations/sign-out": {
            "post": _post(
                "The citizen signed out: no more pushes, the inbox is closed to the provider",
                _ok("signed out", {"type": "object", "properties": {"registered": BOOL}}),
                _obj({"national_code": NATIONAL_CODE}, ["national_code"]),
            )
        },
        "/app/v1/inbox": {
            "post": _post(
                "A page of the citizen's notices routed to this provider, oldest first",
                _ok(
                    "notices",
                    {
                        "type": "object",
                        "properties": {
                            "notices": {"type": "array", "items": _ref("AppNotice")},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    },
                ),
                _obj(
                    {
                        "national_code": NATIONAL_CODE,
                        "cursor": {**STR, "maxLength": 20, "description": "next_cursor"},
                        "limit": {**INT, "minimum": 1, "maximum": 100, "default": 50},
                    },
                    ["national_code"],
                ),
            )
        },
        "/app/v1/notices/{message_id}/delivered": {
            "post": _post(
                "Delivery receipt for a push answered 202 (idempotent); before the deadline",
                _ok(
                    "delivered",
                    {"type": "object", "properties": {"id": UUID, "delivered": BOOL}},
                ),
                _obj({"national_code": NATIONAL_CODE}, ["national_code"]),
                parameters=[_path("message_id")],
            )
        },
        "/app/v1/notices/{message_id}/read": {
            "post": _post(
                "Read receipt (idempotent); shows in GET /v1/messages/{id} as status read",
                _ok("read", {"type": "object", "properties": {"id": UUID, "read_at": TIME}}),
                _obj({"national_code": NATIONAL_CODE}, ["national_code"]),
                parameters=[_path("message_id")],
            )
        },
        "/app/v1/replies": {
            "post": _post(
                "The citizen's reply to a notice: reaches the agency like an SMS reply",
                _ok("stored", _ref("Reply"), "201"),
                _obj(
                    {
                        "national_code": NATIONAL_CODE,
                        "in_reply_to": {**STR, "maxLength": 36, "description": "message id"},
                        "text": {**STR, "maxLength": 1000},
                    },
                    ["national_code", "in_reply_to", "text"],
                ),
            )
        },
    }


SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "an app provider's JWT: HS256 with its key secret, iss = app_… key id",
}
SEND_FIELDS: dict[str, Any] = {
    "channel": {
        "enum": ["app", "sms"],
        "description": "one channel (docs/APP_CHANNEL.md); app needs national_code",
    },
    "channels": {
        "type": "array",
        "items": {"enum": ["app", "sms"]},
        "description": 'channel order: ["app"], ["sms"] or ["app", "sms"] (fallback)',
    },
}
