"""The USSD session engine: one finite-state machine per (operator, msisdn, session id).

State lives in PostgreSQL (gateway/store/ussd.py), so any gateway node may serve the next request
of a dialog. Updates are compare-and-set on a revision: a node that loses a race re-reads, and a
request whose input history equals the stored one is a repeat (operators retry on their own
timeouts) and gets the stored reply, byte for byte.

The engine is front-agnostic: a front passes the service code that was dialled and the user's
inputs so far (the HTTP front has them as ``text``; the SMPP front will accumulate them).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from adapters.ussd.menus import BACK, MORE, Limits, Menu, Screen, load_menu, paginate
from adapters.ussd.remote import RemoteCaller
from gateway.config import UssdConfig
from gateway.identity import is_valid_national_code
from gateway.metrics import USSD_AGENCY_SESSIONS, USSD_SESSIONS, USSD_STEP_LATENCY
from gateway.numbering import NumberingPlan
from gateway.persian import TEHRAN, normalize
from gateway.store import Store
from gateway.store.models import Agency
from gateway.store.ussd import SessionKey, SessionRow

log = logging.getLogger(__name__)

# Shown to the citizen; Persian first, English alongside for visitors and roaming phones.
UNKNOWN_CODE = "کد دستوری شماره‌گیری‌شده تعریف نشده است.\nUnknown USSD code."
UNAVAILABLE = "این سرویس در دسترس نیست.\nThis service is not available."
TIMED_OUT = "زمان جلسه به پایان رسید؛ دوباره شماره‌گیری کنید.\nSession timed out."
MENU_CHANGED = "منوی این سرویس تغییر کرد؛ دوباره شماره‌گیری کنید.\nMenu changed, dial again."
BUSY = "سامانه مشغول است؛ لطفاً دوباره تلاش کنید.\nSystem busy, please retry."

_DIALLED = re.compile(r"^\*\d+(?:\*[^*#]*)*#?$")
_CAS_ATTEMPTS = 4
_MAX_TRAIL = 32  # screens remembered for «۰ بازگشت»; menus are rarely deeper than a handful


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    end: bool


@dataclass(frozen=True, slots=True)
class _State:
    screen: str
    page: int
    inputs: dict[str, str]
    reply: str
    ended: bool
    # Screens the dialog came through to this one, for «۰ بازگشت» on a first page.
    trail: tuple[str, ...] = ()


@dataclass(slots=True)
class _Dialog:
    key: SessionKey
    agency: Agency | None  # None for the platform root menu (on the bare prefix, *4#)
    menu: Menu
    version: int
    state: _State = field(default_factory=lambda: _State("", 0, {}, "", False))


# Where a verify screen keeps the answer while it is paged.
_ANSWER = "_answer"


def _parse_dialled(service_code: str) -> tuple[str, list[str]] | None:
    """``*412*1*3#`` -> (``412``, [``1``, ``3``]); None when it is not a dialled code."""
    code = normalize(service_code).replace(" ", "")
    if not _DIALLED.match(code):
        return None
    parts = code.strip("#").lstrip("*").split("*")
    return NumberingPlan.ussd_key(code), [p for p in parts[1:] if p]


_AGENCY_OUTCOMES = frozenset({"started", "completed", "timed_out", "abandoned", "menu_changed"})


def count_session(operator: str, agency_id: uuid.UUID | None, outcome: str) -> None:
    """One dialog event, per operator and, when an agency's menu is involved, per agency."""
    USSD_SESSIONS.labels(operator, outcome).inc()
    if agency_id is not None and outcome in _AGENCY_OUTCOMES:
        USSD_AGENCY_SESSIONS.labels(str(agency_id), outcome).inc()


def _valid(screen: Screen, value: str) -> bool:
    if not screen.min_length <= len(value) <= screen.max_length:
        return False
    if screen.validate == "digits":
        return value.isascii() and value.isdigit()
    if screen.validate == "national_code":
        return is_valid_national_code(value)
    return True


class SessionEngine:
    def __init__(
        self,
        store: Store,
        cfg: UssdConfig,
        remote: RemoteCaller,
        secret_for: Callable[[Agency], str],
        platform: Menu | None = None,
        platform_code: str = "*4#",
        verifier: Callable[[str, str], Awaitable[str]] | None = None,
    ) -> None:
        self._store = store
        self._cfg = cfg
        self._remote = remote
        self._secret_for = secret_for
        self._limits = Limits(ucs2=cfg.page_chars_ucs2, gsm7=cfg.page_chars_gsm7)
        # The platform root (ussd.menus_dir/platform.yaml): menus and messages only, so it lists
        # nothing personal; unknown codes then point to it.
        self._platform = platform
        # verify screens: (code, the session's MSISDN) -> the answer's Persian text
        # (services.verification.verify(...).text_fa(), docs/TRUST.md).
        self._verifier = verifier
        self._platform_key = NumberingPlan.ussd_key(platform_code)
        self._unknown = (
            UNKNOWN_CODE if platform is None else f"{UNKNOWN_CODE}\nفهرست: {platform_code}"
        )
        # Parsed menus per agency, reused while the stored version is unchanged.
        self._menus: dict[uuid.UUID, tuple[int, Menu]] = {}

    @property
    def store(self) -> Store:
        return self._store

    @property
    def limits(self) -> Limits:
        return self._limits

    async def menu(self, agency_id: uuid.UUID) -> tuple[int, Menu] | None:
        version = await self._store.ussd.menu_version(agency_id)
        if version is None:
            return None
        cached = self._menus.get(agency_id)
        if cached is not None and cached[0] == version:
            return cached
        stored = await self._store.ussd.get_menu(agency_id)
        if stored is None:
            return None
        # Validated at upload; a limit lowered since then would raise here, and the session
        # then ends with UNAVAILABLE rather than showing an over-long screen.
        parsed = (stored.version, load_menu(stored.definition, self._limits))
        self._menus[agency_id] = parsed
        return parsed

    # -- the request ---------------------------------------------------------------------
    async def handle(
        self,
        key: SessionKey,
        service_code: str,
        history: tuple[str, ...],
        now: datetime | None = None,
    ) -> Reply:
        """Answer one operator request: the dialled code and every input of the dialog so far."""
        started = time.perf_counter()
        try:
            return await self._handle(key, service_code, history, now or datetime.now(UTC))
        finally:
            USSD_STEP_LATENCY.labels(key.operator).observe(time.perf_counter() - started)

    async def _handle(
        self, key: SessionKey, service_code: str, history: tuple[str, ...], now: datetime
    ) -> Reply:
        history = tuple(normalize(h) for h in history)
        idle = timedelta(seconds=self._cfg.idle_timeout_seconds)
        for _ in range(_CAS_ATTEMPTS):
            row = await self._store.ussd.get_session(key)
            if row is not None and now - row.updated_at > idle:
                if not history:
                    # The operator reuses a session id for a fresh dial: start over.
                    await self._store.ussd.delete_session(key, row.rev)
                    continue
                reply = Reply(TIMED_OUT, True)
                if await self._save(key, row, None, reply, history, now):
                    count_session(key.operator, row.agency_id, "timed_out")
                    return reply
                continue
            if row is not None and row.history == history:
                return Reply(row.reply, row.ended)  # a repeat: same screen again
            if row is None:
                dialog, reply, outcome = await self._dial(key, service_code, history, now)
                if await self._save(key, None, dialog, reply, history, now):
                    agency_id = dialog.agency.id if dialog and dialog.agency else None
                    count_session(key.operator, agency_id, outcome)
                    if dialog is not None and dialog.agency:  # usage statements (Art 6)
                        await self._store.reports.count_ussd_session(
                            dialog.agency.id, key.operator, now.astimezone(TEHRAN).date()
                        )
                    if reply.end and dialog is not None:
                        count_session(key.operator, agency_id, "completed")
                    return reply
                continue
            if row.ended:
                return Reply(row.reply, True)
            if len(history) < len(row.history) and row.history[: len(history)] == history:
                # A retry of an earlier step arriving late: never walk the dialog backwards.
                return Reply(row.reply, row.ended)
            dialog_or_reply = await self._resume(key, row)
            if isinstance(dialog_or_reply, Reply):
                reply, dialog = dialog_or_reply, None
            else:
                dialog = dialog_or_reply
                known = len(row.history)
                # Normally the history grows by one; if an operator sent something else, the
                # newest input is the one the user just typed.
                fresh = history[known:] if history[:known] == row.history else history[-1:]
                reply = await self._press_all(dialog, fresh)
            if await self._save(key, row, dialog, reply, history, now):
                if reply.end:
                    outcome = "completed" if dialog is not None else "menu_changed"
                    count_session(key.operator, row.agency_id, outcome)
                return reply
        log.warning("ussd session contended past %d attempts", _CAS_ATTEMPTS)
        return Reply(BUSY, True)

    async def _save(
        self,
        key: SessionKey,
        row: SessionRow | None,
        dialog: _Dialog | None,
        reply: Reply,
        history: tuple[str, ...],
        now: datetime,
    ) -> bool:
        state = dialog.state if dialog else None
        return await self._store.ussd.save_session(
            key,
            expected_rev=row.rev if row else None,
            agency_id=dialog.agency.id
            if dialog and dialog.agency
            else (row.agency_id if row else None),
            menu_version=dialog.version if dialog else (row.menu_version if row else 0),
            screen=state.screen if state else "",
            page=state.page if state else 0,
            inputs=state.inputs if state else {},
            history=history,
            reply=reply.text,
            ended=reply.end,
            now=now,
            trail=state.trail if state else (),
        )

    async def _dial(
        self, key: SessionKey, service_code: str, history: tuple[str, ...], now: datetime
    ) -> tuple[_Dialog | None, Reply, str]:
        """A new dialog: find the agency by its *4 code, show its root, walk any dial-through."""
        parsed = _parse_dialled(service_code)
        if parsed is None:
            return None, Reply(self._unknown, True), "unknown_code"
        code_key, through = parsed
        if self._platform is not None and code_key == self._platform_key:
            dialog = _Dialog(key, None, self._platform, 0)
            dialog.state = await self._enter(dialog, self._platform.root, {})
            return dialog, await self._press_all(dialog, (*through, *history)), "started"
        holder = await self._store.numbering.holder_at(code_key, ["ussd_code"], now)
        if holder is None:
            return None, Reply(self._unknown, True), "unknown_code"
        agency = await self._store.agencies.get(holder.agency_id)
        found = await self.menu(holder.agency_id) if agency and agency.active else None
        if agency is None or found is None:
            return None, Reply(UNAVAILABLE, True), "unavailable"
        version, menu = found
        dialog = _Dialog(key, agency, menu, version)
        dialog.state = await self._enter(dialog, menu.root, {})
        log.info("ussd session started: agency %s, operator %s", agency.id, key.operator)
        # Dial-through (*4NN*1*3#) walks the options as if typed, then any inputs already sent.
        reply = await self._press_all(dialog, (*through, *history))
        return dialog, reply, "started"

    async def _resume(self, key: SessionKey, row: SessionRow) -> _Dialog | Reply:
        state = _State(row.screen, row.page, dict(row.inputs), row.reply, row.ended, row.trail)
        if row.agency_id is None and self._platform is not None:
            if row.screen not in self._platform.screens:
                return Reply(MENU_CHANGED, True)
            return _Dialog(key, None, self._platform, 0, state)
        agency = await self._store.agencies.get(row.agency_id) if row.agency_id else None
        found = await self.menu(agency.id) if agency and agency.active else None
        if agency is None or found is None:
            return Reply(UNAVAILABLE, True)
        if found[0] != row.menu_version or row.screen not in found[1].screens:
            return Reply(MENU_CHANGED, True)
        return _Dialog(key, agency, found[1], found[0], state)

    # -- the machine ---------------------------------------------------------------------
    async def _press_all(self, dialog: _Dialog, inputs: tuple[str, ...] | list[str]) -> Reply:
        for value in inputs:
            if dialog.state.ended:
                break
            dialog.state = await self._press(dialog, value)
        return Reply(dialog.state.reply, dialog.state.ended)

    async def _enter(self, dialog: _Dialog, sid: str, inputs: dict[str, str]) -> _State:
        screen = dialog.menu.screens[sid]
        here = dialog.state.screen
        trail = (*dialog.state.trail, here)[-_MAX_TRAIL:] if here else ()
        if screen.kind == "remote":
            assert dialog.agency is not None  # the platform menu has no remote screens
            text = await self._remote.call(
                dialog.agency, self._secret_for(dialog.agency), screen, dialog.key, inputs
            )
            return _State(sid, 0, inputs, text, True, trail)
        last = len(screen.pages) == 1
        return _State(sid, 0, inputs, screen.pages[0], screen.kind == "message" and last, trail)

    async def _verify(self, dialog: _Dialog, screen: Screen, value: str) -> _State:
        """The code typed on a verify screen: the answer, paged like any screen (kept in the
        session's inputs under ``_answer`` for «۹۸ بیشتر»; the code itself is not kept)."""
        st = dialog.state
        if self._verifier is None:
            return replace(st, reply=UNAVAILABLE, ended=True)
        answer = await self._verifier(value, dialog.key.msisdn)
        pages = paginate([answer], self._limits)
        return replace(
            st, page=0, inputs={**st.inputs, _ANSWER: answer}, reply=pages[0], ended=len(pages) == 1
        )

    async def _press(self, dialog: _Dialog, value: str) -> _State:
        st = dialog.state
        screen = dialog.menu.screens[st.screen]
        if screen.kind == "verify":
            if _ANSWER not in st.inputs:
                return await self._verify(dialog, screen, value)
            answer_pages = paginate([st.inputs[_ANSWER]], self._limits)
            at = st.page
            if value == MORE and at < len(answer_pages) - 1:
                at += 1
            elif value == BACK and at > 0:
                at -= 1
            return replace(st, page=at, reply=answer_pages[at], ended=at == len(answer_pages) - 1)
        n = len(screen.pages)
        page = st.page
        if value == MORE and page < n - 1:
            page += 1
        elif value == BACK and page > 0:
            page -= 1
        elif value == BACK and screen.kind == "menu" and st.trail:
            # On the first page of a menu, «۰ بازگشت» is the previous screen, at its first page.
            back = st.trail[-1]
            if back in dialog.menu.screens:
                pages = dialog.menu.screens[back].pages
                return replace(st, screen=back, page=0, reply=pages[0], trail=st.trail[:-1])
        elif screen.kind == "menu":
            if value.isascii() and value.isdigit() and 1 <= int(value) <= len(screen.options):
                return await self._enter(dialog, screen.options[int(value) - 1].next, st.inputs)
        elif screen.kind == "input":
            if _valid(screen, value):
                inputs = {**st.inputs, screen.id: value}
                return await self._enter(dialog, screen.next, inputs)
            return replace(st, reply=screen.error)
        # Navigation, or a choice that is not on offer: show the (new) page again.
        ended = screen.kind == "message" and page == n - 1
        return replace(st, page=page, reply=screen.pages[page], ended=ended)
