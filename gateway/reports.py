"""The SLA report (Art 9) and the usage statement (Art 6), as JSON and as CSV.

Periods are Jalali calendar months in Tehran time (``1405-09``), the unit agencies are billed
and reviewed in; labels for people are Jalali (``آذر ۱۴۰۵``), instants in JSON are UTC.
CSV cells that a spreadsheet would run as a formula are quoted with a leading apostrophe
(OWASP "CSV injection"): agency names come from outside.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jdatetime

from gateway.config import Config
from gateway.errors import Problem
from gateway.persian import TEHRAN, ascii_digits, persian_digits
from gateway.status import PRIORITY_NAMES
from gateway.store import Store
from gateway.tariffs import Tariffs

_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_MONTHS_FA = (
    "فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور",
    "مهر", "آبان", "آذر", "دی", "بهمن", "اسفند",
)  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Period:
    """One Jalali month: [start, end) as UTC instants, and its Tehran days."""

    year: int
    month: int
    start: datetime
    end: datetime
    first_day: date
    last_day: date

    @property
    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def label_fa(self) -> str:
        return f"{_MONTHS_FA[self.month - 1]} {persian_digits(str(self.year))}"

    def view(self) -> dict[str, Any]:
        return {
            "month": self.key,
            "label_fa": self.label_fa,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "first_day_jalali": _jalali_day(self.first_day),
            "last_day_jalali": _jalali_day(self.last_day),
        }


def _jalali_day(d: date) -> str:
    return str(jdatetime.date.fromgregorian(date=d).strftime("%Y/%m/%d"))


def jalali_month(value: str) -> Period:
    """``1405-09`` (Persian digits accepted) → the month's period in Tehran time."""
    m = _MONTH.match(ascii_digits(value.strip()))
    if not m or not 1 <= int(m.group(2)) <= 12 or not 1300 <= int(m.group(1)) <= 1600:
        raise Problem("invalid_parameter", "month must be a Jalali month such as 1405-09")
    year, month = int(m.group(1)), int(m.group(2))
    first = jdatetime.date(year, month, 1).togregorian()
    nxt = jdatetime.date(year + (month == 12), month % 12 + 1, 1).togregorian()

    def midnight(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=TEHRAN).astimezone(UTC)

    return Period(year, month, midnight(first), midnight(nxt), first, nxt - timedelta(days=1))


def current_month(now: datetime | None = None) -> Period:
    local = (now or datetime.now(UTC)).astimezone(TEHRAN)
    j = jdatetime.date.fromgregorian(date=local.date())
    return jalali_month(f"{j.year}-{j.month}")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(header: list[str], rows: list[list[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def sla_report(
    store: Store, config: Config, period: Period, agency_id: uuid.UUID | None
) -> dict[str, Any]:
    ops = config.ops
    rows = await store.reports.sla(
        period.start, period.end, agency_id, ops.sla_latency_seconds, ops.sla_delivery_ratio
    )
    agencies = []
    for r in rows:
        ratio = r.delivered / r.finished if r.finished else None
        breaches = []
        if r.p95 is not None and r.p95 > r.latency_target:
            breaches.append("latency_p95")
        if ratio is not None and ratio < r.ratio_target:
            breaches.append("delivery_ratio")
        agencies.append(
            {
                "agency_id": str(r.agency_id),
                "name_fa": r.name_fa,
                "name_en": r.name_en,
                "volume": r.volume,
                "finished": r.finished,
                "delivered": r.delivered,
                "delivery_ratio": None if ratio is None else round(ratio, 6),
                "latency_seconds": {
                    "p50": _round(r.p50),
                    "p95": _round(r.p95),
                    "p99": _round(r.p99),
                },
                "delivered_late": r.late,
                "targets": {
                    "latency_p95_seconds": r.latency_target,
                    "delivery_ratio": r.ratio_target,
                },
                "breaches": breaches,
            }
        )
    requests, errors = await store.reports.api_availability(period.first_day, period.last_day)
    api = {
        "requests": requests,
        "server_errors": errors,
        "availability": round(1 - errors / requests, 6) if requests else None,
    }
    return {"period": period.view(), "api": api, "agencies": agencies}


SLA_CSV_HEADER = [
    "period", "period_fa", "agency_id", "name_fa", "name_en", "volume", "finished", "delivered",
    "delivery_ratio", "p50_seconds", "p95_seconds", "p99_seconds", "delivered_late",
    "target_p95_seconds", "target_delivery_ratio", "breaches", "api_availability",
]  # fmt: skip


def sla_csv(report: dict[str, Any]) -> str:
    p = report["period"]
    rows: list[list[object]] = [
        [
            p["month"],
            p["label_fa"],
            a["agency_id"],
            a["name_fa"],
            a["name_en"],
            a["volume"],
            a["finished"],
            a["delivered"],
            a["delivery_ratio"],
            a["latency_seconds"]["p50"],
            a["latency_seconds"]["p95"],
            a["latency_seconds"]["p99"],
            a["delivered_late"],
            a["targets"]["latency_p95_seconds"],
            a["targets"]["delivery_ratio"],
            " ".join(a["breaches"]),
            report["api"]["availability"],
        ]
        for a in report["agencies"]
    ]
    return to_csv(SLA_CSV_HEADER, rows)


async def usage_statement(
    store: Store, tariffs: Tariffs, period: Period, agency_id: uuid.UUID | None
) -> dict[str, Any]:
    sms = await store.reports.sms_usage(period.start, period.end, agency_id)
    ussd = await store.reports.ussd_usage(period.first_day, period.last_day, agency_id)
    letters = await store.reports.letter_usage(period.start, period.end, agency_id)
    ids = sorted(
        {r.agency_id for r in sms} | {r.agency_id for r in ussd} | {r.agency_id for r in letters},
        key=str,
    )
    names = await store.reports.agency_names(ids)
    by_agency: dict[uuid.UUID, dict[str, Any]] = {
        i: {
            "agency_id": str(i),
            "name_fa": names.get(i, ("", ""))[0],
            "name_en": names.get(i, ("", ""))[1],
            "lines": [],
            "sms_fragments": 0,
            "letter_notice_fragments": 0,
            "ussd_sessions": 0,
            "letters": 0,
            "letter_attachment_mib": 0,
            "total": 0,
        }
        for i in ids
    }

    def line(
        a: dict[str, Any], item: str, operator: str, priority: str, n: int, price: int
    ) -> None:
        a["lines"].append(
            {
                "item": item,
                "operator": operator,
                "priority": priority,
                "quantity": n,
                "unit_price": price,
                "amount": price * n,
            }
        )
        a["total"] += price * n

    for r in sms:
        lane = PRIORITY_NAMES.get(r.priority, str(r.priority))
        a = by_agency[r.agency_id]
        line(a, "sms_fragment", r.operator, lane, r.fragments, tariffs.sms_price(r.operator, lane))
        a["sms_fragments"] += r.fragments
        a["letter_notice_fragments"] += r.letter_notices
    for u in ussd:
        a = by_agency[u.agency_id]
        line(a, "ussd_session", u.operator, "", u.sessions, tariffs.ussd_session)
        a["ussd_sessions"] += u.sessions
    for le in letters:
        a = by_agency[le.agency_id]
        # One line per recipient kind (a person's or a company's e-box), and one for the
        # started MiB of those letters' attachments when there are any.
        line(
            a, f"letter_{le.recipient_kind}", "", "", le.letters, tariffs.letters[le.recipient_kind]
        )
        if le.attachment_mib:
            line(
                a,
                f"letter_{le.recipient_kind}_attachment_mib",
                "",
                "",
                le.attachment_mib,
                tariffs.letters["attachment_mib"],
            )
        a["letters"] += le.letters
        a["letter_attachment_mib"] += le.attachment_mib
    return {
        "period": period.view(),
        "currency": tariffs.currency,
        "agencies": list(by_agency.values()),
    }


USAGE_CSV_HEADER = [
    "period", "period_fa", "agency_id", "name_fa", "name_en", "item", "operator", "priority",
    "quantity", "unit_price", "amount", "currency",
]  # fmt: skip


def usage_csv(statement: dict[str, Any]) -> str:
    p, cur = statement["period"], statement["currency"]
    rows: list[list[object]] = []
    for a in statement["agencies"]:
        head = [p["month"], p["label_fa"], a["agency_id"], a["name_fa"], a["name_en"]]
        for line in a["lines"]:
            rows.append(
                [
                    *head,
                    line["item"],
                    line["operator"],
                    line["priority"],
                    line["quantity"],
                    line["unit_price"],
                    line["amount"],
                    cur,
                ]
            )
        rows.append([*head, "total", "", "", "", "", a["total"], cur])
    return to_csv(USAGE_CSV_HEADER, rows)
