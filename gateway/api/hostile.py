"""Guards against input PostgreSQL cannot store, applied once at the HTTP edge.

PostgreSQL text cannot hold U+0000 (it rejects it with SQLSTATE 22021), so a NUL that reached a
query was a 500. JSON can carry one as the escape \\u0000 and URLs as %00: both are refused
here with a clear 4xx. Found by the schemathesis run of tests/test_api_fuzz.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gateway.errors import Problem


def has_nul(value: Any) -> bool:
    """Whether any string in a parsed JSON value (keys included) holds U+0000."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def check_json(raw: bytes, parsed: Any) -> None:
    # The escape must be in the raw text for a NUL to be in the value: skip the walk otherwise
    # (it would cost a pass over every recipient of a large batch).
    if b"\\u0000" in raw and has_nul(parsed):
        raise Problem("invalid_value", "strings must not contain U+0000 (NUL)")


def check_text(text: str, what: str) -> None:
    if "\x00" in text:
        raise Problem("invalid_value", f"{what}: must not contain U+0000 (NUL)")


def check_url(request: web.Request) -> None:
    """A NUL in the path or query (%00) is refused before any handler runs (called by the
    one middleware, gateway/api/http.py: a second middleware cost every request ~2% of the
    send path's CPU)."""
    if "\x00" in request.path or "\x00" in request.query_string:
        raise Problem("invalid_parameter", "the URL must not contain U+0000 (NUL)")


async def read_body(request: web.Request, timeout: float) -> bytes:
    """The whole body, or 408 if the client sends it slower than ``timeout`` allows (a slow
    body would otherwise hold a handler, and its memory, for as long as the client likes)."""
    if request.content.is_eof():
        # Already all here (a small body comes in the headers' packets): nothing to wait for,
        # so no timer (arming and cancelling one was ~5% of the send path's CPU).
        return await request.read()
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise Problem("request_timeout", f"send the body within {timeout:g} s") from None
