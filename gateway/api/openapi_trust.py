"""OpenAPI paths of the citizen-trust routes (docs/TRUST.md), merged into gateway/api/openapi.py."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi import (
    ADMIN_R,
    ADMIN_W,
    AGENCY_ID,
    STR,
    TIME,
    _body,
    _obj,
    _ok,
    _op,
)

_DOMAINS = _obj(
    {
        "domains": {
            "type": "array",
            "items": STR,
            "maxItems": 100,
            "description": "bare domain names, Unicode or punycode; stored in punycode. Links "
            "in the agency's SMS may point only to these and their subdomains.",
        }
    },
    ["domains"],
)


_POLICY = _obj(
    {
        "policy": {
            "enum": ["always", "never", "per_message"],
            "description": "always: every SMS ends with a verification code; per_message: when "
            'the request says "verify": true; never (default)',
        }
    },
    ["policy"],
)
_DAYS = {"type": ["integer", "null"], "minimum": 1, "maximum": 7305}
_RETENTION_PUT = _obj(
    {
        "sms": {**_DAYS, "description": "days SMS and reply texts are kept; null: default"},
        "letter": {**_DAYS, "description": "days letter contents are kept; null: default"},
    }
)
_CHANNEL = _obj({"days": {"type": "integer"}, "default": {"type": "boolean"}}, ["days", "default"])
_RETENTION = _obj({"sms": _CHANNEL, "letter": _CHANNEL}, ["sms", "letter"])
_ANSWER = _obj(
    {
        "status": {"enum": ["genuine", "not_genuine"]},
        "genuine": {"type": "boolean"},
        "agency": {
            "type": ["object", "null"],
            "properties": {"name_fa": STR, "name_en": STR},
        },
        "sender": {"type": ["string", "null"]},
        "sent_at": TIME,
        "sent_at_jalali": {"type": ["string", "null"], "description": "Tehran time, Persian"},
        "message_fa": STR,
        "message_en": STR,
    }
)
_HTML = {"200": {"description": "Persian RTL page", "content": {"text/html": {"schema": STR}}}}
# The form answers a bad input or too many attempts with the page again, saying why (a citizen
# at a browser reads a page, not problem+json).
_HTML_FORM = {
    **_HTML,
    "422": {
        "description": "the page again, with what is wrong in the number or the code",
        "content": {"text/html": {"schema": STR}},
    },
    "429": {
        "description": "the page again: too many attempts for this number",
        "content": {"text/html": {"schema": STR}},
    },
}


def trust_paths() -> dict[str, Any]:
    return {
        "/admin/v1/agencies/{agency_id}/verification": {
            "get": _op(
                "The agency's verification-code policy",
                _ok("policy", _POLICY),
                security="adminToken",
                params=[AGENCY_ID],
                errors=ADMIN_R,
            ),
            "put": _op(
                "Set the agency's verification-code policy (audited)",
                _ok("policy now in force", _POLICY),
                security="adminToken",
                params=[AGENCY_ID],
                body=_body(_POLICY),
                errors=ADMIN_W,
            ),
        },
        "/admin/v1/agencies/{agency_id}/retention": {
            "get": _op(
                "How long the agency's contents are kept, per channel (docs/TRUST.md)",
                _ok("days per channel", _RETENTION),
                security="adminToken",
                params=[AGENCY_ID],
                errors=ADMIN_R,
            ),
            "put": _op(
                "Set the agency's retention per channel; past it, texts are purged and data "
                "keys shredded (audited)",
                _ok("retention now in force", _RETENTION),
                security="adminToken",
                params=[AGENCY_ID],
                body=_body(_RETENTION_PUT),
                errors=ADMIN_W,
            ),
        },
        "/v1/verify": {
            "post": _op(
                "A citizen checks a message: the number it came to and its code. Public; "
                "attempts are limited per number and hour (429 verification_rate_limited)",
                _ok("the answer", _ANSWER),
                security=None,
                body=_body(
                    _obj(
                        {
                            "msisdn": {**STR, "description": "the number the SMS came to"},
                            "code": {**STR, "description": "the code «کد تأیید» in the SMS"},
                        },
                        ["msisdn", "code"],
                    )
                ),
                errors=(400, 413, 415, 422, 429),
            )
        },
        "/verify": {
            "get": _op("The verification page for citizens (HTML form)", _HTML, security=None),
            "post": _op(
                "The verification form's answer (application/x-www-form-urlencoded msisdn, "
                "code), as a page",
                _HTML_FORM,
                security=None,
            ),
        },
        "/admin/v1/agencies/{agency_id}/domains": {
            "get": _op(
                "The agency's registered link domains",
                _ok("domains", _DOMAINS),
                security="adminToken",
                params=[AGENCY_ID],
                errors=ADMIN_R,
            ),
            "put": _op(
                "Replace the agency's registered link domains (audited)",
                _ok("domains now registered", _DOMAINS),
                security="adminToken",
                params=[AGENCY_ID],
                body=_body(_DOMAINS),
                errors=ADMIN_W,
            ),
        },
    }
