"""Every Prometheus metric of the gateway, in one place.

Names follow ``payam_<subsystem>_<thing>_<unit>``; labels come from a small fixed set (route,
method, status, query, reason, kind, outcome, agency, operator, channel) so that cardinality stays
bounded whatever the traffic.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "payam_http_requests_total",
    "HTTP requests served, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "payam_http_request_duration_seconds",
    "Time to serve an HTTP request, by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
STORE_QUERY_LATENCY = Histogram(
    "payam_store_query_duration_seconds",
    "Time spent in one named store query.",
    ["query"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)
AUTH_FAILURES = Counter(
    "payam_auth_failures_total",
    "Refused authentication attempts, by stable reason code.",
    ["reason"],
)
NUMBERING_ALLOCATIONS = Counter(
    "payam_numbering_allocations_total",
    "Numbering plan allocation attempts, by kind and outcome code.",
    ["kind", "outcome"],
)
