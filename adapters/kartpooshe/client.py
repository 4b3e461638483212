"""The gateway's client of the e-box: deposit a letter (docs/KARTPOOSHE_PROTOCOL.md §1).

``PUT {base}/api/v1/letters/{letter_id}`` with a multipart body (a JSON ``metadata`` part, then
one ``attachment`` part per file in the order of ``metadata.attachments``). The request is
idempotent by letter id, so the delivery worker retries freely. Answers map to a closed set of
outcomes by one literal table — the only thing the retry logic reads (STYLE: courier's
closed catalogue of send errors).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

log = logging.getLogger(__name__)

DEPOSITED = "deposited"
RETRY = "retry"
FAILED = "failed"

# HTTP status → outcome. 401 is retried: a wrong token is an operator's fix away, and the
# letter must not be lost meanwhile (max_attempts still ends it). 429 and 5xx are transient.
STATUS_OUTCOMES: dict[int, str] = {
    200: DEPOSITED,
    201: DEPOSITED,
    401: RETRY,
    408: RETRY,
    409: FAILED,  # letter_conflict: same id, other content — never resolves by retrying
    413: FAILED,  # too_large
    422: FAILED,  # invalid_recipient / invalid_letter
    429: RETRY,
}


def outcome_of(status: int) -> str:
    if status in STATUS_OUTCOMES:
        return STATUS_OUTCOMES[status]
    return RETRY if status >= 500 else FAILED


@dataclass(frozen=True, slots=True)
class DepositResult:
    outcome: str
    status: int  # HTTP status; 0 = no answer (network error, timeout)
    deposited_at: datetime | None = None
    code: str = ""  # the e-box's problem code, or the exception name


@dataclass(frozen=True, slots=True)
class OutgoingFile:
    name: str
    content_type: str
    data: bytes


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class EboxClient:
    def __init__(self, base_url: str, token: str, timeout_seconds: float) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def deposit(
        self, letter_id: str, metadata: dict[str, Any], files: list[OutgoingFile]
    ) -> DepositResult:
        assert self._session is not None, "EboxClient.start() first"
        with aiohttp.MultipartWriter("form-data") as mp:
            part = mp.append(orjson.dumps(metadata), {"Content-Type": "application/json"})
            part.set_content_disposition("form-data", name="metadata")
            for f in files:
                # A file object, not bytes: aiohttp warns (ResourceWarning) on a raw body over
                # 1 MiB, which the test suite turns into an error; letters may carry 10 MiB.
                part = mp.append(io.BytesIO(f.data), {"Content-Type": f.content_type})
                part.set_content_disposition("form-data", name="attachment", filename=f.name)
        url = f"{self._base}/api/v1/letters/{letter_id}"
        headers = {"Authorization": f"Bearer {self._token}", "User-Agent": "PayamIran-Kartpooshe/1"}
        try:
            async with self._session.put(url, data=mp, headers=headers) as resp:
                status = resp.status
                raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return DepositResult(RETRY, 0, code=type(exc).__name__)
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        outcome = outcome_of(status)
        if outcome == DEPOSITED:
            at = _parse_time(body.get("deposited_at"))
            if at is None or body.get("letter_id") != letter_id:
                # A 2xx we cannot read is not proof of deposit: try again.
                return DepositResult(RETRY, status, code="unreadable_answer")
            return DepositResult(DEPOSITED, status, at)
        return DepositResult(outcome, status, code=str(body.get("code", f"http_{status}"))[:100])
