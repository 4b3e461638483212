"""HTTP plumbing shared by every route module: app keys, JSON in/out, auth helpers, errors."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from gateway import availability
from gateway.api.hostile import check_json, check_url, read_body
from gateway.api.ratelimit import RATE_LIMITER
from gateway.auth import AdminPrincipal, AgencyPrincipal
from gateway.errors import PROBLEM_CONTENT_TYPE, Problem
from gateway.metrics import HTTP_LATENCY, HTTP_REQUESTS
from gateway.services import Services
from gateway.store.availability import DATABASE_DOWN, RETRY_AFTER_SECONDS

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)
DRAINING = web.AppKey("draining", list[bool])
# False in HTTP-only worker processes (gateway/workers.py): periodic jobs run in one process.
BACKGROUND = web.AppKey("background", bool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def periodic(
    interval: float, job: Callable[[], Awaitable[object]], what: str
) -> AsyncIterator[None]:
    """Run ``job`` every ``interval`` seconds while the block runs (an app's cleanup context);
    a failing run is logged and the next one goes ahead."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except Exception:
                log.exception("%s failed", what)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def problem_response(exc: Problem, instance: str = "") -> web.Response:
    resp = web.Response(
        body=orjson.dumps(exc.body(instance)), status=exc.status, content_type="application/json"
    )
    resp.headers["Content-Type"] = PROBLEM_CONTENT_TYPE
    if exc.status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="payam"'
    if exc.status == 503:
        resp.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if exc.code == "rate_limited":
        resp.headers["Retry-After"] = str(exc.extra.get("retry_after", 1))
    return resp


async def read_json(request: web.Request) -> Any:
    return (await read_raw_json(request))[1]


async def read_raw_json(request: web.Request) -> tuple[bytes, Any]:
    """The body as sent (for idempotency hashes) and parsed; size and type checked."""
    if request.content_type != "application/json":
        raise Problem("unsupported_media_type", f"got {request.content_type or 'no type'}")
    limit = request.app[SERVICES].config.http.max_body_bytes
    if (request.content_length or 0) > limit:
        raise Problem("body_too_large", f"at most {limit} bytes")
    try:
        raw = await read_body(request, request.app[SERVICES].config.http.client_timeout_seconds)
    except web.HTTPRequestEntityTooLarge:
        raise Problem("body_too_large", f"at most {limit} bytes") from None
    if len(raw) > limit:
        raise Problem("body_too_large", f"at most {limit} bytes")
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem("malformed_json", str(exc)) from None
    check_json(raw, parsed)
    return raw, parsed


def client_addr(request: web.Request) -> str:
    """The caller's address; X-Forwarded-For is believed only from configured proxies."""
    peer = request.remote or ""
    trusted = request.app[SERVICES].config.http.trusted_proxies
    if not trusted or peer not in trusted:
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer


async def agency_auth(request: web.Request) -> AgencyPrincipal:
    principal = await services(request).auth.agency(
        request.headers.get("Authorization"), client_addr(request)
    )
    rate_check(request, principal.key.key_id)
    return principal


def rate_check(request: web.Request, key_id: str) -> None:
    """429 rate_limited when this key is over its request rate (gateway/api/ratelimit.py)."""
    limiter = request.app.get(RATE_LIMITER)
    if limiter is not None:
        limiter.check(key_id)


async def admin_auth(request: web.Request, *, write: bool) -> AdminPrincipal:
    return await services(request).auth.admin(
        request.headers.get("Authorization"), client_addr(request), write=write
    )


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem("invalid_parameter", f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise Problem("invalid_parameter", f"{name} must be {lo}..{hi}")
    return value


# Metric children by label values: .labels() takes a lock and validates on every call, which
# showed in profiles of the accept path. Keys are route templates, so the cache stays small.
_REQUEST_COUNTERS: dict[tuple[str, str, int], Any] = {}
_LATENCY_HISTOGRAMS: dict[str, Any] = {}


def _observe(route: str, method: str, status: int, seconds: float) -> None:
    availability.note(route, status)  # the SLA report's API availability (issue 8)
    counter = _REQUEST_COUNTERS.get((route, method, status))
    if counter is None:
        counter = HTTP_REQUESTS.labels(route, method, str(status))
        if len(_REQUEST_COUNTERS) < 4096:  # odd methods from clients must not grow it forever
            _REQUEST_COUNTERS[(route, method, status)] = counter
    counter.inc()
    histogram = _LATENCY_HISTOGRAMS.get(route)
    if histogram is None:
        histogram = _LATENCY_HISTOGRAMS[route] = HTTP_LATENCY.labels(route)
    histogram.observe(seconds)


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as problem+json; every request is counted and timed by route."""
    started = time.perf_counter()
    route = _route_name(request)
    status = 500
    try:
        check_url(request)
        response = await handler(request)
        status = response.status
        return response
    except Problem as exc:
        status = exc.status
        return problem_response(exc, request.path)
    except web.HTTPRequestEntityTooLarge:
        status = 413
        return problem_response(Problem("body_too_large"), request.path)
    except web.HTTPNotFound:
        status = 404
        return problem_response(Problem("not_found", request.path), request.path)
    except web.HTTPMethodNotAllowed:
        status = 405
        return problem_response(Problem("method_not_allowed", request.method), request.path)
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncpg.DataError as exc:
        # SQLSTATE class 22 (data exception): a value the database refused. Input the checks
        # above should have caught; a 422 tells the caller, the warning tells us.
        status = 422
        log.warning("database refused a value on %s %s: %s", request.method, route, exc.sqlstate)
        return problem_response(Problem("invalid_value", "a value cannot be stored"), request.path)
    except DATABASE_DOWN as exc:
        # The database is away (gateway/store/availability.py): 503, never 500.
        status = 503
        log.warning("database unavailable on %s %s: %s", request.method, route, type(exc).__name__)
        return problem_response(Problem("service_unavailable", "database"), request.path)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, route)
        return problem_response(Problem("internal_error"), request.path)
    finally:
        _observe(route, request.method, status, time.perf_counter() - started)
