"""The OpenAPI 3.1 document, served at ``GET /v1/openapi.json``.

Built in code so that schemas are shared, not copied; a test proves that every registered route
appears here and nothing here is missing from the router.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web

from gateway import __version__
from gateway.api import openapi_app, openapi_letters
from gateway.api.http import json_response
from gateway.errors import CATALOGUE

JSON = "application/json"
PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": {JSON: {"schema": schema}}}}


def _problems(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {
            "description": "problem+json; see the `code`",
            "content": {PROBLEM: {"schema": _ref("Problem")}},
        }
        for s in statuses
    }


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    security: str | None,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[int, ...] = (),
) -> dict[str, Any]:
    if security == "agencyJwt" and 429 not in errors:  # per-key rate limit, every agency route
        errors = (*errors, 429)
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, **_problems(*errors)}}
    op["security"] = [{security: []}] if security else []
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = params
    return op


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


STR = {"type": "string"}
INT = {"type": "integer"}
TIME = {"type": ["string", "null"], "format": "date-time"}
UUID = {"type": "string", "format": "uuid"}
AGENCY_ID = _path_param("agency_id", UUID)
ADMIN_W = (400, 401, 403, 404, 409, 413, 415, 422)
ADMIN_R = (400, 401, 403, 404)


def _schemas() -> dict[str, Any]:
    agency_fields = {
        "name_fa": {**STR, "maxLength": 200, "description": "Persian name"},
        "name_en": {**STR, "maxLength": 200},
        "contact_name": {**STR, "maxLength": 200},
        "contact_email": {**STR, "maxLength": 254},
        "contact_phone": {**STR, "maxLength": 32, "description": "stored as E.164"},
        "tps": {**INT, "minimum": 1, "maximum": 100000, "default": 50},
        "daily_fragment_quota": {
            **INT,
            "minimum": 0,
            "default": 100000,
            "description": "SMS fragments per Tehran day",
        },
        "link_domains": {
            "type": "array",
            "items": STR,
            "maxItems": 100,
            "description": "domains (and subdomains) links in SMS may point to",
        },
        "callback_url": {
            **STR,
            "maxLength": 2048,
            "description": "https:// (http only for loopback)",
        },
        "mandatory_allowed": {
            "type": "boolean",
            "description": "may send mandatory messages (no opt-out)",
        },
    }
    legal_id = {
        **STR,
        "pattern": "^[0-9]{11}$",
        "description": "legal-entity national ID (شناسه ملی), checksum-validated",
    }
    allocation = _obj(
        {
            "id": INT,
            "kind": {"enum": ["shortcode", "sub_number", "ussd_code", "mask"]},
            "value": STR,
            "agency_id": UUID,
            "parent_id": {"type": ["integer", "null"]},
            "label": STR,
            "allocated_at": TIME,
            "allocated_by": STR,
            "released_at": TIME,
            "released_by": {"type": ["string", "null"]},
            "quarantine_until": TIME,
            "active": {"type": "boolean"},
        }
    )
    return {
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "code"],
            "properties": {
                "type": STR,
                "title": STR,
                "title_fa": STR,
                "status": INT,
                "detail": STR,
                "detail_fa": STR,
                "instance": STR,
                "code": {"enum": sorted(CATALOGUE)},
                "screen": {**STR, "description": "invalid_ussd_menu: the first screen at fault"},
                "errors": {
                    "type": "array",
                    "items": _obj({"field": STR, "screen": STR, "code": STR, "message": STR}),
                },
            },
        },
        "AgencyCreate": _obj(
            {**agency_fields, "legal_id": legal_id}, ["name_fa", "name_en", "legal_id"]
        ),
        "AgencyUpdate": _obj(agency_fields),
        "Agency": _obj(
            {
                "id": UUID,
                **agency_fields,
                "legal_id": legal_id,
                "status": {"enum": ["active", "suspended"]},
                "status_reason": STR,
                "created_at": TIME,
                "updated_at": TIME,
            }
        ),
        "ApiKey": _obj(
            {
                "key_id": STR,
                "agency_id": UUID,
                "name": STR,
                "key_type": {"enum": ["live", "test"]},
                "fingerprint": STR,
                "created_at": TIME,
                "revoked_at": TIME,
                "last_used_at": TIME,
                "active": {"type": "boolean"},
            }
        ),
        "Allocation": allocation,
        "AllocateRequest": _obj(
            {
                "kind": {"enum": ["shortcode", "sub_number", "ussd_code", "mask"]},
                "value": {**STR, "description": "omit to take the next free value"},
                "digits": {**INT, "minimum": 1, "maximum": 8},
                "parent_id": {
                    **INT,
                    "description": "for sub_number: the shortcode's allocation id",
                },
                "label": STR,
            },
            ["kind"],
        ),
        "AuditEntry": _obj(
            {
                "id": INT,
                "at": TIME,
                "actor": STR,
                "action": STR,
                "target": STR,
                "outcome": STR,
                "client_addr": STR,
                "detail": {"type": "object"},
            }
        ),
        "SendMessage": _obj(
            {
                "to": {**STR, "description": "mobile number: +98…, 0098…, 98…, 09… or 9…"},
                "national_code": {
                    **STR,
                    "description": "instead of `to`: resolved by the citizen directory (Shahkar)",
                },
                "text": {**STR, "maxLength": 1000},
                "priority": {"enum": ["crisis", "high", "normal", "bulk"], "default": "normal"},
                "mandatory": {"type": "boolean", "description": "no opt-out; needs permission"},
                "send_at": {**STR, "format": "date-time"},
                "valid_until": {**STR, "format": "date-time"},
                "client_ref": {**STR, "maxLength": 100},
                "callback_url": STR,
                "sender": {**STR, "description": "one of the agency's own numbers or masks"},
                "verify": {
                    "type": "boolean",
                    "description": "append a verification code (agency policy per_message)",
                },
                **openapi_app.SEND_FIELDS,
            },
            ["text"],
        ),
        "Accepted": {
            "type": "object",
            "properties": {
                "id": UUID,
                "status": {"enum": ["queued", "scheduled"]},
                "recipient": STR,
                "sender": STR,
                "parts": INT,
                "encoding": {"enum": ["gsm7", "ucs2"]},
                "priority": STR,
                "mandatory": {"type": "boolean"},
                "test": {"type": "boolean"},
                "send_at": TIME,
                "valid_until": TIME,
                "client_ref": STR,
                "created_at": TIME,
            },
        },
        "Message": {
            "type": "object",
            "properties": {
                "id": UUID,
                "status": {
                    "enum": [
                        "accepted",
                        "scheduled",
                        "queued",
                        "submitted",
                        "delivered",
                        "undeliverable",
                        "expired",
                        "rejected",
                        "cancelled",
                    ]
                },
                "recipient": STR,
                "sender": STR,
                "text": STR,
                "parts": INT,
                "encoding": STR,
                "priority": STR,
                "mandatory": {"type": "boolean"},
                "test": {"type": "boolean"},
                "operator": {"type": ["string", "null"]},
                "batch_id": {"type": ["string", "null"]},
                "client_ref": STR,
                "error_code": {"type": ["string", "null"]},
                "send_at": TIME,
                "valid_until": TIME,
                "created_at": TIME,
                "updated_at": TIME,
                "final_at": TIME,
                "history": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "status": {
                                **STR,
                                "description": "a status, or an app-channel event: app_skipped, "
                                "app_fallback, read (docs/APP_CHANNEL.md)",
                            },
                            "at": TIME,
                            "detail": {"type": "object"},
                        },
                    },
                },
            },
        },
        "Batch": {
            "type": "object",
            "properties": {
                "template": {**STR, "description": "text with {placeholders}"},
                "recipients": {
                    "type": "array",
                    "maxItems": 100000,
                    "items": _obj(
                        {
                            "to": STR,
                            "national_code": STR,
                            "params": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        }
                    ),
                },
                "priority": STR,
                "mandatory": {"type": "boolean"},
                "send_at": STR,
                "valid_until": STR,
                "client_ref": STR,
                "callback_url": STR,
                "sender": STR,
                "verify": {"type": "boolean", "description": "a verification code per message"},
                **openapi_app.SEND_FIELDS,
            },
            "required": ["template", "recipients"],
            "additionalProperties": False,
        },
        "BatchAccepted": {
            "type": "object",
            "properties": {
                "id": UUID,
                "status": STR,
                "total": INT,
                "accepted": INT,
                "rejected": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"index": INT, "code": STR, "detail": STR},
                    },
                },
                "rejected_count": INT,
                "fragments": INT,
                "sender": STR,
                "test": {"type": "boolean"},
            },
        },
        "BatchStatus": {
            "type": "object",
            "properties": {
                "id": UUID,
                "total": INT,
                "accepted": INT,
                "rejected_count": INT,
                "counts": {"type": "object", "additionalProperties": INT},
                "progress": {"type": "number"},
                "client_ref": STR,
                "test": {"type": "boolean"},
                "created_at": TIME,
                "cancelled_at": TIME,
            },
        },
        "Reply": {
            "type": "object",
            "properties": {
                "id": UUID,
                "cursor": STR,
                "from": STR,
                "to": STR,
                "text": STR,
                "keyword": {"type": ["string", "null"], "enum": ["opt_out", "opt_in", None]},
                "in_reply_to": {"type": ["string", "null"]},
                "channel": STR,
                "operator": STR,
                "received_at": TIME,
            },
        },
        "UssdMenuDefinition": {
            "type": "object",
            "description": "root screen id and screens by id; kinds menu, input, message, "
            "remote (docs/USSD.md)",
            "required": ["root", "screens"],
            "properties": {
                "root": STR,
                "screens": {
                    "type": "object",
                    "additionalProperties": _obj(
                        {
                            "kind": {"enum": ["menu", "input", "message", "remote"]},
                            "text": STR,
                            "options": {
                                "type": "array",
                                "items": _obj({"label": STR, "next": STR}, ["label", "next"]),
                            },
                            "next": STR,
                            "validate": {"enum": ["digits", "national_code", "text"]},
                            "min_length": INT,
                            "max_length": INT,
                            "error": STR,
                            "url": STR,
                            "fallback": STR,
                            "send_msisdn": {"type": "boolean"},
                        },
                        ["kind"],
                    ),
                },
            },
            "additionalProperties": False,
        },
        "UssdMenu": _obj(
            {
                "agency_id": UUID,
                "version": INT,
                "updated_by": STR,
                "updated_at": TIME,
                "menu": _ref("UssdMenuDefinition"),
            }
        ),
        "Me": _obj(
            {
                "agency": _obj(
                    {"id": UUID, "name_fa": STR, "name_en": STR, "legal_id": STR, "status": STR}
                ),
                "key": _obj({"key_id": STR, "key_type": STR}),
                "test_mode": {"type": "boolean"},
                "limits": _obj({"tps": INT, "daily_fragment_quota": INT}),
                "numbers": {"type": "array", "items": _ref("Allocation")},
                "link_domains": {"type": "array", "items": STR},
                "callback_url": STR,
            }
        ),
        **_push_schemas(),
    }


def _push_schemas() -> dict[str, Any]:
    """Network-initiated USSD push (docs/USSD.md, adapters/ussd/push.py)."""
    nullable = {"type": ["string", "null"]}
    return {
        "UssdPushCreate": _obj(
            {
                "to": {**STR, "maxLength": 32, "description": "Iranian mobile number"},
                "text": {
                    **STR,
                    "maxLength": 182,
                    "description": "one screen: ussd.page_chars_ucs2 (72) Persian or "
                    "ussd.page_chars_gsm7 (160) GSM characters",
                },
                "mode": {
                    "enum": ["notify", "request"],
                    "default": "notify",
                    "description": "notify = USSN (op 3); request = USSR (op 2), an answer wanted",
                },
                "fallback_sms": {"type": "boolean", "default": True},
                "fallback_text": {
                    **STR,
                    "maxLength": 1000,
                    "description": "SMS text when the push fails (default: text)",
                },
                "fallback_priority": {
                    "enum": ["crisis", "high", "normal", "bulk"],
                    "default": "high",
                },
                "mandatory": {"type": "boolean", "description": "fallback SMS is mandatory"},
                "client_ref": {**STR, "maxLength": 100},
            },
            ["to", "text"],
        ),
        "UssdPush": _obj(
            {
                "id": UUID,
                "status": {
                    "enum": [
                        "pending",
                        "submitting",
                        "sent",
                        "delivered",
                        "answered",
                        "busy",
                        "failed",
                        "timeout",
                    ]
                },
                "mode": {"enum": ["notify", "request"]},
                "to": STR,
                "text": STR,
                "service_code": {**STR, "description": "the agency's *4 code, shown as sender"},
                "operator": nullable,
                "error_code": {
                    **nullable,
                    "description": "ussd_busy, network_<type>_<MAP error>, no_route, an SMPP "
                    "status name, no_confirmation, test",
                },
                "answer": {**nullable, "description": "the citizen's answer (mode request)"},
                "test": {"type": "boolean"},
                "client_ref": STR,
                "fallback": _obj(
                    {
                        "status": {"enum": ["none", "off", "pending", "queued", "refused"]},
                        "message_id": {
                            "type": ["string", "null"],
                            "format": "uuid",
                            "description": "the SMS (GET /v1/messages/{id})",
                        },
                        "error_code": {**nullable, "description": "why the SMS was refused"},
                    }
                ),
                "created_at": TIME,
                "sent_at": TIME,
                "final_at": TIME,
            }
        ),
    }


@cache
def spec() -> dict[str, Any]:
    agency = _ok("the agency", _obj({"agency": _ref("Agency")}))
    reason = _body(_obj({"reason": {**STR, "maxLength": 500}}), required=False)
    status_obj = _obj({"status": STR, "database": STR})
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("Liveness", _ok("alive", status_obj), security=None)},
        "/readyz": {
            "get": _op(
                "Readiness (database reachable, not draining)",
                {**_ok("ready", status_obj), "503": {"description": "not ready"}},
                security=None,
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "text exposition",
                        "content": {"text/plain": {"schema": STR}},
                    }
                },
                security=None,
            )
        },
        "/v1/openapi.json": {
            "get": _op("This document", _ok("OpenAPI 3.1", {"type": "object"}), security=None)
        },
        "/v1/me": {
            "get": _op(
                "The calling agency, its numbers and limits",
                _ok("me", _ref("Me")),
                security="agencyJwt",
                errors=(401, 403),
            )
        },
        "/admin/v1/agencies": {
            "post": _op(
                "Register an agency (webhook secret shown once)",
                _ok("created", _obj({"agency": _ref("Agency"), "webhook_secret": STR}), "201"),
                security="adminToken",
                body=_body(_ref("AgencyCreate")),
                errors=ADMIN_W,
            ),
            "get": _op(
                "List agencies",
                _ok(
                    "page",
                    _obj(
                        {
                            "agencies": {"type": "array", "items": _ref("Agency")},
                            "next_after": {"type": ["string", "null"]},
                        }
                    ),
                ),
                security="adminToken",
                params=[
                    _query("status", {"enum": ["active", "suspended"]}),
                    _query("limit", {**INT, "minimum": 1, "maximum": 1000}),
                    _query("after", UUID, "next_after of the previous page"),
                ],
                errors=ADMIN_R,
            ),
        },
        "/admin/v1/agencies/{agency_id}": {
            "get": _op(
                "Show an agency", agency, security="adminToken", params=[AGENCY_ID], errors=ADMIN_R
            ),
            "patch": _op(
                "Update an agency",
                agency,
                security="adminToken",
                params=[AGENCY_ID],
                body=_body(_ref("AgencyUpdate")),
                errors=ADMIN_W,
            ),
        },
        "/admin/v1/agencies/{agency_id}/suspend": {
            "post": _op(
                "Suspend: its keys are refused at once",
                agency,
                security="adminToken",
                params=[AGENCY_ID],
                body=reason,
                errors=ADMIN_W,
            )
        },
        "/admin/v1/agencies/{agency_id}/resume": {
            "post": _op(
                "Resume a suspended agency",
                agency,
                security="adminToken",
                params=[AGENCY_ID],
                body=reason,
                errors=ADMIN_W,
            )
        },
        "/admin/v1/agencies/{agency_id}/webhook-secret": {
            "post": _op(
                "Rotate the webhook signing secret (shown once)",
                _ok("new secret", _obj({"webhook_secret": STR})),
                security="adminToken",
                params=[AGENCY_ID],
                errors=ADMIN_W,
            )
        },
        "/admin/v1/agencies/{agency_id}/keys": {
            "post": _op(
                "Issue an API key (secret shown once)",
                _ok("created", _obj({"key": _ref("ApiKey"), "secret": STR}), "201"),
                security="adminToken",
                params=[AGENCY_ID],
                body=_body(
                    _obj(
                        {"name": {**STR, "maxLength": 100}, "key_type": {"enum": ["live", "test"]}},
                        ["name", "key_type"],
                    )
                ),
                errors=ADMIN_W,
            ),
            "get": _op(
                "List an agency's keys",
                _ok("keys", _obj({"keys": {"type": "array", "items": _ref("ApiKey")}})),
                security="adminToken",
                params=[AGENCY_ID],
                errors=ADMIN_R,
            ),
        },
        "/admin/v1/agencies/{agency_id}/keys/{key_id}/revoke": {
            "post": _op(
                "Revoke a key",
                _ok("revoked", _obj({"key": _ref("ApiKey")})),
                security="adminToken",
                params=[AGENCY_ID, _path_param("key_id", STR)],
                errors=ADMIN_W,
            )
        },
        "/admin/v1/agencies/{agency_id}/numbers": {
            "post": _op(
                "Allocate a shortcode, sub-number, USSD code or mask",
                _ok("allocated", _obj({"allocation": _ref("Allocation")}), "201"),
                security="adminToken",
                params=[AGENCY_ID],
                body=_body(_ref("AllocateRequest")),
                errors=ADMIN_W,
            ),
            "get": _op(
                "An agency's allocations",
                _ok(
                    "allocations",
                    _obj({"allocations": {"type": "array", "items": _ref("Allocation")}}),
                ),
                security="adminToken",
                params=[AGENCY_ID, _query("include_released", {"type": "boolean"})],
                errors=ADMIN_R,
            ),
        },
        "/admin/v1/agencies/{agency_id}/ussd-menu": {
            "put": _op(
                "Upload the agency's USSD menu (validated; errors name the screen)",
                _ok("stored", _ref("UssdMenu")),
                security="adminToken",
                params=[AGENCY_ID],
                body=_body(_ref("UssdMenuDefinition")),
                errors=ADMIN_W,
            ),
            "get": _op(
                "The agency's USSD menu as last uploaded",
                _ok("menu", _ref("UssdMenu")),
                security="adminToken",
                params=[AGENCY_ID],
                errors=ADMIN_R,
            ),
        },
        "/ussd/{operator}": {
            "post": {
                "summary": "HTTP operator front: one step of a USSD dialog (docs/USSD.md)",
                "security": [{"ussdSecret": []}],
                "parameters": [_path_param("operator", STR)],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "sessionId": {**STR, "maxLength": 128},
                                    "serviceCode": {**STR, "maxLength": 64, "examples": ["*412#"]},
                                    "phoneNumber": {**STR, "maxLength": 32},
                                    "text": {
                                        **STR,
                                        "maxLength": 1024,
                                        "description": "inputs so far joined by *",
                                    },
                                },
                                "required": ["sessionId", "serviceCode", "phoneNumber"],
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "`CON <screen>` (wait for input) or `END <screen>`",
                        "content": {"text/plain": {"schema": STR}},
                    },
                    **_problems(401, 413, 415, 422),
                },
            }
        },
        "/admin/v1/numbers/{allocation_id}/release": {
            "post": _op(
                "Release an allocation (and its sub-numbers) into quarantine",
                _ok("released", _obj({"released": {"type": "array", "items": _ref("Allocation")}})),
                security="adminToken",
                params=[_path_param("allocation_id", INT)],
                errors=ADMIN_W,
            )
        },
        "/admin/v1/numbers/history": {
            "get": _op(
                "Who held a number, USSD code or mask, and when",
                _ok(
                    "history",
                    _obj({"value": STR, "history": {"type": "array", "items": _ref("Allocation")}}),
                ),
                security="adminToken",
                params=[{**_query("value", STR), "required": True}],
                errors=ADMIN_R,
            )
        },
        "/v1/messages": {
            "post": _op(
                "Send one SMS (202 only after it is committed)",
                _ok("accepted", _ref("Accepted"), "202"),
                security="agencyJwt",
                body=_body(_ref("SendMessage")),
                params=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {**STR, "maxLength": 200},
                        "description": "same key and body: the same answer, never a second "
                        "message; same key, other body: 409",
                    }
                ],
                errors=(400, 401, 403, 409, 413, 415, 422, 429),
            )
        },
        "/v1/ussd/pushes": {
            "post": _op(
                "Push an urgent notice by USSD (USSN/USSR), SMS fallback when busy or failed",
                _ok("accepted; sent in the background", _ref("UssdPush"), "202"),
                security="agencyJwt",
                body=_body(_ref("UssdPushCreate")),
                params=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {**STR, "maxLength": 200},
                        "description": "same key and body: the same answer, never a second push",
                    }
                ],
                errors=(400, 401, 403, 409, 413, 415, 422),
            )
        },
        "/v1/ussd/pushes/{push_id}": {
            "get": _op(
                "A push: status, the citizen's answer, the SMS fallback",
                _ok("push", _ref("UssdPush")),
                security="agencyJwt",
                params=[_path_param("push_id", UUID)],
                errors=(401, 403, 404),
            )
        },
        "/v1/messages/{message_id}": {
            "get": _op(
                "A message with its status history",
                _ok("message", _ref("Message")),
                security="agencyJwt",
                params=[_path_param("message_id", UUID)],
                errors=(401, 403, 404),
            )
        },
        "/v1/messages/{message_id}/cancel": {
            "post": _op(
                "Cancel a scheduled or queued message",
                _ok("cancelled", _ref("Message")),
                security="agencyJwt",
                params=[_path_param("message_id", UUID)],
                errors=(401, 403, 404, 409),
            )
        },
        "/v1/batches": {
            "post": _op(
                "Send one template to up to 100,000 recipients (JSON, or text/csv with a header "
                "row and the other fields as query parameters)",
                _ok("accepted", _ref("BatchAccepted"), "202"),
                security="agencyJwt",
                body={
                    "required": True,
                    "content": {
                        JSON: {"schema": _ref("Batch")},
                        "text/csv": {
                            "schema": {
                                **STR,
                                "description": "header: to or "
                                "national_code, then one column per placeholder",
                            }
                        },
                    },
                },
                params=[
                    _query("template", STR, "CSV uploads only"),
                    _query("priority", STR, "CSV uploads only"),
                    _query("channels", STR, "CSV uploads only: app,sms (docs/APP_CHANNEL.md)"),
                ],
                errors=(400, 401, 403, 409, 413, 415, 422, 429),
            )
        },
        "/v1/batches/{batch_id}": {
            "get": _op(
                "Counts by status and progress",
                _ok("batch", _ref("BatchStatus")),
                security="agencyJwt",
                params=[_path_param("batch_id", UUID)],
                errors=(401, 403, 404),
            )
        },
        "/v1/batches/{batch_id}/cancel": {
            "post": _op(
                "Cancel every waiting message of a batch",
                _ok("cancelled", _obj({"id": UUID, "cancelled": INT})),
                security="agencyJwt",
                params=[_path_param("batch_id", UUID)],
                errors=(401, 403, 404),
            )
        },
        "/v1/replies": {
            "get": _op(
                "Citizens' replies, oldest first (cursor pagination)",
                _ok(
                    "page",
                    _obj(
                        {"replies": {"type": "array", "items": _ref("Reply")}, "next_cursor": STR}
                    ),
                ),
                security="agencyJwt",
                params=[
                    _query("after", STR, "next_cursor of the previous page"),
                    _query("limit", {**INT, "minimum": 1, "maximum": 1000}),
                ],
                errors=(400, 401, 403),
            )
        },
        "/admin/v1/portability": {
            "post": _op(
                "Load ported numbers (CSV msisdn,operator or JSON); later loads overwrite",
                _ok("loaded", _obj({"loaded": INT})),
                security="adminToken",
                body={
                    "required": True,
                    "content": {
                        "text/csv": {"schema": {**STR, "description": "header: msisdn,operator"}},
                        JSON: {
                            "schema": _obj(
                                {
                                    "numbers": {
                                        "type": "array",
                                        "items": _obj(
                                            {"msisdn": STR, "operator": STR}, ["msisdn", "operator"]
                                        ),
                                    }
                                },
                                ["numbers"],
                            )
                        },
                    },
                },
                errors=ADMIN_W,
            )
        },
        "/admin/v1/audit": {
            "get": _op(
                "Audit trail, newest first",
                _ok("entries", _obj({"entries": {"type": "array", "items": _ref("AuditEntry")}})),
                security="adminToken",
                params=[
                    _query("action", STR),
                    _query("since", {**STR, "format": "date-time"}),
                    _query("before_id", INT),
                    _query("limit", INT),
                ],
                errors=ADMIN_R,
            )
        },
    }
    from gateway.api.openapi_operations import operations_paths  # imports this module

    paths.update(operations_paths())
    paths.update(openapi_letters.paths())
    from gateway.api.openapi_trust import trust_paths

    paths.update(trust_paths())
    paths.update(openapi_app.paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Payam Iran gateway",
            "version": __version__,
            "description": "سامانه یکپارچه پیام ایران — the national gateway between agencies "
            "and citizens. Agency routes take `Authorization: Bearer <JWT>` (HS256 with the key "
            "secret; claims iss=key id, iat within ±30 s, unique jti). Admin routes take an "
            "admin token. Every error is application/problem+json with a stable `code`.",
        },
        "paths": paths,
        "components": {
            "schemas": {**_schemas(), **openapi_letters.schemas(), **openapi_app.schemas()},
            "securitySchemes": {
                "agencyJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "ussdSecret": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Payam-Ussd-Secret",
                    "description": "per-operator shared secret (ussd.http_secrets)",
                },
                "eboxToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "kartpooshe.ebox_to_gateway_token (the e-box's secret)",
                },
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "opaque admin token (pa_…), role admin or viewer",
                },
                openapi_app.SECURITY: openapi_app.SECURITY_SCHEME,
            },
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    """GET /v1/openapi.json."""
    return json_response(spec())


def register(app: web.Application) -> None:
    app.router.add_get("/v1/openapi.json", openapi_json)
