"""API availability for the SLA report (Art 9): each node counts the agency API requests it
answers (``/v1/...``) and those answered with a server error (5xx, including 503 when
overloaded), in memory, and adds them to ``api_availability`` every ``ops.sample_seconds``.

This is the availability the gateway itself can see; an outage in which no node answers at all
shows in Prometheus (``up``), not here.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from gateway.sending import tehran_day
from gateway.store import Store

log = logging.getLogger(__name__)

_counts = [0, 0]  # requests, server errors since the last flush


def note(route: str, status: int) -> None:
    """Called for every HTTP response (gateway/api/http.py); cheap on the hot path."""
    if route.startswith("/v1/"):
        _counts[0] += 1
        if status >= 500:
            _counts[1] += 1


async def flush(store: Store, now: datetime | None = None) -> None:
    requests, errors = _counts
    if not requests:
        return
    _counts[0] -= requests
    _counts[1] -= errors
    try:
        await store.reports.add_api_availability(
            tehran_day(now or datetime.now(UTC)), requests, errors
        )
    except Exception:
        _counts[0] += requests  # counted again at the next flush
        _counts[1] += errors
        raise
