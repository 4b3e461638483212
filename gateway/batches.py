"""Batches (POST /v1/batches): one template, up to 100,000 recipients, from JSON or CSV.

Per-recipient problems (bad number, unknown national code, missing template parameter, opted
out) are reported per recipient and do not fail the batch. The rest is committed with COPY in
one transaction. Each message gets a virtual time spaced by the agency's TPS: this paces the
agency to its contract and interleaves agencies fairly, so one agency's million-recipient batch
delays another agency's single notice by at most one claim round (weighted fair queuing).
"""

from __future__ import annotations

import csv
import io
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.sms.encoding import UCS2_PER_PART, UCS2_SINGLE, TooManyParts, plan
from gateway.auth import AgencyPrincipal
from gateway.errors import Problem
from gateway.metrics import SMS_ACCEPTED
from gateway.recipients import CitizenDirectory, normalize_msisdn
from gateway.sending import MAX_PARTS, MESSAGE_FIELDS, SendingService, tehran_day
from gateway.status import PRIORITIES, QUEUED, SCHEDULED
from gateway.store import Store
from gateway.validation import Field, parse_object

MAX_RECIPIENTS = 100_000
_COMMON = {k: v for k, v in MESSAGE_FIELDS.items() if k not in {"to", "national_code", "text"}}
BATCH_FIELDS: dict[str, Field] = {
    **_COMMON,
    "template": Field(str, required=True, max_length=1000),
    "recipients": Field(list, required=True, max_items=MAX_RECIPIENTS),
}


@dataclass(frozen=True, slots=True)
class Recipient:
    to: str | None
    national_code: str | None
    params: dict[str, str]


def placeholders(template: str) -> set[str]:
    names = set()
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None:
            if not field.isidentifier():
                raise Problem("invalid_value", f"template: placeholder {{{field}}} is not a name")
            names.add(field)
    return names


def recipients_from_json(items: list[Any]) -> list[Recipient]:
    """Checked strictly but cheaply: this runs once per recipient of a large job."""
    out: list[Recipient] = []
    append = out.append
    for i, item in enumerate(items):
        if type(item) is not dict:
            raise Problem("wrong_type", f"recipients[{i}]: an object")
        to = item.get("to")
        code = item.get("national_code")
        params = item.get("params")
        if len(item) != (to is not None) + (code is not None) + (params is not None):
            raise Problem("unknown_field", f"recipients[{i}]: only to, national_code, params")
        if (to is not None and type(to) is not str) or (code is not None and type(code) is not str):
            raise Problem("wrong_type", f"recipients[{i}]: to and national_code are strings")
        if params is None:
            params = {}
        elif type(params) is not dict:
            raise Problem("wrong_type", f"recipients[{i}].params: an object of strings")
        else:
            for v in params.values():
                if type(v) is not str:
                    if type(v) is int:
                        params = {k: str(x) for k, x in params.items()}
                        break
                    raise Problem("wrong_type", f"recipients[{i}].params: an object of strings")
        append(Recipient(to, code, params))
    return out


def recipients_from_csv(text: str) -> list[Recipient]:
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    if "to" not in columns and "national_code" not in columns:
        raise Problem("invalid_value", "CSV: the header row needs a 'to' or 'national_code' column")
    out: list[Recipient] = []
    for row in reader:
        if len(out) >= MAX_RECIPIENTS:
            raise Problem("batch_too_large", f"at most {MAX_RECIPIENTS} recipients")
        params = {k: v for k, v in row.items() if k not in {"to", "national_code"} and k}
        out.append(Recipient(row.get("to") or None, row.get("national_code") or None, params))
    return out


class BatchService:
    def __init__(self, store: Store, sending: SendingService, directory: CitizenDirectory) -> None:
        self._store = store
        self._sending = sending
        self._directory = directory

    async def accept(
        self, principal: AgencyPrincipal, common: dict[str, Any], recipients: list[Recipient]
    ) -> dict[str, Any]:
        agency = principal.agency
        if not recipients:
            raise Problem("invalid_value", "recipients: at least one")
        if len(recipients) > MAX_RECIPIENTS:
            raise Problem("batch_too_large", f"at most {MAX_RECIPIENTS} recipients")
        template = common.pop("template")
        names = placeholders(template)
        now = datetime.now(UTC)
        # Checks shared by every recipient run once, on the template.
        p = self._sending.prepare(
            {**common, "to": "+989120000000", "text": template}, principal, now
        )
        sender = self._sending.bind_sender(p.sender, await self._sending.senders(agency.id))
        codes = [r.national_code for r in recipients if r.national_code and not r.to]
        numbers = await self._directory.numbers_for(codes) if codes else {}
        rejected: list[dict[str, Any]] = []
        # Pass 1: recipients (cheap, and opt-outs need them all in one query).
        msisdns: list[str | None] = []
        for i, r in enumerate(recipients):
            msisdn = normalize_msisdn(r.to) if r.to else numbers.get(r.national_code or "")
            if msisdn is None:
                code = "invalid_recipient" if r.to else "unknown_national_code"
                rejected.append({"index": i, "code": code})
            msisdns.append(msisdn)
        opted: set[str] = set()
        if not p.mandatory:
            valid = [m for m in msisdns if m is not None]
            opted = await self._store.messages.opted_out(agency.id, valid) if valid else set()
        # Pass 2: texts, parts and the rows for COPY (built as tuples: this loop runs a
        # million times for a large job).
        batch_id = uuid.uuid4()
        start = p.send_at or now
        priority = PRIORITIES[p.priority]
        # Crisis is never paced: it must reach millions as fast as the operators allow.
        step = timedelta(seconds=0.0 if priority == 0 else 1.0 / max(agency.tps, 1))
        status = SCHEDULED if p.send_at else QUEUED
        ucs2_template = plan(p.text)[0] == "ucs2"
        key_id, is_test, mandatory = principal.key.key_id, principal.is_test, p.mandatory
        rows: list[tuple[str, str, str, int]] = []
        fragments = 0
        for i, r in enumerate(recipients):
            msisdn = msisdns[i]
            if msisdn is None:
                continue
            if msisdn in opted:
                rejected.append({"index": i, "code": "recipient_opted_out"})
                continue
            if names:
                if not names <= r.params.keys():
                    missing = names - r.params.keys()
                    rejected.append(
                        {"index": i, "code": "missing_param", "detail": ", ".join(sorted(missing))}
                    )
                    continue
                try:
                    text = self._sending.final_text(template.format_map(r.params), mandatory)
                except Problem:
                    rejected.append({"index": i, "code": "invalid_value", "detail": "empty"})
                    continue
            else:
                text = p.text
            encoding, parts = _count(text, ucs2_template)
            if parts > MAX_PARTS:
                rejected.append({"index": i, "code": "message_too_long"})
                continue
            fragments += parts
            rows.append((msisdn, text, encoding, parts))
        day = tehran_day(start)
        if rows and not await self._store.messages.reserve_fragments(
            agency.id, day, fragments, agency.daily_fragment_quota
        ):
            raise Problem("daily_quota_exceeded", f"{fragments} fragments exceed the daily quota")
        try:
            async with self._store.transaction() as tx:
                await tx.messages.insert_batch(
                    batch_id, agency.id, is_test, len(recipients), len(rejected), p.client_ref
                )
                if rows:
                    await tx.messages.insert_batch_rows(
                        rows,
                        batch_id=batch_id,
                        agency_id=agency.id,
                        key_id=key_id,
                        is_test=is_test,
                        sender=sender,
                        priority=priority,
                        mandatory=mandatory,
                        status=status,
                        send_at=p.send_at,
                        valid_until=p.valid_until,
                        client_ref=p.client_ref,
                        callback_url=p.callback_url,
                        start=start,
                        step_seconds=step.total_seconds(),
                    )
                    if p.send_at is None:
                        await tx.messages.notify_queued(priority == 0)
        except BaseException:
            if rows:
                await self._store.messages.release_fragments(agency.id, day, fragments)
            raise
        SMS_ACCEPTED.labels(str(agency.id), p.priority).inc(len(rows))
        return {
            "id": str(batch_id),
            "status": status,
            "total": len(recipients),
            "accepted": len(rows),
            "rejected": sorted(rejected, key=lambda r: r["index"])[:1000],
            "rejected_count": len(rejected),
            "fragments": fragments,
            "sender": sender,
            "test": principal.is_test,
        }


def _count(text: str, ucs2_template: bool) -> tuple[str, int]:
    """(encoding, parts) for a rendered text. A Persian template makes every rendering UCS2;
    with no character outside the BMP, UCS2 parts are plain arithmetic (70 single, 67 per
    part), so the character-by-character split in ``plan`` is needed only otherwise."""
    if ucs2_template:
        units = len(text.encode("utf-16-le")) // 2
        if units == len(text):
            return "ucs2", 1 if units <= UCS2_SINGLE else -(-units // UCS2_PER_PART)
    try:
        return plan(text)
    except TooManyParts:
        return "ucs2", MAX_PARTS + 1


def parse_common(body: dict[str, Any]) -> dict[str, Any]:
    return parse_object(body, BATCH_FIELDS)
