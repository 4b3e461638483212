"""SQL of the SLA report (Art 9) and the usage statement (Art 6): whole periods, per agency."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from gateway.status import CANCELLED, DELIVERED
from gateway.store.db import Executor

# The key id the letter notices are queued under (gateway/letters/sms.py), so the statement can
# show which of an agency's SMS fragments were notices of its letters.
LETTER_NOTICE_KEY = "kartpooshe"


@dataclass(frozen=True, slots=True)
class SlaRow:
    agency_id: uuid.UUID
    name_fa: str
    name_en: str
    latency_target: float
    ratio_target: float
    volume: int
    finished: int
    delivered: int
    late: int
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True, slots=True)
class SmsUsageRow:
    agency_id: uuid.UUID
    operator: str
    priority: int
    fragments: int
    letter_notices: int = 0  # of those, fragments of letters' SMS notices


@dataclass(frozen=True, slots=True)
class LetterUsageRow:
    agency_id: uuid.UUID
    recipient_kind: str  # person, company
    letters: int
    attachment_mib: int  # started MiB of attachments, summed letter by letter


@dataclass(frozen=True, slots=True)
class UssdUsageRow:
    agency_id: uuid.UUID
    operator: str
    sessions: int


class ReportStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def sla(
        self,
        since: datetime,
        until: datetime,
        agency_id: uuid.UUID | None,
        default_latency: float,
        default_ratio: float,
    ) -> list[SlaRow]:
        """Live messages accepted in [since, until), per agency: how many, how many finished
        (cancelled ones are not the platform's to deliver), delivered, delivered later than
        the target, and accept→delivered latency quantiles. Scheduled messages count from
        their send time, not from when they were accepted."""
        rows = await self._db.fetch(
            "report_sla",
            """WITH m AS (
                   SELECT agency_id, status, final_at IS NOT NULL AND status <> $6 AS finished,
                          extract(epoch FROM final_at - coalesce(send_at, created_at)) AS latency
                   FROM messages
                   WHERE created_at >= $1 AND created_at < $2 AND NOT is_test
                     AND ($3::uuid IS NULL OR agency_id = $3))
               SELECT a.id AS agency_id, a.name_fa, a.name_en,
                      coalesce(s.latency_p95_seconds, $4) AS latency_target,
                      coalesce(s.delivery_ratio, $5) AS ratio_target,
                      count(*) AS volume,
                      count(*) FILTER (WHERE m.finished) AS finished,
                      count(*) FILTER (WHERE m.status = $7) AS delivered,
                      count(*) FILTER (WHERE m.status = $7
                                         AND m.latency > coalesce(s.latency_p95_seconds, $4))
                        AS late,
                      percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY m.latency)
                        FILTER (WHERE m.status = $7) AS q
               FROM m JOIN agencies a ON a.id = m.agency_id
               LEFT JOIN agency_sla s ON s.agency_id = a.id
               GROUP BY a.id, a.name_fa, a.name_en, s.latency_p95_seconds, s.delivery_ratio
               ORDER BY a.name_en, a.id""",
            since,
            until,
            agency_id,
            default_latency,
            default_ratio,
            CANCELLED,
            DELIVERED,
        )
        out = []
        for r in rows:
            q = list(r["q"]) if r["q"] is not None else [None, None, None]
            out.append(
                SlaRow(
                    r["agency_id"],
                    r["name_fa"],
                    r["name_en"],
                    float(r["latency_target"]),
                    float(r["ratio_target"]),
                    int(r["volume"]),
                    int(r["finished"]),
                    int(r["delivered"]),
                    int(r["late"]),
                    *q,
                )
            )
        return out

    async def sms_usage(
        self, since: datetime, until: datetime, agency_id: uuid.UUID | None
    ) -> list[SmsUsageRow]:
        """Fragments handed to an operator (each accepted submit_sm) in [since, until), by
        agency, operator and priority: what the operators bill, so what agencies are billed.
        Test-key traffic never reaches an operator and has no parts."""
        rows = await self._db.fetch(
            "report_sms_usage",
            """SELECT m.agency_id, p.operator, m.priority, count(*) AS fragments,
                      count(*) FILTER (WHERE m.key_id = $4) AS letter_notices
               FROM message_parts p JOIN messages m ON m.id = p.message_id
               WHERE p.submitted_at >= $1 AND p.submitted_at < $2
                 AND ($3::uuid IS NULL OR m.agency_id = $3)
               GROUP BY m.agency_id, p.operator, m.priority
               ORDER BY m.agency_id, p.operator, m.priority""",
            since,
            until,
            agency_id,
            LETTER_NOTICE_KEY,
        )
        return [
            SmsUsageRow(
                r["agency_id"],
                r["operator"],
                int(r["priority"]),
                int(r["fragments"]),
                int(r["letter_notices"]),
            )
            for r in rows
        ]

    async def letter_usage(
        self, since: datetime, until: datetime, agency_id: uuid.UUID | None
    ) -> list[LetterUsageRow]:
        """Letters deposited into an e-box in [since, until), by agency and recipient kind:
        the service done (a letter that failed to deposit is not billed; one accepted at the
        month's end and deposited after it is billed in the month it was deposited, as SMS are
        billed when handed to the operator). Test-key letters never reach the e-box. Attachment
        size is counted in started MiB per letter, so the sum is exact in whole units."""
        rows = await self._db.fetch(
            "report_letter_usage",
            """SELECT l.agency_id, l.recipient_kind, count(*) AS letters,
                      coalesce(sum(ceil(coalesce(att.bytes, 0) / 1048576.0)), 0)::bigint AS mib
               FROM letters l
               LEFT JOIN LATERAL (SELECT sum(size) AS bytes FROM letter_attachments
                                  WHERE letter_id = l.id) att ON true
               WHERE l.deposited_at >= $1 AND l.deposited_at < $2 AND NOT l.is_test
                 AND l.accepted_at < $2
                 AND ($3::uuid IS NULL OR l.agency_id = $3)
               GROUP BY l.agency_id, l.recipient_kind
               ORDER BY l.agency_id, l.recipient_kind""",
            since,
            until,
            agency_id,
        )
        return [
            LetterUsageRow(r["agency_id"], r["recipient_kind"], int(r["letters"]), int(r["mib"]))
            for r in rows
        ]

    async def ussd_usage(
        self, first: date, last: date, agency_id: uuid.UUID | None
    ) -> list[UssdUsageRow]:
        """USSD dialogs started on Tehran days first..last inclusive."""
        rows = await self._db.fetch(
            "report_ussd_usage",
            """SELECT agency_id, operator, sum(sessions) AS sessions FROM ussd_usage
               WHERE day >= $1 AND day <= $2 AND ($3::uuid IS NULL OR agency_id = $3)
               GROUP BY agency_id, operator ORDER BY agency_id, operator""",
            first,
            last,
            agency_id,
        )
        return [UssdUsageRow(r["agency_id"], r["operator"], int(r["sessions"])) for r in rows]

    async def count_ussd_session(self, agency_id: uuid.UUID, operator: str, day: date) -> None:
        await self._db.execute(
            "ussd_usage_count",
            """INSERT INTO ussd_usage AS u (agency_id, day, operator, sessions)
               VALUES ($1, $2, $3, 1)
               ON CONFLICT (agency_id, day, operator) DO UPDATE SET sessions = u.sessions + 1""",
            agency_id,
            day,
            operator,
        )

    async def add_api_availability(self, day: date, requests: int, errors: int) -> None:
        await self._db.execute(
            "api_availability_add",
            """INSERT INTO api_availability AS a (day, requests, server_errors)
               VALUES ($1, $2, $3)
               ON CONFLICT (day) DO UPDATE SET requests = a.requests + EXCLUDED.requests,
                   server_errors = a.server_errors + EXCLUDED.server_errors""",
            day,
            requests,
            errors,
        )

    async def api_availability(self, first: date, last: date) -> tuple[int, int]:
        row = await self._db.fetchrow(
            "report_api_availability",
            """SELECT coalesce(sum(requests), 0) AS r, coalesce(sum(server_errors), 0) AS e
               FROM api_availability WHERE day >= $1 AND day <= $2""",
            first,
            last,
        )
        assert row is not None
        return int(row["r"]), int(row["e"])

    async def agency_names(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str]]:
        rows = await self._db.fetch(
            "report_agency_names",
            "SELECT id, name_fa, name_en FROM agencies WHERE id = ANY($1::uuid[])",
            ids,
        )
        return {r["id"]: (r["name_fa"], r["name_en"]) for r in rows}
