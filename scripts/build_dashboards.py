"""Writes the Grafana dashboards of config/grafana/dashboards/ from the compact definitions
below (`python scripts/build_dashboards.py`); tests/test_dashboards.py checks the files are up
to date and tests/test_prometheus_real.py evaluates every expression on a real Prometheus.

The E-box and e-mail panels read the letters metrics (payam_letters_*); the real-Prometheus
test carries letter traffic (API, SMTP, deposits, openings, replies) so they show data there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "config" / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "payam-prometheus"}
RI = "$__rate_interval"

Target = tuple[str, str]  # (expr, legend)


def _panel(
    kind: str, title: str, targets: list[Target], unit: str, w: int, desc: str
) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DATASOURCE,
        "gridPos": {"w": w, "h": 8 if kind == "timeseries" else 5},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}}
        if kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"]}},
        "targets": [
            {"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def ts(title: str, targets: list[Target], unit: str = "short", desc: str = "") -> dict[str, Any]:
    return _panel("timeseries", title, targets, unit, 12, desc)


def stat(title: str, targets: list[Target], unit: str = "short", desc: str = "") -> dict[str, Any]:
    return _panel("stat", title, targets, unit, 6, desc)


def q(quantile: str, metric: str, by: str, sel: str = "") -> str:
    return (
        f"histogram_quantile({quantile}, sum by (le, {by}) (rate({metric}_bucket{{{sel}}}[{RI}])))"
    )


def _variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": name},
        "definition": query,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "refresh": 2,
        "current": {"text": "All", "value": "$__all"},
    }


def dashboard(
    uid: str, title: str, panels: list[dict[str, Any]], variables: list[dict[str, Any]]
) -> dict[str, Any]:
    x = y = 0
    row_h = 0
    for i, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y = 0, y + row_h
            row_h = 0
        p["gridPos"].update({"x": x, "y": y})
        p["id"] = i
        x += w
        row_h = max(row_h, h)
    return {
        "uid": uid,
        "title": title,
        "tags": ["payam"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "panels": panels,
    }


AG = 'agency=~"$agency"'
OP = 'operator=~"$operator"'


def overview() -> dict[str, Any]:
    return dashboard(
        "payam-overview",
        "Payam Iran — Overview / نمای کلی",
        [
            stat("Database up", [("min(payam_database_up)", "database")]),
            stat("Crisis mode", [("max(payam_crisis_mode)", "crisis")]),
            stat(
                "Delivery ratio (range)",
                [
                    (
                        'sum(increase(payam_sms_final_total{outcome="delivered"}[$__range])) '
                        "/ sum(increase(payam_sms_final_total[$__range]))",
                        "delivered",
                    )
                ],
                "percentunit",
            ),
            stat(
                "Binds up / configured",
                [
                    ("sum(payam_smpp_binds_up)", "up"),
                    ("sum(payam_smpp_binds_configured)", "configured"),
                ],
            ),
            ts(
                "Throughput by channel",
                [
                    (f"sum(rate(payam_sms_accepted_total[{RI}]))", "SMS accepted"),
                    (f"sum(rate(payam_sms_submitted_total[{RI}]))", "SMS submitted"),
                    (
                        f'sum(rate(payam_ussd_sessions_total{{outcome="started"}}[{RI}]))',
                        "USSD dialogs",
                    ),
                    (f"sum(rate(payam_letters_accepted_total[{RI}]))", "letters"),
                ],
                "reqps",
            ),
            ts(
                "Final outcomes",
                [(f"sum by (outcome) (rate(payam_sms_final_total[{RI}]))", "{{outcome}}")],
                "reqps",
            ),
            ts(
                "Queue depth per lane",
                [
                    ("max by (lane) (payam_sms_queue_depth)", "{{lane}}"),
                    ("max by (lane) (payam_sms_queue_held)", "{{lane}} held (suspended)"),
                ],
            ),
            ts(
                "Oldest due message per lane",
                [("max by (lane) (payam_sms_queue_oldest_age_seconds)", "{{lane}}")],
                "s",
                "The crisis lane should stay under a few seconds (alert PayamCrisisLaneDelayed).",
            ),
            ts(
                "HTTP errors (4xx, 5xx)",
                [
                    (
                        "sum by (status) (rate(payam_http_requests_total"
                        f'{{status=~"4..|5.."}}[{RI}]))',
                        "{{status}}",
                    )
                ],
                "reqps",
            ),
            ts(
                "Send retries by error",
                [(f"sum by (outcome) (rate(payam_sms_retries_total[{RI}]))", "{{outcome}}")],
                "reqps",
            ),
            ts(
                "HTTP p95 latency by route",
                [(q("0.95", "payam_http_request_duration_seconds", "route"), "{{route}}")],
                "s",
            ),
            ts(
                "Slowest store queries (p95)",
                [
                    (
                        f"topk(5, {q('0.95', 'payam_store_query_duration_seconds', 'query')})",
                        "{{query}}",
                    )
                ],
                "s",
            ),
        ],
        [],
    )


def agencies() -> dict[str, Any]:
    return dashboard(
        "payam-agencies",
        "Payam Iran — Agencies / دستگاه‌ها",
        [
            ts(
                "Accepted by priority",
                [
                    (
                        f"sum by (agency, priority) (rate(payam_sms_accepted_total{{{AG}}}[{RI}]))",
                        "{{agency}} {{priority}}",
                    )
                ],
                "reqps",
            ),
            ts(
                "Delivery latency percentiles against SLA (Art 9)",
                [
                    (
                        "max by (agency, quantile) "
                        f"(payam_agency_delivery_latency_seconds{{{AG}}})",
                        "{{agency}} p{{quantile}}",
                    ),
                    (
                        f"max by (agency) (payam_agency_sla_latency_seconds{{{AG}}})",
                        "{{agency}} SLA p95 target",
                    ),
                ],
                "s",
                "Accept to delivered, messages finished in the last ops.sample_window_seconds.",
            ),
            ts(
                "Delivery ratio against SLA",
                [
                    (
                        f"max by (agency) (payam_agency_delivery_ratio{{{AG}}})",
                        "{{agency}}",
                    ),
                    (
                        f"max by (agency) (payam_agency_sla_delivery_ratio{{{AG}}})",
                        "{{agency}} SLA target",
                    ),
                ],
                "percentunit",
            ),
            ts(
                "Daily quota used",
                [(f"max by (agency) (payam_agency_quota_used_ratio{{{AG}}})", "{{agency}}")],
                "percentunit",
            ),
            ts(
                "Opt-outs",
                [(f"max by (agency) (payam_agency_opt_outs{{{AG}}})", "{{agency}}")],
            ),
            stat(
                "Suspended agencies",
                [(f"sum(max by (agency) (payam_agency_suspended{{{AG}}}))", "suspended")],
            ),
        ],
        [_variable("agency", "label_values(payam_agency_quota_used_ratio, agency)")],
    )


def operators() -> dict[str, Any]:
    return dashboard(
        "payam-operators",
        "Payam Iran — Operators / SMPP / اپراتورها",
        [
            ts(
                "Binds up against configured",
                [
                    (f"sum by (operator) (payam_smpp_binds_up{{{OP}}})", "{{operator}} up"),
                    (
                        f"max by (operator) (payam_smpp_binds_configured{{{OP}}})",
                        "{{operator}} configured",
                    ),
                ],
            ),
            ts(
                "Window in use",
                [(f"sum by (operator) (payam_smpp_window_in_use{{{OP}}})", "{{operator}}")],
            ),
            ts(
                "submit_sm per second against contract TPS",
                [
                    (
                        "sum by (operator) (rate(payam_smpp_submit_duration_seconds_count"
                        f"{{{OP}}}[{RI}]))",
                        "{{operator}} submits/s",
                    ),
                    (
                        f"max by (operator) (payam_smpp_tps_limit{{{OP}}})",
                        "{{operator}} contract",
                    ),
                ],
                "reqps",
            ),
            ts(
                "Throttling responses",
                [
                    (
                        f"sum by (operator) (rate(payam_smpp_throttled_total{{{OP}}}[{RI}]))",
                        "{{operator}}",
                    )
                ],
                "reqps",
            ),
            ts(
                "Submit latency (submit_sm → resp)",
                [
                    (
                        q(p, "payam_smpp_submit_duration_seconds", "operator", OP),
                        f"{{{{operator}}}} p{p}",
                    )
                    for p in ("0.5", "0.95", "0.99")
                ],
                "s",
            ),
            ts(
                "Receipt latency (submit → final receipt)",
                [
                    (
                        q(p, "payam_sms_receipt_latency_seconds", "operator", OP),
                        f"{{{{operator}}}} p{p}",
                    )
                    for p in ("0.5", "0.95")
                ],
                "s",
            ),
            ts(
                "Receipts by outcome",
                [
                    (
                        "sum by (operator, outcome) (rate(payam_sms_receipts_total"
                        f"{{{OP}}}[{RI}]))",
                        "{{operator}} {{outcome}}",
                    )
                ],
                "reqps",
            ),
            ts(
                "Unmatched receipts (all operators)",
                [(f"sum(increase(payam_sms_receipts_unmatched_total[{RI}]))", "unmatched")],
            ),
            ts(
                "Retries by error",
                [
                    (
                        f"sum by (operator, outcome) (rate(payam_sms_retries_total{{{OP}}}[{RI}]))",
                        "{{operator}} {{outcome}}",
                    )
                ],
                "reqps",
            ),
            stat(
                "Paused by an administrator",
                [(f"max by (operator) (payam_operator_paused{{{OP}}})", "{{operator}}")],
            ),
        ],
        [_variable("operator", "label_values(payam_smpp_binds_configured, operator)")],
    )


def ussd() -> dict[str, Any]:
    return dashboard(
        "payam-ussd",
        "Payam Iran — USSD / کد دستوری",
        [
            ts(
                "Dialogs by outcome",
                [
                    (
                        f"sum by (outcome) (rate(payam_ussd_sessions_total{{{OP}}}[{RI}]))",
                        "{{outcome}}",
                    )
                ],
                "reqps",
            ),
            stat(
                "Completed / started (range)",
                [
                    (
                        f'sum(increase(payam_ussd_sessions_total{{{OP}, outcome="completed"}}'
                        "[$__range])) / sum(increase(payam_ussd_sessions_total"
                        f'{{{OP}, outcome="started"}}[$__range]))',
                        "completed",
                    )
                ],
                "percentunit",
            ),
            ts(
                "Remote-screen calls by outcome",
                [(f"sum by (outcome) (rate(payam_ussd_remote_calls_total[{RI}]))", "{{outcome}}")],
                "reqps",
            ),
            ts(
                "HTTP front latency",
                [
                    (
                        q(p, "payam_http_request_duration_seconds", "route", 'route=~"/ussd/.*"'),
                        f"p{p}",
                    )
                    for p in ("0.5", "0.95")
                ],
                "s",
            ),
        ],
        [_variable("operator", "label_values(payam_ussd_sessions_total, operator)")],
    )


def ebox() -> dict[str, Any]:
    # Issue 5 asks for: letters by state and agency, time to open, SMTP sessions and
    # rejections, reply deliveries: the Letters block of gateway/metrics.py.
    note = "Letters (Kartpooshe e-box) metrics of gateway/metrics.py."
    return dashboard(
        "payam-ebox",
        "Payam Iran — E-box and e-mail / کارت‌پوشه و رایانامه",
        [
            ts(
                "Letters by state",
                [("sum by (outcome) (payam_letters)", "{{outcome}}")],
                "short",
                note,
            ),
            ts(
                "Letters by agency",
                [(f"sum by (agency) (rate(payam_letters_accepted_total[{RI}]))", "{{agency}}")],
                "reqps",
                note,
            ),
            ts(
                "Time to open (p50, p95)",
                [
                    (q(p, "payam_letters_time_to_open_seconds", "job"), f"p{p}")
                    for p in ("0.5", "0.95")
                ],
                "s",
                note,
            ),
            ts(
                "Reply deliveries by outcome",
                [
                    (
                        f"sum by (channel, outcome) "
                        f"(rate(payam_letters_reply_deliveries_total[{RI}]))",
                        "{{channel}} {{outcome}}",
                    )
                ],
                "reqps",
                note,
            ),
            ts(
                "SMTP sessions and rejections",
                [
                    (f"sum(rate(payam_letters_smtp_sessions_total[{RI}]))", "sessions"),
                    (
                        f"sum by (reason) (rate(payam_letters_smtp_rejections_total[{RI}]))",
                        "rejected: {{reason}}",
                    ),
                ],
                "reqps",
                note,
            ),
            ts(
                "Deposits at the e-box and events from it",
                [
                    (
                        f"sum by (outcome) (rate(payam_letters_deposits_total[{RI}]))",
                        "deposit {{outcome}}",
                    ),
                    (
                        f"sum by (kind, outcome) (rate(payam_letters_ebox_events_total[{RI}]))",
                        "{{kind}} {{outcome}}",
                    ),
                ],
                "reqps",
                note,
            ),
        ],
        [],
    )


def callbacks() -> dict[str, Any]:
    return dashboard(
        "payam-callbacks",
        "Payam Iran — Callbacks and replies / فراخوان‌ها",
        [
            ts(
                "Callback attempts by outcome",
                [(f"sum by (outcome) (rate(payam_callbacks_total[{RI}]))", "{{outcome}}")],
                "reqps",
            ),
            stat(
                "Callback failure share (range)",
                [
                    (
                        'sum(increase(payam_callbacks_total{outcome!="delivered"}[$__range])) '
                        "/ sum(increase(payam_callbacks_total[$__range]))",
                        "failing",
                    )
                ],
                "percentunit",
            ),
            ts(
                "Citizens' replies by outcome",
                [(f"sum by (outcome) (rate(payam_sms_replies_total[{RI}]))", "{{outcome}}")],
                "reqps",
            ),
            ts(
                "Auth failures by reason",
                [(f"sum by (reason) (rate(payam_auth_failures_total[{RI}]))", "{{reason}}")],
                "reqps",
            ),
        ],
        [],
    )


def app_channel() -> dict[str, Any]:
    # Issue 6 item 7: pushes, confirmations, fallbacks and read receipts by provider and agency
    # (docs/APP_CHANNEL.md).
    return dashboard(
        "payam-app",
        "Payam Iran — App channel / کانال برنامک",
        [
            ts(
                "Pushes by provider and outcome",
                [
                    (
                        f"sum by (provider, outcome) (rate(payam_app_pushes_total[{RI}]))",
                        "{{provider}} {{outcome}}",
                    )
                ],
                "reqps",
            ),
            stat(
                "Delivered in the app / routed to it (range)",
                [
                    (
                        "sum(increase(payam_app_confirmations_total[$__range])) / ("
                        "sum(increase(payam_app_confirmations_total[$__range])) + "
                        'sum(increase(payam_app_fallbacks_total{provider!="none"}[$__range])) '
                        "or sum(increase(payam_app_confirmations_total[$__range])))",
                        "in the app",
                    )
                ],
                "percentunit",
                "Fallbacks of citizens with no app (provider none) are left out.",
            ),
            ts(
                "Confirmations by provider and agency",
                [
                    (
                        f"sum by (provider, agency) (rate(payam_app_confirmations_total[{RI}]))",
                        "{{provider}} {{agency}}",
                    )
                ],
                "reqps",
            ),
            ts(
                "Fallbacks to the next channel by reason",
                [
                    (
                        f"sum by (provider, reason) (rate(payam_app_fallbacks_total[{RI}]))",
                        "{{provider}} {{reason}}",
                    )
                ],
                "reqps",
                "provider none: the citizen is signed in on no app (or was given by number).",
            ),
            ts(
                "Read receipts by provider and agency",
                [
                    (
                        f"sum by (provider, agency) (rate(payam_app_read_receipts_total[{RI}]))",
                        "{{provider}} {{agency}}",
                    )
                ],
                "reqps",
            ),
            ts(
                "Push latency by provider",
                [
                    (q(p, "payam_app_push_duration_seconds", "provider"), f"{{{{provider}}}} p{p}")
                    for p in ("0.5", "0.95")
                ],
                "s",
            ),
        ],
        [],
    )


DASHBOARDS = {
    "overview.json": overview,
    "agencies.json": agencies,
    "operators.json": operators,
    "ussd.json": ussd,
    "ebox.json": ebox,
    "callbacks.json": callbacks,
    "app.json": app_channel,
}


def render() -> dict[str, str]:
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
