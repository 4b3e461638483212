"""Samples the platform-wide figures the dashboards and alert rules need but no event counts:
database readiness, quota use, per-agency delivery latency and ratio against the SLA (Art 9),
opt-outs, the operators' contract, and the operations flags (issue 8).

Every node samples the same database, so every node reports the same values; the rules and
dashboards take max() over instances.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from gateway.metrics import (
    AGENCY_DELIVERY_LATENCY,
    AGENCY_DELIVERY_RATIO,
    AGENCY_QUOTA_USED,
    AGENCY_SLA_LATENCY,
    AGENCY_SLA_RATIO,
    AGENCY_SUSPENDED,
    DATABASE_UP,
    OPT_OUTS,
    SMPP_BINDS_CONFIGURED,
    SMPP_TPS_LIMIT,
)
from gateway.sending import tehran_day
from gateway.services import Services

log = logging.getLogger(__name__)

_QUANTILES = ("0.5", "0.95", "0.99")


def set_static(services: Services) -> None:
    """What the configuration says: binds and contract TPS per operator."""
    for op in services.config.operators:
        SMPP_BINDS_CONFIGURED.labels(op.name).set(op.binds)
        SMPP_TPS_LIMIT.labels(op.name).set(op.tps)


async def sample(services: Services) -> None:
    """One sample of every database-derived gauge. A failing database shows as
    ``payam_database_up 0`` (the alert "database not ready"), never as stale figures."""
    store, ops = services.store, services.config.ops
    try:
        ok = await asyncio.wait_for(store.ping(), timeout=2.0)
    except Exception as exc:  # any failure means "not ready"
        log.warning("database sample failed: %s", type(exc).__name__)
        ok = False
    DATABASE_UP.set(1 if ok else 0)
    if not ok:
        return
    now = datetime.now(UTC)
    for a in await store.operations.agency_samples(tehran_day(now)):
        agency = str(a.agency_id)
        AGENCY_QUOTA_USED.labels(agency).set(a.quota_used_ratio)
        AGENCY_SUSPENDED.labels(agency).set(1 if a.suspended else 0)
        OPT_OUTS.labels(agency).set(a.opt_outs)
        AGENCY_SLA_LATENCY.labels(agency).set(a.sla_latency_seconds or ops.sla_latency_seconds)
        AGENCY_SLA_RATIO.labels(agency).set(
            ops.sla_delivery_ratio if a.sla_delivery_ratio is None else a.sla_delivery_ratio
        )
    since = now - timedelta(seconds=ops.sample_window_seconds)
    for d in await store.operations.delivery_samples(since, now):
        agency = str(d.agency_id)
        AGENCY_DELIVERY_RATIO.labels(agency).set(d.delivered / d.finished if d.finished else 0)
        for q, value in zip(_QUANTILES, (d.p50, d.p95, d.p99), strict=True):
            if value is not None:
                AGENCY_DELIVERY_LATENCY.labels(agency, q).set(value)
