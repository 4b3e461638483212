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
STORE_VACUUMS = Counter(
    "payam_store_vacuums_total",
    "VACUUM runs the gateway made itself on a queue-like table (gateway/maintenance.py).",
    ["table"],
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
ACCEPT_BATCH_SIZE = Histogram(
    "payam_accept_batch_messages",
    "Messages per group commit of POST /v1/messages (gateway/send_pipeline.py).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
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

# -- Citizen trust (docs/TRUST.md) -------------------------------------------------------------
LINK_REFUSALS = Counter(
    "payam_sms_link_refusals_total",
    "SMS (or batch recipients) refused by the link policy, by problem code.",
    ["code"],
)

# -- USSD --------------------------------------------------------------------------------------
USSD_SESSIONS = Counter(
    "payam_ussd_sessions_total",
    "USSD dialogs by how they started or ended (started, unknown_code, unavailable, completed, "
    "timed_out, menu_changed, abandoned), per operator.",
    ["operator", "outcome"],
)
USSD_REMOTE = Counter(
    "payam_ussd_remote_calls_total",
    "Calls to agencies' remote-screen endpoints, by outcome (ok, timeout, http_5xx, …).",
    ["outcome"],
)

# -- Operations (issue 8: dashboards and alert rules in config/grafana, config/prometheus) ------
# Sampled from the database every ``ops.sample_seconds`` by gateway/ops_metrics.py, so every node
# reports the same platform-wide values; dashboards and rules aggregate them with max().
DATABASE_UP = Gauge("payam_database_up", "1 when the database answered the last sample, else 0.")
AGENCY_QUOTA_USED = Gauge(
    "payam_agency_quota_used_ratio",
    "Fragments accepted today (Tehran day) over the agency's daily fragment quota.",
    ["agency"],
)
AGENCY_DELIVERY_LATENCY = Gauge(
    "payam_agency_delivery_latency_seconds",
    "Accept to delivered latency of the agency's messages delivered in the last sample window, "
    "by quantile (0.5, 0.95, 0.99).",
    ["agency", "quantile"],
)
AGENCY_DELIVERY_RATIO = Gauge(
    "payam_agency_delivery_ratio",
    "Delivered over finished messages of the agency in the last sample window.",
    ["agency"],
)
AGENCY_SLA_LATENCY = Gauge(
    "payam_agency_sla_latency_seconds",
    "The agency's SLA target (Art 9) for p95 accept to delivered latency.",
    ["agency"],
)
AGENCY_SLA_RATIO = Gauge(
    "payam_agency_sla_delivery_ratio",
    "The agency's SLA target (Art 9) for the delivery ratio.",
    ["agency"],
)
AGENCY_SUSPENDED = Gauge(
    "payam_agency_suspended", "1 while the agency is suspended (its queue held).", ["agency"]
)
OPT_OUTS = Gauge("payam_agency_opt_outs", "Citizens opted out of the agency.", ["agency"])
SMPP_BINDS_CONFIGURED = Gauge(
    "payam_smpp_binds_configured", "SMPP binds configured per operator.", ["operator"]
)
SMPP_TPS_LIMIT = Gauge(
    "payam_smpp_tps_limit", "Messages per second in the operator contract (0 = none).", ["operator"]
)
OPERATOR_PAUSED = Gauge(
    "payam_operator_paused", "1 while an administrator has paused the operator.", ["operator"]
)
CRISIS_MODE = Gauge("payam_crisis_mode", "1 while crisis mode throttles the non-crisis lanes.")
QUEUE_HELD = Gauge(
    "payam_sms_queue_held",
    "Messages held in the queue for suspended agencies, by lane (not in payam_sms_queue_depth).",
    ["lane"],
)
ADMIN_OPERATIONS = Counter(
    "payam_admin_operations_total",
    "Administrative operations (suspend, pause, drain, crisis, …), by action and outcome.",
    ["kind", "outcome"],
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
USSD_PUSHES = Counter(
    "payam_ussd_pushes_total",
    "Network-initiated USSD pushes by how they ended (delivered, answered, busy, failed, "
    "timeout), per operator. Per-agency counts are in the pushes table, not in labels: "
    "agencies x operators x outcomes would be thousands of series.",
    ["operator", "outcome"],
)
USSD_PUSH_FALLBACKS = Counter(
    "payam_ussd_push_fallbacks_total",
    "SMS fallbacks of failed pushes (sms_queued, refused), per operator.",
    ["operator", "outcome"],
)
USSD_STEP_LATENCY = Histogram(
    "payam_ussd_step_duration_seconds",
    "Time to answer one USSD step (dial or answer) in the session engine, remote screens "
    "included, per operator. Operators drop a dialog after a few seconds without a screen.",
    ["operator"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
USSD_AGENCY_SESSIONS = Counter(
    "payam_ussd_agency_sessions_total",
    "USSD dialogs per agency: started, completed, timed_out (the citizen came back too late), "
    "abandoned (never came back; counted when the idle dialog is purged), menu_changed.",
    ["agency", "outcome"],
)
# -- SMPP session events (issue 9: the metric that shows each SMSC fault) ----------------------
SMPP_SESSION_EVENTS = Counter(
    "payam_smpp_session_events_total",
    "SMPP session events per operator, by kind: reconnect, bind_failure, malformed_pdu, "
    "timeout, unknown_response, deliver_error, throttle.",
    ["operator", "kind"],
)

# The app and portal channel (docs/APP_CHANNEL.md). provider: the provider's registered name
# (a handful, set by operators); agency: the agency id, as payam_sms_accepted_total.
APP_PUSHES = Counter(
    "payam_app_pushes_total",
    "Push attempts to app providers, by provider, agency and outcome (ok, accepted = 202 to be "
    "confirmed by receipt, refused, error).",
    ["provider", "agency", "outcome"],
)
APP_PUSH_LATENCY = Histogram(
    "payam_app_push_duration_seconds",
    "Time of one push request to an app provider.",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
APP_CONFIRMATIONS = Counter(
    "payam_app_confirmations_total",
    "Notices an app provider confirmed (delivered in the app), by provider and agency.",
    ["provider", "agency"],
)
APP_FALLBACKS = Counter(
    "payam_app_fallbacks_total",
    "Messages the app channel passed to the next channel or gave up, by provider ('none' when "
    "the citizen has no app), agency and reason.",
    ["provider", "agency", "reason"],
)
APP_READ_RECEIPTS = Counter(
    "payam_app_read_receipts_total",
    "Notices read in the app, by provider and agency.",
    ["provider", "agency"],
)
APP_REPLIES = Counter(
    "payam_app_replies_total",
    "Citizens' replies sent from an app, by provider.",
    ["provider"],
)
