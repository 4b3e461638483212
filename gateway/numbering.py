"""The numbering plan (Art 1c, 1d, 3): 4040 shortcodes, department sub-numbers, *4 USSD codes and
alphanumeric masks, each owned by exactly one agency.

Rules enforced on every allocation, inside one transaction under an advisory lock (so concurrent
requests on any node are serialised and can never both win):

- values are unique, and **prefix-free across agencies**: a citizen's reply is routed by the
  longest prefix of its destination, which must never be ambiguous between two agencies;
- a released value stays **quarantined** (``numbering.quarantine_days``) against other agencies: a
  number that changes hands is a gift to phishers. The former holder may take it back;
- masks that look like another agency's mask, or like a reserved word, are refused;
- reserved numbers and codes from configuration are never allocated;
- every allocation is kept with its release time: the history of who held what.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from gateway.config import NumberingConfig
from gateway.errors import Problem
from gateway.masks import MaskError, find_conflict, skeleton, validate_mask
from gateway.metrics import NUMBERING_ALLOCATIONS
from gateway.persian import ascii_digits
from gateway.store import Store
from gateway.store.models import Agency, Allocation

KINDS = ("shortcode", "sub_number", "ussd_code", "mask")
# Kinds that share one routing space, and so must be prefix-free between agencies.
_SPACE = {
    "shortcode": ["shortcode", "sub_number"],
    "sub_number": ["shortcode", "sub_number"],
    "ussd_code": ["ussd_code"],
    "mask": ["mask"],
}


@dataclass(frozen=True, slots=True)
class Request:
    kind: str
    value: str | None = None
    digits: int | None = None
    parent_id: int | None = None
    label: str = ""


def _mask_problem(err: MaskError) -> Problem:
    return Problem(err.code, err.message, detail_fa=err.message_fa)


class NumberingPlan:
    """Pure rules: parse and canonicalise values, and judge a candidate against what is held."""

    def __init__(self, cfg: NumberingConfig) -> None:
        self.cfg = cfg
        p = re.escape(cfg.shortcode_prefix)
        self._shortcode = re.compile(
            rf"^{p}\d{{{cfg.shortcode_min_digits},{cfg.shortcode_max_digits}}}$"
        )
        u = re.escape(cfg.ussd_prefix)
        self._ussd = re.compile(rf"^{u}\d{{{cfg.ussd_min_digits},{cfg.ussd_max_digits}}}#$")
        self.reserved_numbers = tuple(ascii_digits(v) for v in cfg.reserved_shortcodes)
        self.reserved_ussd = tuple(self.ussd_key(v) for v in cfg.reserved_ussd_codes)

    # -- parsing -------------------------------------------------------------------------
    def shortcode(self, raw: str) -> str:
        value = ascii_digits(raw).strip()
        if not self._shortcode.match(value):
            c = self.cfg
            raise Problem(
                "invalid_shortcode",
                f"{value!r}: expected {c.shortcode_prefix} followed by "
                f"{c.shortcode_min_digits}-{c.shortcode_max_digits} digits",
            )
        return value

    def sub_number(self, raw: str, parent: Allocation) -> str:
        value = ascii_digits(raw).strip()
        extra = value[len(parent.value) :]
        if (
            not value.startswith(parent.value)
            or not extra.isdigit()
            or not 1 <= len(extra) <= self.cfg.sub_number_max_digits
        ):
            raise Problem(
                "invalid_sub_number",
                f"{value!r}: expected {parent.value} followed by "
                f"1-{self.cfg.sub_number_max_digits} digits",
            )
        return value

    def ussd_code(self, raw: str) -> str:
        value = ascii_digits(raw).strip().replace(" ", "")
        if not self._ussd.match(value):
            c = self.cfg
            raise Problem(
                "invalid_ussd_code",
                f"{value!r}: expected {c.ussd_prefix} followed by "
                f"{c.ussd_min_digits}-{c.ussd_max_digits} digits and #, e.g. {c.ussd_prefix}12#",
            )
        return value

    @staticmethod
    def ussd_key(code: str) -> str:
        """``*412#`` -> ``412``: dial-through strings ``*412*1*3#`` route by this key."""
        return ascii_digits(code).strip().lstrip("*").rstrip("#").split("*")[0]

    def mask(self, raw: str) -> str:
        try:
            return validate_mask(raw, self.cfg.mask_max_length)
        except MaskError as err:
            raise _mask_problem(err) from None

    def match_key(self, kind: str, value: str) -> str:
        if kind == "mask":
            return skeleton(value)
        if kind == "ussd_code":
            return self.ussd_key(value)
        return value

    # -- judging -------------------------------------------------------------------------
    def judge(self, kind: str, value: str, agency_id: uuid.UUID, held: list[Allocation]) -> None:
        """Raise the Problem that forbids ``value`` for ``agency_id``, or return if it is free."""
        key = self.match_key(kind, value)
        if kind == "mask":
            self._judge_mask(value, key, agency_id, held)
            return
        reserved = self.reserved_ussd if kind == "ussd_code" else self.reserved_numbers
        for r in reserved:
            if key.startswith(r) or r.startswith(key):
                raise Problem("number_reserved", f"{value} overlaps reserved {r}")
        for other in held:
            same_agency = other.agency_id == agency_id
            if other.match_key == key:
                if other.active:
                    raise Problem("number_taken", f"{value} is allocated", allocation_id=other.id)
                if not same_agency:
                    raise Problem(
                        "number_quarantined",
                        f"{value} is quarantined until {other.quarantine_until:%Y-%m-%d}",
                    )
                continue  # the former holder takes its own number back
            if not (key.startswith(other.match_key) or other.match_key.startswith(key)):
                continue
            if same_agency and (kind == "sub_number" or other.kind == "sub_number"):
                continue  # nested inside the agency's own block: routing stays unambiguous
            if same_agency and not other.active:
                continue
            raise Problem(
                "number_prefix_clash",
                f"{value} and {other.value} would be ambiguous by prefix",
                **({"allocation_id": other.id} if same_agency else {}),
            )

    def _judge_mask(
        self, value: str, key: str, agency_id: uuid.UUID, held: list[Allocation]
    ) -> None:
        for other in held:
            if other.match_key == key and other.agency_id == agency_id and other.active:
                raise Problem("number_taken", f"{value} is allocated", allocation_id=other.id)
        others = [h for h in held if h.agency_id != agency_id]
        for other in others:
            if other.match_key == key and not other.active:
                raise Problem(
                    "number_quarantined",
                    f"{value} is quarantined until {other.quarantine_until:%Y-%m-%d}",
                )
        err = find_conflict(value, [o.value for o in others], self.cfg.reserved_masks)
        if err is not None:
            raise _mask_problem(err)

    def candidates(self, kind: str, digits: int, parent: Allocation | None) -> Iterator[str]:
        """Values to try, in order, when the operator asks for "the next free one"."""
        if kind == "shortcode":
            base = self.cfg.shortcode_prefix
        elif kind == "sub_number" and parent is not None:
            base = parent.value
        else:
            base = self.cfg.ussd_prefix
        for i in range(10**digits):
            body = f"{base}{i:0{digits}d}"
            yield body + "#" if kind == "ussd_code" else body


class NumberingService:
    def __init__(self, store: Store, plan: NumberingPlan) -> None:
        self._store = store
        self.plan = plan

    async def allocate(
        self, agency: Agency, req: Request, *, actor: str, client_addr: str = ""
    ) -> Allocation:
        try:
            allocation = await self._allocate(agency, req, actor=actor, client_addr=client_addr)
        except Problem as exc:
            NUMBERING_ALLOCATIONS.labels(req.kind, exc.code).inc()
            await self._store.audit.record(
                actor=actor,
                action="numbering.allocate",
                target=req.value or "",
                outcome=exc.code,
                client_addr=client_addr,
                detail={"agency_id": str(agency.id), "kind": req.kind},
            )
            raise
        NUMBERING_ALLOCATIONS.labels(req.kind, "ok").inc()
        return allocation

    async def _allocate(
        self, agency: Agency, req: Request, *, actor: str, client_addr: str
    ) -> Allocation:
        if req.kind not in KINDS:
            raise Problem("invalid_value", f"kind must be one of {', '.join(KINDS)}")
        if not agency.active:
            raise Problem("agency_not_active", "resume the agency before allocating")
        async with self._store.transaction() as tx:
            await tx.numbering.lock()
            parent = await self._parent(tx, agency, req)
            held = await tx.numbering.blocking(_SPACE[req.kind], datetime.now(UTC))
            value = self._choose(agency, req, parent, held)
            try:
                allocation = await tx.numbering.insert(
                    kind=req.kind,
                    value=value,
                    match_key=self.plan.match_key(req.kind, value),
                    agency_id=agency.id,
                    parent_id=parent.id if parent else None,
                    label=req.label,
                    allocated_by=actor,
                )
            except asyncpg.UniqueViolationError:
                # Backstop of the rules above: the partial unique index on active keys.
                raise Problem("number_taken", f"{value} is allocated") from None
            await tx.audit.record(
                actor=actor,
                action="numbering.allocate",
                target=value,
                outcome="ok",
                client_addr=client_addr,
                detail={"agency_id": str(agency.id), "kind": req.kind, "id": allocation.id},
            )
        return allocation

    async def _parent(self, tx: Store, agency: Agency, req: Request) -> Allocation | None:
        if req.kind != "sub_number":
            return None
        if req.parent_id is None:
            raise Problem("missing_field", "parent_id: a sub-number needs its shortcode's id")
        parent = await tx.numbering.get(req.parent_id)
        if (
            parent is None
            or parent.agency_id != agency.id
            or parent.kind != "shortcode"
            or not parent.active
        ):
            raise Problem(
                "invalid_sub_number", "parent_id is not an active shortcode of this agency"
            )
        return parent

    def _choose(
        self, agency: Agency, req: Request, parent: Allocation | None, held: list[Allocation]
    ) -> str:
        plan = self.plan
        if req.value is not None:
            if req.kind == "shortcode":
                value = plan.shortcode(req.value)
            elif req.kind == "sub_number":
                assert parent is not None
                value = plan.sub_number(req.value, parent)
            elif req.kind == "ussd_code":
                value = plan.ussd_code(req.value)
            else:
                value = plan.mask(req.value)
            plan.judge(req.kind, value, agency.id, held)
            return value
        if req.kind == "mask":
            raise Problem("missing_field", "value: a mask must be named")
        digits = req.digits or self._default_digits(req.kind)
        self._check_digits(req.kind, digits)
        for candidate in plan.candidates(req.kind, digits, parent):
            try:
                plan.judge(req.kind, candidate, agency.id, held)
            except Problem:
                continue
            return candidate
        raise Problem("numbering_exhausted", f"no free {req.kind} with {digits} digits")

    def _default_digits(self, kind: str) -> int:
        c = self.plan.cfg
        return {"shortcode": c.shortcode_min_digits, "ussd_code": c.ussd_min_digits}.get(kind, 1)

    def _check_digits(self, kind: str, digits: int) -> None:
        c = self.plan.cfg
        lo, hi = {
            "shortcode": (c.shortcode_min_digits, c.shortcode_max_digits),
            "ussd_code": (c.ussd_min_digits, c.ussd_max_digits),
        }.get(kind, (1, c.sub_number_max_digits))
        if not lo <= digits <= hi:
            raise Problem("invalid_value", f"digits must be {lo}..{hi} for {kind}")

    async def release(
        self, allocation_id: int, *, actor: str, client_addr: str = ""
    ) -> list[Allocation]:
        now = datetime.now(UTC)
        until = now + timedelta(days=self.plan.cfg.quarantine_days)
        async with self._store.transaction() as tx:
            await tx.numbering.lock()
            current = await tx.numbering.get(allocation_id)
            if current is None:
                raise Problem("not_found", f"allocation {allocation_id}")
            if not current.active:
                raise Problem("allocation_released", f"released at {current.released_at}")
            released = await tx.numbering.release(
                allocation_id, released_by=actor, now=now, quarantine_until=until
            )
            await tx.audit.record(
                actor=actor,
                action="numbering.release",
                target=current.value,
                outcome="ok",
                client_addr=client_addr,
                detail={
                    "agency_id": str(current.agency_id),
                    "released": [a.id for a in released],
                    "quarantine_until": until.isoformat(),
                },
            )
        return released

    async def history(self, raw: str) -> list[Allocation]:
        """Everything ever allocated under this number, USSD code or mask (by look-alike key)."""
        value = ascii_digits(raw).strip()
        if value.startswith("*"):
            return await self._store.numbering.history(self.plan.ussd_key(value), ["ussd_code"])
        if value.isdigit():
            return await self._store.numbering.history(value, ["shortcode", "sub_number"])
        return await self._store.numbering.history(skeleton(value), ["mask"])
