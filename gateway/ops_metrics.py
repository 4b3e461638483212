"""Samples the platform-wide figures the dashboards and alert rules need but no event counts:
database readiness, quota use, per-agency delivery latency and ratio against the SLA (Art 9),
opt-outs, the operators' contract, and the operations flags (issue 8).

Every node samples the same database, so every node reports the same values; the rules and
dashboards take max() over instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from gateway.delivery_window import BASE_SECONDS, GROWTH
from gateway.dispatch import lane_name
from gateway.metrics import (
    AGENCY_DELIVERY_LATENCY,
    AGENCY_DELIVERY_RATIO,
    AGENCY_QUOTA_USED,
    AGENCY_SLA_LATENCY,
    AGENCY_SLA_RATIO,
    AGENCY_SUSPENDED,
    CALLBACKS,
    DATABASE_UP,
    OPT_OUTS,
    QUEUE_HELD,
    RECEIPTS_UNMATCHED,
    SMPP_BINDS_CONFIGURED,
    SMPP_THROTTLED,
    SMPP_TPS_LIMIT,
    USSD_REMOTE,
    USSD_SESSIONS,
)
from gateway.sending import tehran_day
from gateway.services import Services

log = logging.getLogger(__name__)

_QUANTILES = ("0.5", "0.95", "0.99")
# The (agency, quantile or "") children set by the previous sample.
_last_delivery: set[tuple[str, str]] = set()
# The outcome labels gateway/callbacks.py and adapters/ussd/ write.
_CALLBACK_OUTCOMES = ("delivered", "retried", "refused", "expired")
_USSD_OUTCOMES = ("started", "unknown_code", "unavailable", "completed", "timed_out")
_REMOTE_OUTCOMES = ("ok", "timeout", "error", "bad_answer")


def set_static(services: Services) -> None:
    """What the configuration says (binds and contract TPS per operator), and every known
    label set of the counters the alert rules divide, created at 0: a counter that has never
    moved has no series, and rate() over a missing series is no answer rather than 0."""
    for op in services.config.operators:
        SMPP_BINDS_CONFIGURED.labels(op.name).set(op.binds)
        SMPP_TPS_LIMIT.labels(op.name).set(op.tps)
        SMPP_THROTTLED.labels(op.name)
        for outcome in _USSD_OUTCOMES:
            USSD_SESSIONS.labels(op.name, outcome)
    RECEIPTS_UNMATCHED.labels("all")
    for outcome in _CALLBACK_OUTCOMES:
        CALLBACKS.labels(outcome)
    for outcome in _REMOTE_OUTCOMES:
        USSD_REMOTE.labels(outcome)


async def sample(services: Services, now: datetime | None = None) -> None:
    """One sample of every database-derived gauge. A failing database shows as
    ``payam_database_up 0`` (the alert "database not ready"), never as stale figures.
    ``now``: for tests, which move the window without waiting for it."""
    store, ops = services.store, services.config.ops
    try:
        ok = await asyncio.wait_for(store.ping(), timeout=2.0)
    except Exception as exc:  # any failure means "not ready"
        log.warning("database sample failed: %s", type(exc).__name__)
        ok = False
    DATABASE_UP.set(1 if ok else 0)
    if not ok:
        return
    now = now or datetime.now(UTC)
    for a in await store.operations.agency_samples(tehran_day(now)):
        agency = str(a.agency_id)
        AGENCY_QUOTA_USED.labels(agency).set(a.quota_used_ratio)
        AGENCY_SUSPENDED.labels(agency).set(1 if a.suspended else 0)
        OPT_OUTS.labels(agency).set(a.opt_outs)
        AGENCY_SLA_LATENCY.labels(agency).set(a.sla_latency_seconds or ops.sla_latency_seconds)
        AGENCY_SLA_RATIO.labels(agency).set(
            ops.sla_delivery_ratio if a.sla_delivery_ratio is None else a.sla_delivery_ratio
        )
    for lane, n in await store.operations.held():
        QUEUE_HELD.labels(lane_name(lane)).set(n)
    window = timedelta(seconds=ops.sample_window_seconds)
    slices = services.delivery_window
    slices.configure(window)
    since, until = slices.next_range(now)
    slices.add(until, await store.operations.delivery_histogram(since, until, BASE_SECONDS, GROWTH))
    seen: set[tuple[str, str]] = set()
    for agency_id, d in slices.figures(tuple(float(q) for q in _QUANTILES)).items():
        agency = str(agency_id)
        AGENCY_DELIVERY_RATIO.labels(agency).set(d.delivered / d.finished)
        seen.add((agency, ""))
        for q, value in zip(_QUANTILES, d.quantiles, strict=True):
            if value is not None:
                AGENCY_DELIVERY_LATENCY.labels(agency, q).set(value)
                seen.add((agency, q))
    # An agency with nothing finished in the window has no ratio or latency now: drop the old
    # values, or an SLA alert raised by the last busy window would never clear.
    for key in _last_delivery - seen:
        agency, q = key
        with contextlib.suppress(KeyError):
            if q:
                AGENCY_DELIVERY_LATENCY.remove(agency, q)
            else:
                AGENCY_DELIVERY_RATIO.remove(agency)
    _last_delivery.clear()
    _last_delivery.update(seen)
