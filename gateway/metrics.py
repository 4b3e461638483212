"""Every Prometheus metric of the gateway, in one place.

Names follow ``payam_<subsystem>_<thing>_<unit>``; labels come from a small fixed set (route,
method, status, query, reason, kind, outcome, agency, operator, channel) so that cardinality stays
bounded whatever the traffic.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import Gauge as _Gauge


def Gauge(*args: Any, **kwargs: Any) -> _Gauge:  # noqa: N802 - reads like the class it makes
    """A gauge that adds up over the live processes when ``http.workers`` > 1
    (gateway/workers.py): each process reports its own share (its binds, its window), and the
    values of a process that died are dropped. With one process it is a plain gauge."""
    kwargs.setdefault("multiprocess_mode", "livesum")
    return _Gauge(*args, **kwargs)


def scrape() -> bytes:
    """The text exposition for ``GET /metrics``: with several worker processes, every metric
    read from prometheus-client's multiprocess files, so any process answers for all."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


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

# -- SMS ---------------------------------------------------------------------------------------
SMS_ACCEPTED = Counter(
    "payam_sms_accepted_total",
    "Messages accepted by the API, by agency and priority.",
    ["agency", "priority"],
)
SMS_SUBMITTED = Counter(
    "payam_sms_submitted_total",
    "Messages whose every part an operator accepted.",
    ["operator", "priority"],
)
SMS_FINAL = Counter(
    "payam_sms_final_total",
    "Messages that reached a final status, by operator and status.",
    ["operator", "outcome"],
)
SMS_RETRIES = Counter(
    "payam_sms_retries_total",
    "Submit attempts put back for a retry, by operator and error.",
    ["operator", "outcome"],
)
QUEUE_DEPTH = Gauge("payam_sms_queue_depth", "Messages waiting in the queue, by lane.", ["lane"])
QUEUE_OLDEST = Gauge(
    "payam_sms_queue_oldest_age_seconds",
    "Age of the oldest due message in each lane (0 when empty).",
    ["lane"],
)
SMPP_BINDS_UP = Gauge("payam_smpp_binds_up", "SMPP binds currently bound.", ["operator"])
SMPP_IN_FLIGHT = Gauge(
    "payam_smpp_window_in_use", "submit_sm awaiting a response, per operator.", ["operator"]
)
SMPP_SUBMIT_LATENCY = Histogram(
    "payam_smpp_submit_duration_seconds",
    "submit_sm to submit_sm_resp, per operator.",
    ["operator"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
SMPP_THROTTLED = Counter(
    "payam_smpp_throttled_total", "Throttling responses (RTHROTTLED, RMSGQFUL).", ["operator"]
)
RECEIPT_LATENCY = Histogram(
    "payam_sms_receipt_latency_seconds",
    "Submit to final delivery receipt, per operator.",
    ["operator"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
RECEIPTS = Counter(
    "payam_sms_receipts_total",
    "Delivery receipts received, by operator and outcome.",
    ["operator", "outcome"],
)
RECEIPTS_UNMATCHED = Counter(
    "payam_sms_receipts_unmatched_total",
    "Receipts dropped after waiting for a submit they never matched.",
    ["operator"],
)
CALLBACKS = Counter(
    "payam_callbacks_total", "Callback deliveries to agencies, by outcome.", ["outcome"]
)
REPLIES = Counter(
    "payam_sms_replies_total", "Citizens' messages received, by outcome.", ["outcome"]
)

# -- USSD --------------------------------------------------------------------------------------
USSD_SESSIONS = Counter(
    "payam_ussd_sessions_total",
    "USSD dialogs by how they started or ended (started, unknown_code, unavailable, completed, "
    "timed_out, menu_changed), per operator.",
    ["operator", "outcome"],
)
USSD_REMOTE = Counter(
    "payam_ussd_remote_calls_total",
    "Calls to agencies' remote-screen endpoints, by outcome (ok, timeout, http_5xx, …).",
    ["outcome"],
)

# -- Letters (Kartpooshe e-box) ------------------------------------------------------------------
LETTERS_ACCEPTED = Counter(
    "payam_letters_accepted_total",
    "Letters committed, by agency and source (api, smtp).",
    ["agency", "channel"],
)
LETTERS_BY_STATE = Gauge(
    "payam_letters",
    "Letters accepted in the last 30 days, by current state (accepted, deposited, notified, "
    "opened, replied, failed) and agency.",
    ["agency", "outcome"],
)
LETTER_DEPOSITS = Counter(
    "payam_letters_deposits_total",
    "Deposit attempts at the e-box, by outcome (deposited, retried, failed, test).",
    ["outcome"],
)
LETTER_TIME_TO_OPEN = Histogram(
    "payam_letters_time_to_open_seconds",
    "Deposit to the citizen's first opening of a letter.",
    buckets=(60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400),
)
LETTER_EBOX_EVENTS = Counter(
    "payam_letters_ebox_events_total",
    "Events from the e-box, by kind (opened, replied) and outcome (applied, repeat, refused).",
    ["kind", "outcome"],
)
LETTER_OTPS = Counter(
    "payam_letters_otp_total",
    "One-time login codes asked for by the e-box, by outcome (sent, unknown, limited).",
    ["outcome"],
)
LETTER_SMTP_SESSIONS = Counter(
    "payam_letters_smtp_sessions_total",
    "SMTP ingestion sessions opened.",
)
LETTER_SMTP_REJECTIONS = Counter(
    "payam_letters_smtp_rejections_total",
    "SMTP ingestion refusals, by reply code (530, 535, 550, 552, 553, 554).",
    ["reason"],
)
LETTER_REPLY_DELIVERIES = Counter(
    "payam_letters_reply_deliveries_total",
    "Deliveries of citizens' replies to agencies, by channel (webhook, smtp) and outcome.",
    ["channel", "outcome"],
)
