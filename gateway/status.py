"""The message state machine (documented in docs/SMS.md).

    accepted ─► scheduled ─► queued ─► submitted ─► delivered
                    │           │          │      └► undeliverable | expired | rejected
                    └───────────┴──► cancelled      (from operator receipts)
                                │
                                ├──► expired   (valid_until passed before it could be sent)
                                └──► rejected  (operator refused it permanently, or retries ran out)

Every transition is written to ``message_events`` with its time; GET returns that history.
The app channel (gateway/app_channel; docs/APP_CHANNEL.md) adds events that are not statuses:
``app_skipped`` and ``app_fallback`` (the SMS is next) and ``read`` (the app's read receipt); a
notice the app confirmed goes from queued to delivered directly.
"""

from __future__ import annotations

PRIORITIES: dict[str, int] = {"crisis": 0, "high": 1, "normal": 2, "bulk": 3}
PRIORITY_NAMES: dict[int, str] = {v: k for k, v in PRIORITIES.items()}

ACCEPTED = "accepted"
SCHEDULED = "scheduled"
QUEUED = "queued"
SUBMITTED = "submitted"
DELIVERED = "delivered"
UNDELIVERABLE = "undeliverable"
EXPIRED = "expired"
REJECTED = "rejected"
CANCELLED = "cancelled"

WAITING = frozenset({SCHEDULED, QUEUED})
FINAL = frozenset({DELIVERED, UNDELIVERABLE, EXPIRED, REJECTED, CANCELLED})
ALL = (
    ACCEPTED,
    SCHEDULED,
    QUEUED,
    SUBMITTED,
    DELIVERED,
    UNDELIVERABLE,
    EXPIRED,
    REJECTED,
    CANCELLED,
)

# How a message ends when its parts end differently: the worst part decides.
_SEVERITY = {DELIVERED: 0, EXPIRED: 1, UNDELIVERABLE: 2, REJECTED: 3}


def combine(part_states: list[str]) -> str:
    """The message's final status from its parts' final receipt states."""
    return max(part_states, key=lambda s: _SEVERITY.get(s, 2))
