"""Admin routes for operator routing data: the number-portability table."""

from __future__ import annotations

import csv
import io

import orjson
from aiohttp import web

from gateway.api.hostile import read_body
from gateway.api.http import admin_auth, client_addr, json_response, services
from gateway.errors import Problem
from gateway.recipients import normalize_msisdn

MAX_ROWS = 100_000


async def load_portability(request: web.Request) -> web.Response:
    """POST /admin/v1/portability: load ported numbers (CSV ``msisdn,operator`` with a header
    row, or JSON ``{"numbers": [{"msisdn": …, "operator": …}]}``); later loads overwrite."""
    admin = await admin_auth(request, write=True)
    svc = services(request)
    raw = await read_body(request, svc.config.http.client_timeout_seconds)
    pairs: list[tuple[str, str]] = []
    if request.content_type == "text/csv":
        try:
            reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
        except UnicodeDecodeError:
            raise Problem("invalid_value", "the CSV must be UTF-8") from None
        if set(reader.fieldnames or []) != {"msisdn", "operator"}:
            raise Problem("invalid_value", "CSV header must be: msisdn,operator")
        try:  # a short row gives None; a malformed file raises csv.Error (tests/test_api_fuzz)
            rows = [(r["msisdn"] or "", r["operator"] or "") for r in reader]
        except csv.Error as exc:
            raise Problem("invalid_value", f"CSV line {reader.line_num}: {exc}") from None
    elif request.content_type == "application/json":
        try:
            body = orjson.loads(raw)
            rows = [(str(r["msisdn"]), str(r["operator"])) for r in body["numbers"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise Problem(
                "invalid_value", 'expected {"numbers": [{"msisdn", "operator"}]}'
            ) from None
    else:
        raise Problem("unsupported_media_type", "send text/csv or application/json")
    if len(rows) > MAX_ROWS:
        raise Problem("batch_too_large", f"at most {MAX_ROWS} rows per load")
    known = svc.router.names
    errors = []
    for i, (msisdn_raw, operator) in enumerate(rows):
        msisdn = normalize_msisdn(msisdn_raw)
        if msisdn is None:
            errors.append(
                {
                    "field": f"numbers[{i}].msisdn",
                    "code": "invalid_recipient",
                    "message": "not an Iranian mobile number",
                }
            )
        elif operator not in known:
            errors.append(
                {
                    "field": f"numbers[{i}].operator",
                    "code": "invalid_value",
                    "message": f"unknown operator {operator!r}",
                }
            )
        else:
            pairs.append((msisdn, operator))
    if errors:
        raise Problem(errors[0]["code"], errors[0]["message"], errors=errors[:100])
    async with svc.store.transaction() as tx:
        await tx.messages.put_ported(pairs)
        await tx.audit.record(
            actor=admin.actor,
            action="portability.load",
            outcome="ok",
            client_addr=client_addr(request),
            detail={"rows": len(pairs)},
        )
    return json_response({"loaded": len(pairs)})


def register(app: web.Application) -> None:
    app.router.add_post("/admin/v1/portability", load_portability)
