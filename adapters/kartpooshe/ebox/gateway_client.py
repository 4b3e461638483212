"""The e-box's calls to the gateway (EBOX-PROTOCOL §2 events and §3 one-time codes).

Bearer ``ebox_to_gateway_token`` on every call. The answers are sorted into a small closed set of
outcomes that the outbox and the login page read; bodies of errors are not logged (an OTP
request carries a national code and a code).
"""

from __future__ import annotations

import enum
import logging
from typing import Any

import aiohttp
import orjson

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    DELIVERED = "delivered"  # 2xx
    RETRY = "retry"  # network error, timeout, 5xx, 401, 429: try again later
    FINAL = "final"  # any other 4xx: kept, marked failed, not retried (protocol §2)


class OtpAnswer(enum.Enum):
    SENT = "sent"
    UNKNOWN_CITIZEN = "unknown_citizen"
    TOO_MANY = "too_many_codes"
    INVALID = "invalid_national_code"
    UNAVAILABLE = "unavailable"


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in (401, 429) or status >= 500:
        return Outcome.RETRY
    return Outcome.FINAL


class GatewayClient:
    def __init__(self, base_url: str, token: str, timeout_seconds: float) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        assert self._session is not None, "GatewayClient.start() first"
        async with self._session.post(
            self._base + path, data=orjson.dumps(body), headers=self._headers
        ) as resp:
            return resp.status, await resp.read()

    async def send_event(self, body: dict[str, Any]) -> tuple[Outcome, str]:
        """POST one event; the outcome and a short reason (status or exception name)."""
        try:
            status, _ = await self._post("/kartpooshe/v1/events", body)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Outcome.RETRY, type(exc).__name__
        return classify(status), f"HTTP {status}"

    async def request_otp(self, national_code: str, code: str) -> OtpAnswer:
        try:
            status, _ = await self._post(
                "/kartpooshe/v1/otp", {"national_code": national_code, "code": code}
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("OTP request to the gateway failed: %s", type(exc).__name__)
            return OtpAnswer.UNAVAILABLE
        if 200 <= status < 300:
            return OtpAnswer.SENT
        if status == 404:
            return OtpAnswer.UNKNOWN_CITIZEN
        if status == 429:
            return OtpAnswer.TOO_MANY
        if status == 422:
            return OtpAnswer.INVALID
        log.warning("OTP request to the gateway answered HTTP %d", status)
        return OtpAnswer.UNAVAILABLE
