"""Metrics of the reference e-box service, on its own registry (served at its own /metrics).

A registry of its own keeps the gateway's metrics out of the e-box's exposition and lets both run
in one test process. Names follow ``payam_ebox_<thing>_<unit>``; labels are small fixed sets.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

DEPOSITS = Counter(
    "payam_ebox_deposits_total",
    "Deposit requests, by outcome (created, repeated, conflict, invalid_recipient, …).",
    ["outcome"],
    registry=REGISTRY,
)
OPENINGS = Counter(
    "payam_ebox_openings_total",
    "Letters opened for the first time, by who opened them (owner, attorney, representative).",
    ["actor"],
    registry=REGISTRY,
)
REPLIES = Counter(
    "payam_ebox_replies_total",
    "Replies written in the inbox, by actor.",
    ["actor"],
    registry=REGISTRY,
)
EVENT_DELIVERIES = Counter(
    "payam_ebox_event_deliveries_total",
    "Tries to deliver an outbox event to the gateway, by type and outcome "
    "(delivered, retry, final).",
    ["type", "outcome"],
    registry=REGISTRY,
)
LOGINS = Counter(
    "payam_ebox_logins_total",
    "Login steps, by outcome (code_sent, code_throttled, unknown_citizen, gateway_error, "
    "success, wrong_code, expired, too_many_attempts).",
    ["outcome"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "payam_ebox_http_requests_total",
    "HTTP requests served by the e-box, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
STORE_QUERY_LATENCY = Histogram(
    "payam_ebox_store_query_duration_seconds",
    "Time spent in one named e-box store query.",
    ["query"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
    registry=REGISTRY,
)
