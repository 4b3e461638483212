"""Admin reports (issue 8): ``GET /admin/v1/reports/sla`` (Art 9) and
``GET /admin/v1/reports/usage`` (Art 6), JSON or CSV (``format=csv``)."""

from __future__ import annotations

import uuid

from aiohttp import web

from gateway.api.http import admin_auth, json_response, services
from gateway.errors import Problem
from gateway.reports import (
    Period,
    current_month,
    jalali_month,
    sla_csv,
    sla_report,
    usage_csv,
    usage_statement,
)


def _params(request: web.Request) -> tuple[Period, uuid.UUID | None, str]:
    month = request.query.get("month")
    period = jalali_month(month) if month else current_month()
    raw = request.query.get("agency_id")
    try:
        agency = uuid.UUID(raw) if raw else None
    except ValueError:
        raise Problem("invalid_parameter", "agency_id must be an agency id") from None
    fmt = request.query.get("format", "json")
    if fmt not in {"json", "csv"}:
        raise Problem("invalid_parameter", "format must be json or csv")
    return period, agency, fmt


def _csv(text: str, name: str) -> web.Response:
    resp = web.Response(text=text, content_type="text/csv", charset="utf-8")
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp


async def get_sla_report(request: web.Request) -> web.Response:
    """GET /admin/v1/reports/sla?month=1405-09[&agency_id=][&format=csv]."""
    await admin_auth(request, write=False)
    period, agency, fmt = _params(request)
    svc = services(request)
    report = await sla_report(svc.store, svc.config, period, agency)
    if fmt == "csv":
        return _csv(sla_csv(report), f"payam-sla-{period.key}.csv")
    return json_response(report)


async def get_usage_report(request: web.Request) -> web.Response:
    """GET /admin/v1/reports/usage?month=1405-09[&agency_id=][&format=csv]: the statement."""
    await admin_auth(request, write=False)
    period, agency, fmt = _params(request)
    svc = services(request)
    statement = await usage_statement(svc.store, svc.ops.tariffs, period, agency)
    if fmt == "csv":
        return _csv(usage_csv(statement), f"payam-usage-{period.key}.csv")
    return json_response(statement)


def register(app: web.Application) -> None:
    app.router.add_get("/admin/v1/reports/sla", get_sla_report)
    app.router.add_get("/admin/v1/reports/usage", get_usage_report)
