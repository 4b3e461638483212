"""OpenAPI paths and schemas of the letter routes (merged into gateway/api/openapi.py)."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
PROBLEM = "application/problem+json"
STR = {"type": "string"}
UUID = {"type": "string", "format": "uuid"}
TIME = {"type": ["string", "null"], "format": "date-time"}


def _problems(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {
            "description": "problem+json; see the `code`",
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for s in statuses
    }


def _ok(description: str, schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": {JSON: {"schema": schema}}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(
    summary: str,
    responses: dict[str, Any],
    security: str | None,
    errors: tuple[int, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, **_problems(*errors)}}
    op["security"] = [{security: []}] if security else []
    op.update(extra)
    return op


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": STR}


ATTACHMENT = {
    "type": "object",
    "properties": {
        "name": STR,
        "content_type": STR,
        "size": {"type": "integer"},
        "sha256": STR,
    },
}
EVENT = {
    "type": "object",
    "description": "one signed link of the evidence chain (docs/KARTPOOSHE.md)",
    "properties": {
        "letter_id": UUID,
        "seq": {"type": "integer"},
        "type": {
            "enum": [
                "accepted",
                "deposited",
                "notified",
                "opened",
                "replied",
                "deemed_delivered",
                "failed",
            ]
        },
        "at": {"type": "string", "format": "date-time"},
        "content_sha256": STR,
        "prev_sha256": STR,
        "key_id": STR,
        "detail": {"type": "object"},
        "event_sha256": STR,
        "signature": {**STR, "description": "base64 Ed25519 over the canonical event"},
    },
}
RECIPIENT = {
    "type": "object",
    "properties": {"kind": {"enum": ["person", "company"]}, "id": STR},
    "required": ["kind", "id"],
}


def schemas() -> dict[str, Any]:
    return {
        "LetterMetadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["recipient", "subject", "body"],
            "properties": {
                "recipient": RECIPIENT,
                "subject": {**STR, "maxLength": 300},
                "body": {**STR, "maxLength": 100000},
                "reply_allowed": {"type": "boolean", "default": True},
                "deemed_delivery": {
                    "oneOf": [
                        {"const": "on_open"},
                        {
                            "type": "object",
                            "properties": {
                                "after_days": {"type": "integer", "minimum": 1, "maximum": 365}
                            },
                            "required": ["after_days"],
                        },
                    ]
                },
                "notify_sms": {"type": "boolean", "default": True},
                "client_ref": {**STR, "maxLength": 100},
            },
        },
        "Letter": {
            "type": "object",
            "properties": {
                "id": UUID,
                "tracking_number": {**STR, "pattern": "^KP-[0-9]{4}-[0-9]{4}-[0-9]{4}$"},
                "status": {
                    "enum": ["accepted", "deposited", "notified", "opened", "replied", "failed"]
                },
                "recipient": RECIPIENT,
                "subject": STR,
                "reply_allowed": {"type": "boolean"},
                "deemed_delivery": {},
                "notify_sms": {"type": "boolean"},
                "notice": {"type": ["string", "null"]},
                "client_ref": STR,
                "source": {"enum": ["api", "smtp"]},
                "test": {"type": "boolean", "description": "sent with a test key"},
                "content_sha256": STR,
                "attachments": {"type": "array", "items": ATTACHMENT},
                "accepted_at": TIME,
                "deposited_at": TIME,
                "notified_at": TIME,
                "opened_at": TIME,
                "replied_at": TIME,
                "deemed_delivered_at": TIME,
                "failed_at": TIME,
                "error": {"type": ["string", "null"]},
                "evidence": {"type": "array", "items": EVENT},
            },
        },
        "LetterReceipt": {
            "type": "object",
            "description": "verify with `payam verify-receipt FILE --public-key KEYS`",
            "properties": {
                "kind": {"const": "payam.letter.receipt"},
                "version": {"const": 1},
                "issued_at": {"type": "string", "format": "date-time"},
                "letter": {"type": "object"},
                "events": {"type": "array", "items": EVENT},
                "public_keys": {"type": "array", "items": {"type": "object"}},
            },
        },
        "LetterSettings": {
            "type": "object",
            "properties": {
                "deemed_delivery": {},
                "from_addresses": {"type": "array", "items": STR},
                "office_mailbox": STR,
                "reply_webhook_url": STR,
            },
        },
        "LetterReply": {
            "type": "object",
            "properties": {
                "id": UUID,
                "cursor": STR,
                "letter_id": UUID,
                "tracking_number": STR,
                "reply_id": STR,
                "text": STR,
                "actor": {"type": "object"},
                "content_sha256": STR,
                "attachments": {"type": "array", "items": ATTACHMENT},
                "replied_at": {"type": "string", "format": "date-time"},
                "received_at": {"type": "string", "format": "date-time"},
            },
        },
    }


def paths() -> dict[str, Any]:
    letter = _ok("the letter with its evidence chain", _ref("Letter"))
    return {
        "/v1/letters": {
            "post": _op(
                "Send a letter to a person's or company's e-box (multipart: a JSON `metadata` "
                "part and `attachment` parts, PDF or images). 202 once committed; with an "
                "Idempotency-Key a repeat answers 200 with the same letter.",
                {
                    **_ok("accepted", _ref("Letter"), "202"),
                    **_ok("the letter already made under this Idempotency-Key", _ref("Letter")),
                },
                "agencyJwt",
                (400, 401, 403, 409, 413, 422),
                requestBody={
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "metadata": _ref("LetterMetadata"),
                                    "attachment": {
                                        "type": "array",
                                        "items": {"type": "string", "format": "binary"},
                                    },
                                },
                                "required": ["metadata"],
                            }
                        }
                    },
                },
                parameters=[
                    {"name": "Idempotency-Key", "in": "header", "required": False, "schema": STR}
                ],
            )
        },
        "/v1/letters/replies": {
            "get": _op(
                "Citizens' replies to this agency's letters, oldest first (cursor pagination)",
                _ok(
                    "a page",
                    {
                        "type": "object",
                        "properties": {
                            "replies": {"type": "array", "items": _ref("LetterReply")},
                            "next_cursor": STR,
                        },
                    },
                ),
                "agencyJwt",
                (400, 401, 403),
                parameters=[
                    {"name": "after", "in": "query", "required": False, "schema": STR},
                    {"name": "limit", "in": "query", "required": False, "schema": STR},
                ],
            )
        },
        "/v1/letters/tracking/{tracking_number}": {
            "get": _op(
                "A letter by tracking number (a mistyped number: 422 invalid_tracking_number)",
                letter,
                "agencyJwt",
                (401, 403, 404, 422),
                parameters=[_path("tracking_number")],
            )
        },
        "/v1/letters/{letter_id}": {
            "get": _op(
                "A letter's status and evidence chain",
                letter,
                "agencyJwt",
                (401, 403, 404),
                parameters=[_path("letter_id")],
            )
        },
        "/v1/letters/{letter_id}/receipt": {
            "get": _op(
                "A self-contained receipt, verifiable offline",
                _ok("the receipt", _ref("LetterReceipt")),
                "agencyJwt",
                (401, 403, 404),
                parameters=[_path("letter_id")],
            )
        },
        "/kartpooshe/v1/events": {
            "post": _op(
                "E-box → gateway: a letter was opened (first time) or replied to; idempotent "
                "by event_id (docs/KARTPOOSHE_PROTOCOL.md §2)",
                {"204": {"description": "applied (or already had)"}},
                "eboxToken",
                (401, 404, 415, 422),
                requestBody={"required": True, "content": {JSON: {"schema": {"type": "object"}}}},
            )
        },
        "/kartpooshe/v1/otp": {
            "post": _op(
                "E-box → gateway: send a one-time login code to the citizen's number, which "
                "the e-box never learns (docs/KARTPOOSHE_PROTOCOL.md §3)",
                _ok(
                    "sent",
                    {"type": "object", "properties": {"status": {"const": "sent"}}},
                    "202",
                ),
                "eboxToken",
                (401, 404, 415, 422, 429),
                requestBody={
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {"national_code": STR, "code": STR},
                                "required": ["national_code", "code"],
                            }
                        }
                    },
                },
            )
        },
        "/admin/v1/agencies/{agency_id}/letters/settings": {
            "get": _op(
                "An agency's letter settings",
                _ok(
                    "settings",
                    {"type": "object", "properties": {"settings": _ref("LetterSettings")}},
                ),
                "adminToken",
                (401, 403, 404),
                parameters=[_path("agency_id")],
            ),
            "patch": _op(
                "Change an agency's letter settings (only the fields given)",
                _ok(
                    "settings",
                    {"type": "object", "properties": {"settings": _ref("LetterSettings")}},
                ),
                "adminToken",
                (400, 401, 403, 404, 415, 422),
                parameters=[_path("agency_id")],
                requestBody={
                    "required": True,
                    "content": {JSON: {"schema": _ref("LetterSettings")}},
                },
            ),
        },
        "/admin/v1/agencies/{agency_id}/letters/smtp-credentials": {
            "post": _op(
                "Create SMTP AUTH credentials for the agency's office automation (the password "
                "is shown only in this answer; stored as a scrypt hash)",
                _ok(
                    "created",
                    {"type": "object", "properties": {"username": STR, "password": STR}},
                    "201",
                ),
                "adminToken",
                (400, 401, 403, 404, 409, 415, 422),
                parameters=[_path("agency_id")],
                requestBody={
                    "required": False,
                    "content": {
                        JSON: {"schema": {"type": "object", "properties": {"username": STR}}}
                    },
                },
            )
        },
        "/admin/v1/agencies/{agency_id}/letters/smtp-credentials/{username}": {
            "delete": _op(
                "Revoke SMTP credentials",
                {"204": {"description": "revoked"}},
                "adminToken",
                (401, 403, 404),
                parameters=[_path("agency_id"), _path("username")],
            )
        },
        "/v1/keys/evidence": {
            "get": _op(
                "The platform's Ed25519 evidence keys (public, no authentication)",
                _ok("keys", {"type": "object", "properties": {"keys": {"type": "array"}}}),
                None,
            )
        },
    }
