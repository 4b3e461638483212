"""Admin routes for running the platform (issue 8), each audited: operators, crisis mode,
batches, agency SLA targets (``/admin/v1/operations``, ``/admin/v1/operators/...``, …)."""

from __future__ import annotations

import uuid

from aiohttp import web

from gateway.api.admin_agencies import agency_id
from gateway.api.http import admin_auth, client_addr, json_response, read_json, services
from gateway.errors import Problem
from gateway.validation import Field, parse_object

_REASON = {"reason": Field(str, max_length=500)}
_CRISIS = {"on": Field(bool, required=True), "reason": Field(str, max_length=500)}


def _latency(value: float) -> float:
    if not 0 < value <= 7 * 86_400:
        raise Problem("invalid_value", "latency_p95_seconds must be in (0, 604800]")
    return float(value)


def _ratio(value: float) -> float:
    if not 0 <= value <= 1:
        raise Problem("invalid_value", "delivery_ratio must be in [0, 1]")
    return float(value)


_SLA = {
    "latency_p95_seconds": Field((int, float), required=True, check=_latency),
    "delivery_ratio": Field((int, float), required=True, check=_ratio),
}


async def _body(request: web.Request) -> object:
    return await read_json(request) if request.can_read_body else {}


def _batch_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["batch_id"])
    except ValueError:
        raise Problem("not_found", "no such batch") from None


async def get_operations(request: web.Request) -> web.Response:
    """GET /admin/v1/operations: crisis mode and which operators are paused."""
    await admin_auth(request, write=False)
    return json_response(services(request).ops.status())


async def _pause(request: web.Request, paused: bool) -> web.Response:
    admin = await admin_auth(request, write=True)
    data = parse_object(await _body(request), _REASON)
    ops = services(request).ops
    await ops.set_operator_paused(
        request.match_info["operator"],
        paused,
        data.get("reason", ""),
        actor=admin.actor,
        addr=client_addr(request),
    )
    return json_response(ops.status())


async def pause_operator(request: web.Request) -> web.Response:
    """POST /admin/v1/operators/{operator}/pause: its messages wait, attempts not used up."""
    return await _pause(request, True)


async def resume_operator(request: web.Request) -> web.Response:
    """POST /admin/v1/operators/{operator}/resume."""
    return await _pause(request, False)


async def _drain(request: web.Request, drained: bool) -> web.Response:
    admin = await admin_auth(request, write=True)
    data = parse_object(await _body(request), _REASON)
    raw = request.match_info["bind"]
    if not raw.isdigit():
        raise Problem("not_found", "binds are numbered 0, 1, …")
    ops = services(request).ops
    await ops.set_bind_drained(
        request.match_info["operator"],
        int(raw),
        drained,
        data.get("reason", ""),
        actor=admin.actor,
        addr=client_addr(request),
    )
    return json_response(ops.status())


async def drain_bind(request: web.Request) -> web.Response:
    """POST /admin/v1/operators/{operator}/binds/{bind}/drain: no new submits on that bind,
    in-flight ones answered, then unbind until undrained; the other binds carry the traffic."""
    return await _drain(request, True)


async def undrain_bind(request: web.Request) -> web.Response:
    """POST /admin/v1/operators/{operator}/binds/{bind}/undrain: bind it again."""
    return await _drain(request, False)


async def set_crisis(request: web.Request) -> web.Response:
    """POST /admin/v1/crisis-mode {"on": bool}: non-crisis lanes limited to ops.crisis_share."""
    admin = await admin_auth(request, write=True)
    data = parse_object(await read_json(request), _CRISIS)
    ops = services(request).ops
    await ops.set_crisis(
        data["on"], data.get("reason", ""), actor=admin.actor, addr=client_addr(request)
    )
    return json_response(ops.status())


async def cancel_batch(request: web.Request) -> web.Response:
    """POST /admin/v1/batches/{batch_id}/cancel: every waiting message of any agency's batch."""
    admin = await admin_auth(request, write=True)
    data = parse_object(await _body(request), _REASON)
    bid = _batch_id(request)
    n = await services(request).ops.cancel_batch(
        bid, data.get("reason", ""), actor=admin.actor, addr=client_addr(request)
    )
    return json_response({"id": str(bid), "cancelled": n})


async def resend_batch(request: web.Request) -> web.Response:
    """POST /admin/v1/batches/{batch_id}/resend: rejected, expired and undeliverable messages
    of the batch are queued again (after an operator outage, say)."""
    admin = await admin_auth(request, write=True)
    data = parse_object(await _body(request), _REASON)
    bid = _batch_id(request)
    n = await services(request).ops.resend_batch(
        bid, data.get("reason", ""), actor=admin.actor, addr=client_addr(request)
    )
    return json_response({"id": str(bid), "requeued": n})


async def put_sla(request: web.Request) -> web.Response:
    """PUT /admin/v1/agencies/{agency_id}/sla: the agency's SLA targets (Art 9)."""
    admin = await admin_auth(request, write=True)
    data = parse_object(await read_json(request), _SLA)
    aid = agency_id(request)
    await services(request).ops.set_sla(
        aid,
        data["latency_p95_seconds"],
        data["delivery_ratio"],
        actor=admin.actor,
        addr=client_addr(request),
    )
    return json_response({"agency_id": str(aid), **data})


def register(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/v1/operations", get_operations)
    r.add_post("/admin/v1/operators/{operator}/pause", pause_operator)
    r.add_post("/admin/v1/operators/{operator}/resume", resume_operator)
    r.add_post("/admin/v1/operators/{operator}/binds/{bind}/drain", drain_bind)
    r.add_post("/admin/v1/operators/{operator}/binds/{bind}/undrain", undrain_bind)
    r.add_post("/admin/v1/crisis-mode", set_crisis)
    r.add_post("/admin/v1/batches/{batch_id}/cancel", cancel_batch)
    r.add_post("/admin/v1/batches/{batch_id}/resend", resend_batch)
    r.add_put("/admin/v1/agencies/{agency_id}/sla", put_sla)
