"""Agency USSD menus: the definition format, its validation at upload, and paging.

A definition is a JSON object (YAML parsed to the same shape works too)::

    {"root": "main", "screens": {
        "main": {"kind": "menu", "text": "…", "options": [{"label": "…", "next": "nc"}]},
        "nc":   {"kind": "input", "text": "کد ملی:", "validate": "national_code", "next": "ask"},
        "ask":  {"kind": "remote", "url": "https://agency/ussd", "fallback": "…"},
        "bye":  {"kind": "message", "text": "…"}}}

Screen kinds: ``menu`` (numbered options, each to a screen), ``input`` (a validated value, then
``next``), ``message`` (shown, session ends) and ``remote`` (the agency's HTTPS endpoint answers;
``fallback`` is shown when it fails or is slow; the session ends). The platform menu alone may
also have ``verify`` screens (asks for a verification code, answers whether a message with it
was sent to this phone through Payam Iran: docs/TRUST.md).

Every screen is paged at load so that no page exceeds the limit of its encoding (MISSION §3:
≤ 72 UCS2 characters or 160 GSM7 septets per screen), counting the option numbers and the «۹۸
بیشتر» / «۰ بازگشت» lines. Errors name the screen, so the agency can fix its file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.sms.encoding import fits_gsm7, gsm7_length

KINDS = ("menu", "input", "message", "remote", "verify")
RULES = ("digits", "national_code", "text")
MORE = "98"
BACK = "0"
MORE_LINE = "۹۸ بیشتر"
BACK_LINE = "۰ بازگشت"
# Option numbers stop below the navigation codes, so "98" is never an option.
MAX_OPTIONS = 97
MAX_SCREENS = 500
DEFAULT_INPUT_ERROR = "مقدار واردشده نادرست است. دوباره وارد کنید:"


@dataclass(frozen=True, slots=True)
class Limits:
    ucs2: int = 72
    gsm7: int = 160


@dataclass(frozen=True, slots=True)
class MenuIssue:
    screen: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"screen": self.screen, "message": self.error}


class MenuError(ValueError):
    """The definition is invalid; ``issues`` name each screen at fault."""

    def __init__(self, issues: list[MenuIssue]) -> None:
        super().__init__("; ".join(f"{i.screen}: {i.error}" for i in issues))
        self.issues = issues


@dataclass(frozen=True, slots=True)
class Option:
    label: str
    next: str


@dataclass(frozen=True, slots=True)
class Screen:
    id: str
    kind: str
    text: str
    options: tuple[Option, ...] = ()
    next: str = ""
    validate: str = "text"
    min_length: int = 1
    max_length: int = 64
    error: str = DEFAULT_INPUT_ERROR
    url: str = ""
    fallback: str = ""
    send_msisdn: bool = False
    # Rendered pages, navigation lines included; filled in by load_menu.
    pages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Menu:
    root: str
    screens: Mapping[str, Screen]
    limits: Limits


def units(text: str) -> int:
    """What the text costs on one screen: GSM7 septets, or UTF-16 code units for UCS2."""
    if fits_gsm7(text):
        return gsm7_length(text)
    return len(text.encode("utf-16-le")) // 2


def fits(text: str, limits: Limits) -> bool:
    limit = limits.gsm7 if fits_gsm7(text) else limits.ucs2
    return units(text) <= limit


def _page_text(lines: list[str], first: bool, last: bool, back_first: bool = False) -> str:
    nav = ([] if last else [MORE_LINE]) + ([] if first and not back_first else [BACK_LINE])
    return "\n".join(lines + nav)


def _atoms(text: str) -> list[str]:
    """Header lines; a line too long for a page is split at spaces further down."""
    return [line for line in text.split("\n") if line.strip()]


def _split_line(line: str, limits: Limits, reserve: int) -> list[str]:
    """Break one long line at spaces into pieces that fit next to ``reserve`` nav units."""
    pieces: list[str] = []
    current = ""
    for word in line.split(" "):
        candidate = f"{current} {word}" if current else word
        if units(candidate) + reserve <= limits.ucs2:
            current = candidate
            continue
        if current:
            pieces.append(current)
        current = word
    if current:
        pieces.append(current)
    return pieces


def paginate(lines: list[str], limits: Limits, back_first: bool = False) -> list[str]:
    """Greedy paging: fill each page with whole lines; raise ValueError on a line that cannot
    fit a page even alone with both navigation lines. ``back_first``: the first page offers
    «۰ بازگشت» too (to the previous screen; a menu below the root)."""
    whole = "\n".join(lines + ([BACK_LINE] if back_first else []))
    if fits(whole, limits):
        return [whole]
    # Once paged, every page carries Persian navigation lines, so it is UCS2 whatever the text.
    nav = units("\n" + MORE_LINE + "\n" + BACK_LINE)
    flat: list[str] = []
    for line in lines:
        flat.extend([line] if units(line) + nav <= limits.ucs2 else _split_line(line, limits, nav))
    for piece in flat:
        if units(piece) + nav > limits.ucs2:
            raise ValueError(
                f"text {piece[:20]!r}… cannot fit a {limits.ucs2}-character page "
                "with its navigation lines"
            )
    pages: list[list[str]] = [[]]
    for piece in flat:
        trial = [*pages[-1], piece]
        # Measured as if more pages follow: dropping «۹۸ بیشتر» from the last page only shortens it.
        first = len(pages) == 1
        page = _page_text(trial, first=first, last=False, back_first=back_first)
        if pages[-1] and units(page) > limits.ucs2:
            pages.append([piece])
        else:
            pages[-1] = trial
    n = len(pages)
    return [
        _page_text(p, first=i == 0, last=i == n - 1, back_first=back_first)
        for i, p in enumerate(pages)
    ]


def _lines(screen: Screen) -> list[str]:
    lines = _atoms(screen.text)
    lines.extend(f"{n}. {o.label}" for n, o in enumerate(screen.options, start=1))
    return lines


class _Reader:
    """Reads one screen's fields, collecting issues instead of stopping at the first."""

    def __init__(self, sid: str, raw: Mapping[str, Any], issues: list[MenuIssue]) -> None:
        self.sid, self.raw, self.issues = sid, raw, issues

    def fail(self, error: str) -> None:
        self.issues.append(MenuIssue(self.sid, error))

    def text(self, key: str, required: bool = False, default: str = "") -> str:
        value = self.raw.get(key, None)
        if value is None:
            if required:
                self.fail(f"{key} is required")
            return default
        if not isinstance(value, str):
            self.fail(f"{key} must be a string")
            return default
        return value

    def number(self, key: str, default: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 182:
            self.fail(f"{key} must be an integer 1..182")
            return default
        return value


_FIELDS = {
    "menu": {"kind", "text", "options"},
    "input": {"kind", "text", "next", "validate", "min_length", "max_length", "error"},
    "message": {"kind", "text"},
    "remote": {"kind", "url", "fallback", "send_msisdn"},
    "verify": {"kind", "text"},
}


def _read_screen(sid: str, raw: Any, issues: list[MenuIssue]) -> Screen | None:
    if not isinstance(raw, dict):
        issues.append(MenuIssue(sid, "a screen must be an object"))
        return None
    r = _Reader(sid, raw, issues)
    kind = r.text("kind", required=True)
    if kind not in KINDS:
        if kind:
            r.fail(f"kind must be one of {', '.join(KINDS)}")
        return None
    for key in sorted(set(raw) - _FIELDS[kind]):
        r.fail(f"unknown field {key!r} for a {kind} screen")
    text = r.text("text", required=kind != "remote")
    if kind == "menu":
        options: list[Option] = []
        raw_options = raw.get("options")
        if not isinstance(raw_options, list) or not 1 <= len(raw_options) <= MAX_OPTIONS:
            r.fail(f"options must be a list of 1..{MAX_OPTIONS} options")
            raw_options = []
        for i, o in enumerate(raw_options, start=1):
            label, target = (o.get("label"), o.get("next")) if isinstance(o, dict) else (None, None)
            if not isinstance(label, str) or not label.strip() or not isinstance(target, str):
                r.fail(f"option {i} needs a label and a next screen")
                continue
            options.append(Option(label.strip(), target))
        return Screen(sid, kind, text, options=tuple(options))
    if kind == "input":
        rule = r.text("validate", default="text")
        if rule not in RULES:
            r.fail(f"validate must be one of {', '.join(RULES)}")
        lo, hi = (
            r.number("min_length", 10 if rule == "national_code" else 1),
            r.number("max_length", 64),
        )
        if lo > hi:
            r.fail("min_length is greater than max_length")
        return Screen(
            sid,
            kind,
            text,
            next=r.text("next", required=True),
            validate=rule,
            min_length=lo,
            max_length=hi,
            error=r.text("error", default=DEFAULT_INPUT_ERROR),
        )
    if kind == "remote":
        url = r.text("url", required=True)
        if url and not url.startswith("https://") and not url.startswith("http://127.0.0.1"):
            # Agencies' answers carry citizens' data: TLS only (loopback for development).
            r.fail("url must be https://")
        send = raw.get("send_msisdn", False)
        if not isinstance(send, bool):
            r.fail("send_msisdn must be true or false")
            send = False
        return Screen(
            sid, kind, text, url=url, fallback=r.text("fallback", required=True), send_msisdn=send
        )
    return Screen(sid, kind, text)


def _targets(screen: Screen) -> list[str]:
    if screen.kind == "menu":
        return [o.next for o in screen.options]
    return [screen.next] if screen.kind == "input" else []


def _with_pages(
    screen: Screen, limits: Limits, issues: list[MenuIssue], root: object = None
) -> Screen:
    single = {"remote": [screen.fallback], "input": [screen.error]}.get(screen.kind, [])
    for text in single:
        # Shown on its own, after a failure: it must fit one page.
        if text and not fits(text, limits):
            issues.append(MenuIssue(screen.id, f"text {text[:20]!r}… does not fit one page"))
    lines = _lines(screen)
    if not lines:
        return screen
    try:
        # A menu below the root offers «۰ بازگشت» on its first page too: back to the screen
        # before it (adapters/ussd/sessions.py keeps the trail).
        pages = paginate(lines, limits, back_first=screen.kind == "menu" and screen.id != root)
    except ValueError as exc:
        issues.append(MenuIssue(screen.id, str(exc)))
        return screen
    return Screen(**{**_fields(screen), "pages": tuple(pages)})


def _fields(screen: Screen) -> dict[str, Any]:
    return {name: getattr(screen, name) for name in Screen.__slots__}


def load_menu(data: Any, limits: Limits | None = None, *, platform: bool = False) -> Menu:
    """Parse and validate a definition; raise MenuError listing every problem by screen.
    ``verify`` screens only in the platform menu (``platform``): an agency cannot vouch for
    itself."""
    limits = limits or Limits()
    issues: list[MenuIssue] = []
    if not isinstance(data, dict):
        raise MenuError([MenuIssue("(menu)", "a menu definition must be an object")])
    for key in sorted(set(data) - {"root", "screens"}):
        issues.append(MenuIssue("(menu)", f"unknown field {key!r}"))
    raw_screens = data.get("screens")
    root = data.get("root")
    if not isinstance(raw_screens, dict) or not raw_screens:
        raise MenuError([*issues, MenuIssue("(menu)", "screens must be a non-empty object")])
    if len(raw_screens) > MAX_SCREENS:
        raise MenuError([MenuIssue("(menu)", f"at most {MAX_SCREENS} screens")])
    if not isinstance(root, str) or root not in raw_screens:
        issues.append(MenuIssue(str(root), "root must name one of the screens"))
    screens: dict[str, Screen] = {}
    for sid, raw in raw_screens.items():
        screen = _read_screen(sid, raw, issues)
        if screen is not None and screen.kind == "verify" and not platform:
            issues.append(MenuIssue(sid, "verify screens are for the platform menu only"))
        if screen is not None:
            screens[sid] = _with_pages(screen, limits, issues, root)
    for screen in screens.values():
        for target in _targets(screen):
            if target not in raw_screens:
                issues.append(MenuIssue(screen.id, f"target {target!r} does not exist"))
    if isinstance(root, str) and root in screens:
        seen, todo = {root}, [root]
        while todo:
            for target in _targets(screens[todo.pop()]):
                if target in screens and target not in seen:
                    seen.add(target)
                    todo.append(target)
        issues.extend(
            MenuIssue(sid, "unreachable from the root") for sid in screens if sid not in seen
        )
    if issues:
        raise MenuError(issues)
    assert isinstance(root, str)
    return Menu(root=root, screens=screens, limits=limits)


def clip(text: str, limits: Limits) -> str:
    """A remote answer cut to one page: the session ends there, so it cannot be paged."""
    text = text.strip()
    while text and not fits(text, limits):
        text = text[:-2] + "…"
    return text
