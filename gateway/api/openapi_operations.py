"""OpenAPI paths of the operators' routes (issue 8): gateway/api/admin_operations.py and
gateway/api/admin_reports.py. Merged into the document by gateway/api/openapi.spec()."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi import (
    ADMIN_R,
    ADMIN_W,
    AGENCY_ID,
    INT,
    STR,
    UUID,
    _body,
    _obj,
    _ok,
    _op,
    _path_param,
    _query,
)

NUM = {"type": "number"}
NULLABLE_NUM = {"type": ["number", "null"]}
BOOL = {"type": "boolean"}
_REASON = _body(_obj({"reason": {**STR, "maxLength": 500}}), required=False)
_STATUS = _obj(
    {
        "crisis": _obj({"on": BOOL, "non_crisis_rate_per_second": NUM}),
        "operators": {
            "type": "array",
            "items": _obj(
                {
                    "name": STR,
                    "paused": BOOL,
                    "binds": INT,
                    "drained_binds": {"type": "array", "items": INT},
                }
            ),
        },
    }
)
_BATCH_ID = _path_param("batch_id", UUID)
_OPERATOR = _path_param("operator", STR)
_BIND = _path_param("bind", {**INT, "minimum": 0})
_PERIOD = _obj(
    {
        "month": STR,
        "label_fa": STR,
        "from": {**STR, "format": "date-time"},
        "to": {**STR, "format": "date-time"},
        "first_day_jalali": STR,
        "last_day_jalali": STR,
    }
)
_REPORT_QUERY = [
    _query("month", STR, "Jalali month, e.g. 1405-09 (default: the current one, Tehran time)"),
    _query("agency_id", UUID, "only this agency"),
    _query("format", {**STR, "enum": ["json", "csv"]}, "csv: a download, formula-safe"),
]
_SLA_AGENCY = _obj(
    {
        "agency_id": UUID,
        "name_fa": STR,
        "name_en": STR,
        "volume": INT,
        "finished": INT,
        "delivered": INT,
        "delivery_ratio": NULLABLE_NUM,
        "latency_seconds": _obj({"p50": NULLABLE_NUM, "p95": NULLABLE_NUM, "p99": NULLABLE_NUM}),
        "delivered_late": INT,
        "targets": _obj({"latency_p95_seconds": NUM, "delivery_ratio": NUM}),
        "breaches": {"type": "array", "items": {**STR, "enum": ["latency_p95", "delivery_ratio"]}},
    }
)
_USAGE_LINE = _obj(
    {
        "item": {
            **STR,
            "enum": [
                "sms_fragment",
                "ussd_session",
                "letter_person",
                "letter_company",
                "letter_person_attachment_mib",
                "letter_company_attachment_mib",
            ],
        },
        "operator": STR,
        "priority": STR,
        "quantity": INT,
        "unit_price": INT,
        "amount": INT,
    }
)
_USAGE_AGENCY = _obj(
    {
        "agency_id": UUID,
        "name_fa": STR,
        "name_en": STR,
        "lines": {"type": "array", "items": _USAGE_LINE},
        "sms_fragments": INT,
        "letter_notice_fragments": INT,
        "ussd_sessions": INT,
        "letters": INT,
        "letter_attachment_mib": INT,
        "total": INT,
    }
)


def _report(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    ok = _ok(description, schema)
    ok["200"]["content"]["text/csv"] = {"schema": STR}
    return ok


def operations_paths() -> dict[str, Any]:
    admin = "adminToken"
    return {
        "/admin/v1/operations": {
            "get": _op(
                "Crisis mode and paused operators",
                _ok("state", _STATUS),
                security=admin,
                errors=ADMIN_R,
            )
        },
        "/admin/v1/operators/{operator}/pause": {
            "post": _op(
                "Pause an operator: its messages wait, their attempts are not used up (audited)",
                _ok("state", _STATUS),
                security=admin,
                params=[_OPERATOR],
                body=_REASON,
                errors=ADMIN_W,
            )
        },
        "/admin/v1/operators/{operator}/resume": {
            "post": _op(
                "Resume a paused operator (audited)",
                _ok("state", _STATUS),
                security=admin,
                params=[_OPERATOR],
                body=_REASON,
                errors=ADMIN_W,
            )
        },
        "/admin/v1/operators/{operator}/binds/{bind}/drain": {
            "post": _op(
                "Drain one bind: no new submits, in-flight answered, then unbind (audited)",
                _ok("state", _STATUS),
                security=admin,
                params=[_OPERATOR, _BIND],
                body=_REASON,
                errors=ADMIN_W,
            )
        },
        "/admin/v1/operators/{operator}/binds/{bind}/undrain": {
            "post": _op(
                "Bind a drained bind again (audited)",
                _ok("state", _STATUS),
                security=admin,
                params=[_OPERATOR, _BIND],
                body=_REASON,
                errors=ADMIN_W,
            )
        },
        "/admin/v1/crisis-mode": {
            "post": _op(
                "Crisis mode on or off: non-crisis lanes get ops.crisis_share of the operators' "
                "capacity (audited)",
                _ok("state", _STATUS),
                security=admin,
                body=_body(
                    _obj({"on": BOOL, "reason": {**STR, "maxLength": 500}}, required=["on"])
                ),
                errors=ADMIN_W,
            )
        },
        "/admin/v1/batches/{batch_id}/cancel": {
            "post": _op(
                "Cancel every waiting message of any agency's batch (audited)",
                _ok("cancelled", _obj({"id": UUID, "cancelled": INT})),
                security=admin,
                params=[_BATCH_ID],
                body=_REASON,
                errors=ADMIN_W,
            )
        },
        "/admin/v1/batches/{batch_id}/resend": {
            "post": _op(
                "Queue the batch's rejected, expired and undeliverable messages again (audited)",
                _ok("requeued", _obj({"id": UUID, "requeued": INT})),
                security=admin,
                params=[_BATCH_ID],
                body=_REASON,
                errors=ADMIN_W,
            )
        },
        "/admin/v1/agencies/{agency_id}/sla": {
            "put": _op(
                "Set the agency's SLA targets, Art 9 (audited)",
                _ok(
                    "targets",
                    _obj({"agency_id": UUID, "latency_p95_seconds": NUM, "delivery_ratio": NUM}),
                ),
                security=admin,
                params=[AGENCY_ID],
                body=_body(
                    _obj(
                        {
                            "latency_p95_seconds": {**NUM, "exclusiveMinimum": 0},
                            "delivery_ratio": {**NUM, "minimum": 0, "maximum": 1},
                        },
                        required=["latency_p95_seconds", "delivery_ratio"],
                    )
                ),
                errors=ADMIN_W,
            )
        },
        "/admin/v1/reports/sla": {
            "get": _op(
                "SLA report (Art 9) per agency for a Jalali month",
                _report(
                    "report",
                    _obj(
                        {
                            "period": _PERIOD,
                            "api": _obj(
                                {
                                    "requests": INT,
                                    "server_errors": INT,
                                    "availability": NULLABLE_NUM,
                                }
                            ),
                            "agencies": {"type": "array", "items": _SLA_AGENCY},
                        }
                    ),
                ),
                security=admin,
                params=_REPORT_QUERY,
                errors=ADMIN_R,
            )
        },
        "/admin/v1/reports/usage": {
            "get": _op(
                "Usage statement (Art 6) per agency for a Jalali month, priced by the tariffs",
                _report(
                    "statement",
                    _obj(
                        {
                            "period": _PERIOD,
                            "currency": STR,
                            "agencies": {"type": "array", "items": _USAGE_AGENCY},
                        }
                    ),
                ),
                security=admin,
                params=_REPORT_QUERY,
                errors=ADMIN_R,
            )
        },
    }
