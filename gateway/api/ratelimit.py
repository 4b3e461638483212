"""Per-key request rate limits for agency API keys: a token bucket per key, in each node.

Quotas bound how many messages an agency may send a day; this bounds how fast one key may call
at all, so one integrator's runaway loop cannot take the accept path from the others. Over the
limit: 429 ``rate_limited`` with Retry-After (RFC 6585 §4). Buckets exist only for keys that
authenticated, so their number is bounded by the keys issued. With N nodes behind a balancer
the effective limit is N times the configured one (docs/SCALING.md).
"""

from __future__ import annotations

import math
import time

from aiohttp import web

from gateway.errors import Problem


class KeyRateLimiter:
    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = float(max(1, burst))
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)

    def check(self, key_id: str, now: float | None = None) -> None:
        """Take one token for ``key_id`` or raise 429 with the seconds until the next one."""
        if self.per_second <= 0:
            return
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.per_second)
        if tokens < 1.0:
            self._buckets[key_id] = (tokens, now)
            wait = (1.0 - tokens) / self.per_second
            raise Problem(
                "rate_limited",
                f"at most {self.per_second:g} requests/s per key",
                retry_after=max(1, math.ceil(wait)),
            )
        self._buckets[key_id] = (tokens - 1.0, now)


RATE_LIMITER = web.AppKey("key_rate_limiter", KeyRateLimiter)
