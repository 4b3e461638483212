"""Batches (POST /v1/batches): one template, up to 100,000 recipients, from JSON or CSV.

Per-recipient problems (bad number, unknown national code, missing template parameter, opted
out) are reported per recipient and do not fail the batch. The rest is committed with COPY in
one transaction. Each message gets a virtual time spaced by the agency's TPS: this paces the
agency to its contract and interleaves agencies fairly, so one agency's million-recipient batch
delays another agency's single notice by at most one claim round (weighted fair queuing).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import string
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from adapters.sms.encoding import UCS2_PER_PART, UCS2_SINGLE, TooManyParts, plan
from gateway.auth import AgencyPrincipal
from gateway.errors import Problem
from gateway.link_policy import may_carry_link, template_shapes_links
from gateway.metrics import SMS_ACCEPTED
from gateway.recipients import CitizenDirectory, normalize_msisdn
from gateway.sending import MAX_PARTS, MESSAGE_FIELDS, SendingService, tehran_day
from gateway.status import PRIORITIES, QUEUED, SCHEDULED
from gateway.store import Store
from gateway.store.verification import CodeRecord
from gateway.validation import Field, parse_object
from gateway.verification import VerificationService

if TYPE_CHECKING:
    from gateway.app_channel.service import AppChannel

MAX_RECIPIENTS = 100_000
# Recipients prepared and inserted per step; steps overlap (see BatchService.accept).
CHUNK = 20_000
_COMMON = {k: v for k, v in MESSAGE_FIELDS.items() if k not in {"to", "national_code", "text"}}
BATCH_FIELDS: dict[str, Field] = {
    **_COMMON,
    "template": Field(str, required=True, max_length=1000),
    "recipients": Field(list, required=True, max_items=MAX_RECIPIENTS),
    # The app channel (docs/APP_CHANNEL.md): ["app", "sms"] routes recipients given by national
    # code who use an app there; checked by AppChannel.batch_order.
    "channel": Field(str, max_length=8),
    "channels": Field(list, item_kind=str, max_items=2),
}


@dataclass(frozen=True, slots=True)
class Recipient:
    to: str | None
    national_code: str | None
    params: dict[str, str]


def placeholders(template: str) -> set[str]:
    names: set[str] = set()
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None:
            if not name.isidentifier():
                raise Problem("invalid_value", f"template: placeholder {{{name}}} is not a name")
            names.add(name)
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
    if "\x00" in text:  # PostgreSQL text cannot hold it (SQLSTATE 22021)
        raise Problem("invalid_value", "CSV: must not contain U+0000 (NUL)")
    # newline="" lets the csv module see quoted line breaks (Python csv docs); a bare CR in an
    # unquoted field is a malformed file, answered 422 rather than a 500 (tests/test_api_fuzz.py).
    reader = csv.DictReader(io.StringIO(text, newline=""))
    out: list[Recipient] = []
    try:
        columns = reader.fieldnames or []
        if "to" not in columns and "national_code" not in columns:
            raise Problem(
                "invalid_value", "CSV: the header row needs a 'to' or 'national_code' column"
            )
        for row in reader:
            if len(out) >= MAX_RECIPIENTS:
                raise Problem("batch_too_large", f"at most {MAX_RECIPIENTS} recipients")
            params = {k: v for k, v in row.items() if k not in {"to", "national_code"} and k}
            out.append(Recipient(row.get("to") or None, row.get("national_code") or None, params))
    except csv.Error as exc:
        raise Problem("invalid_value", f"CSV line {reader.line_num}: {exc}") from None
    return out


class BatchService:
    def __init__(
        self,
        store: Store,
        sending: SendingService,
        directory: CitizenDirectory,
        pool_size: int = 10,
    ) -> None:
        self._store = store
        self._sending = sending
        self._directory = directory
        # A batch holds its transaction's connection while it takes a second one from the pool
        # for each chunk's opt-out lookup (overlapped with the previous chunk's insert) and
        # for the quota, which must not be locked for the whole transaction. As many batches
        # as the pool has connections would each hold one and wait for another, for ever:
        # at most half the pool (and at most 4: the work is CPU-bound on 2 cores) run their
        # transactions at once; the rest wait here, before they hold anything.
        self._in_tx = asyncio.Semaphore(max(1, min(4, pool_size // 2)))
        # The app channel (gateway/app_channel); set in gateway/services.py.
        self.app: AppChannel | None = None

    async def accept(
        self, principal: AgencyPrincipal, common: dict[str, Any], recipients: list[Recipient]
    ) -> dict[str, Any]:
        agency = principal.agency
        if not recipients:
            raise Problem("invalid_value", "recipients: at least one")
        if len(recipients) > MAX_RECIPIENTS:
            raise Problem("batch_too_large", f"at most {MAX_RECIPIENTS} recipients")
        template = common.pop("template")
        if self.app is not None:
            order = self.app.batch_order(common)
        elif "channel" in common or "channels" in common:
            raise Problem("invalid_value", "channels: the app channel is not enabled here")
        else:
            order = ("sms",)
        names = placeholders(template)
        now = datetime.now(UTC)
        # Checks shared by every recipient run once, on the template.
        try:
            p = self._sending.prepare(
                {**common, "to": "+989120000000", "text": template}, principal, now
            )
        except Problem as exc:
            await self._sending.link_refused(principal, exc)
            raise
        sender = self._sending.bind_sender(p.sender, await self._sending.senders(agency.id))
        # Whether each message carries a verification code (refused here if asked and off).
        probe = await self._sending.with_verification(p, agency.id, sender, "+989120000000", now)
        codes = [r.national_code for r in recipients if r.national_code and not r.to]
        numbers = await self._directory.numbers_for(codes) if codes else {}
        batch_id = uuid.uuid4()
        start = p.send_at or now
        priority = PRIORITIES[p.priority]
        # Crisis is never paced: it must reach millions as fast as the operators allow.
        step = 0.0 if priority == 0 else 1.0 / max(agency.tps, 1)
        status = SCHEDULED if p.send_at else QUEUED
        job = _Job(
            sending=self._sending,
            store=self._store,
            agency_id=agency.id,
            template=template,
            names=names,
            mandatory=p.mandatory,
            domains=agency.link_domains,
            links_around_params=template_shapes_links(template),
            default_text=p.text,
            ucs2_template=plan(p.text)[0] == "ucs2",
            numbers=numbers,
            verification=self._sending.verification if probe.verification else None,
            sender=sender,
            sent_at=p.send_at or now,
        )
        day = tehran_day(start)
        accepted = fragments = held = 0
        reserved = False
        try:
            async with self._in_tx, self._store.transaction() as tx:
                # Chunks overlap: while the server inserts one, Python prepares the next.
                pending: asyncio.Task[None] | None = None
                try:
                    for offset in range(0, len(recipients), CHUNK):
                        rows = await job.rows(recipients, offset, offset + CHUNK)
                        if pending is not None:
                            await pending
                            pending = None
                        if not rows:
                            continue
                        pending = asyncio.create_task(
                            tx.messages.insert_batch_rows(
                                rows,
                                batch_id=batch_id,
                                agency_id=agency.id,
                                key_id=principal.key.key_id,
                                is_test=principal.is_test,
                                sender=sender,
                                priority=priority,
                                mandatory=p.mandatory,
                                status=status,
                                send_at=p.send_at,
                                valid_until=p.valid_until,
                                client_ref=p.client_ref,
                                callback_url=p.callback_url,
                                start=start + timedelta(seconds=accepted * step),
                                step_seconds=step,
                            )
                        )
                        accepted += len(rows)
                        fragments += sum(r[3] for r in rows)
                    if pending is not None:
                        await pending
                        pending = None
                finally:
                    if pending is not None:
                        pending.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await pending
                if accepted and self.app is not None:
                    held = await self.app.hold_batch(
                        tx, batch_id=batch_id, agency_id=agency.id, order=order, numbers=numbers
                    )
                if accepted:
                    # Counted last, inside the transaction: over quota rolls everything back.
                    if not await self._store.messages.reserve_fragments(
                        agency.id, day, fragments, agency.daily_fragment_quota
                    ):
                        raise Problem(
                            "daily_quota_exceeded", f"{fragments} fragments exceed the daily quota"
                        )
                    reserved = True
                await tx.verification.insert(job.codes)
                await tx.messages.insert_batch(
                    batch_id,
                    agency.id,
                    principal.is_test,
                    len(recipients),
                    len(job.rejected),
                    p.client_ref,
                )
                if accepted and p.send_at is None:
                    await tx.messages.notify_queued(priority == 0)
        except BaseException:
            if reserved:
                await self._store.messages.release_fragments(agency.id, day, fragments)
            raise
        if held and self.app is not None:
            self.app.wake.set()
        rejected = job.rejected
        for code, n in Counter(
            r["code"] for r in rejected if r["code"].startswith("link_")
        ).items():
            await self._sending.link_refused(principal, Problem(code, host=""), n)
        SMS_ACCEPTED.labels(str(agency.id), p.priority).inc(accepted)
        return {
            "id": str(batch_id),
            "status": status,
            "total": len(recipients),
            "accepted": accepted,
            "rejected": sorted(rejected, key=lambda r: r["index"])[:1000],
            "rejected_count": len(rejected),
            "fragments": fragments,
            "sender": sender,
            "test": principal.is_test,
        }


@dataclass
class _Job:
    """The per-recipient work of one batch, a chunk at a time."""

    sending: SendingService
    store: Store
    agency_id: uuid.UUID
    template: str
    names: set[str]
    mandatory: bool
    domains: tuple[str, ...]
    # The template puts link syntax next to a placeholder: check every rendered text.
    links_around_params: bool
    default_text: str
    ucs2_template: bool
    numbers: dict[str, str]
    verification: VerificationService | None
    sender: str
    sent_at: datetime
    rejected: list[dict[str, Any]] = field(default_factory=list)
    codes: list[CodeRecord] = field(default_factory=list)

    async def rows(
        self, recipients: list[Recipient], lo: int, hi: int
    ) -> list[tuple[str, str, str, int]]:
        """(recipient, text, encoding, parts) for recipients[lo:hi]; problems go to rejected.
        Built as plain tuples: this runs once per recipient of a million-recipient job."""
        chunk = recipients[lo:hi]
        msisdns: list[str | None] = []
        for i, r in enumerate(chunk, start=lo):
            msisdn = normalize_msisdn(r.to) if r.to else self.numbers.get(r.national_code or "")
            if msisdn is None:
                code = "invalid_recipient" if r.to else "unknown_national_code"
                self.rejected.append({"index": i, "code": code})
            msisdns.append(msisdn)
        opted: set[str] = set()
        if not self.mandatory:
            valid = [m for m in msisdns if m is not None]
            if valid:
                opted = await self.store.messages.opted_out(self.agency_id, valid)
        rows: list[tuple[str, str, str, int]] = []
        names, template, rejected = self.names, self.template, self.rejected
        for i, (r, msisdn) in enumerate(zip(chunk, msisdns, strict=True), start=lo):
            if msisdn is None:
                continue
            if msisdn in opted:
                rejected.append({"index": i, "code": "recipient_opted_out"})
                continue
            if names:
                if not names <= r.params.keys():
                    missing = ", ".join(sorted(names - r.params.keys()))
                    rejected.append({"index": i, "code": "missing_param", "detail": missing})
                    continue
                try:
                    text = self.sending.final_text(template.format_map(r.params), self.mandatory)
                except Problem:
                    rejected.append({"index": i, "code": "invalid_value", "detail": "empty"})
                    continue
                if self.links_around_params or any(map(may_carry_link, r.params.values())):
                    try:
                        # Parameters may complete a link the template alone did not show.
                        self.sending.links.check(text, self.domains)
                    except Problem as exc:
                        rejected.append({"index": i, "code": exc.code, "detail": exc.detail})
                        continue
            else:
                text = self.default_text
            if self.verification is not None:
                code = self.verification.new_code()
                text += self.verification.suffix(code)
                self.codes.append(
                    self.verification.record(
                        code, self.agency_id, self.sender, msisdn, self.sent_at
                    )
                )
            encoding, parts = _count(text, self.ucs2_template)
            if parts > MAX_PARTS:
                rejected.append({"index": i, "code": "message_too_long"})
                if self.verification is not None:
                    self.codes.pop()
                continue
            rows.append((msisdn, text, encoding, parts))
            if len(rows) % 4096 == 0:
                await asyncio.sleep(0)  # let the previous chunk's COPY stream meanwhile
        return rows


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
