"""Every Prometheus metric of the gateway, in one place.

Names follow ``payam_<subsystem>_<thing>_<unit>``; labels come from a small fixed set (route,
method, status, query, reason, kind, outcome, agency, operator, channel) so that cardinality stays
bounded whatever the traffic.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

# -- SMPP session events (issue 9: the metric that shows each SMSC fault) ----------------------
SMPP_SESSION_EVENTS = Counter(
    "payam_smpp_session_events_total",
    "SMPP session events per operator, by kind: reconnect, bind_failure, malformed_pdu, "
    "timeout, unknown_response, deliver_error, throttle.",
    ["operator", "kind"],
)
