"""USSD menu definitions: paging at the exact limits, and validation errors that name the screen."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.ussd.menus import (
    BACK_LINE,
    MORE_LINE,
    Limits,
    MenuError,
    clip,
    load_menu,
    paginate,
    units,
)

FA = "س"  # one Persian letter: one UCS2 unit, not GSM7
LIMITS = Limits()


def _message(text: str) -> dict[str, Any]:
    return {"root": "m", "screens": {"m": {"kind": "message", "text": text}}}


@pytest.mark.parametrize(
    ("text", "pages"),
    [
        (FA * 72, 1),  # exactly at the UCS2 limit: one screen
        (FA * 73, None),  # one past: cannot split a single word -> unpageable (see below)
        ("a" * 160, 1),  # GSM7 text may use 160
        ("a" * 159 + "{", None),  # '{' costs two septets: 161, and one word cannot be split
        (" ".join([FA * 10] * 6) + " " + FA * 6, 1),  # 72 with spaces
        (" ".join([FA * 10] * 6) + " " + FA * 7, 2),  # 73 with spaces: two pages
        (" ".join(["word"] * 32) + "x", 1),  # 160 GSM7 characters
        (" ".join(["word"] * 32) + "xy", 3),  # 161: paged, then UCS2 (Persian paging lines)
    ],
)
def test_message_paging_at_and_past_the_limit(text: str, pages: int | None) -> None:
    if pages is None:
        with pytest.raises(MenuError) as info:
            load_menu(_message(text))
        assert info.value.issues[0].screen == "m"
        assert "cannot fit" in info.value.issues[0].error
        return
    screen = load_menu(_message(text)).screens["m"]
    assert len(screen.pages) == pages
    for i, page in enumerate(screen.pages):
        limit = LIMITS.gsm7 if pages == 1 and page.isascii() else LIMITS.ucs2
        assert units(page) <= limit
        assert (MORE_LINE in page) == (i < pages - 1)
        assert (BACK_LINE in page) == (i > 0)


def _menu(text: str, labels: list[str]) -> dict[str, Any]:
    return {
        "root": "main",
        "screens": {
            "main": {
                "kind": "menu",
                "text": text,
                "options": [{"label": label, "next": "end"} for label in labels],
            },
            "end": {"kind": "message", "text": "پایان"},
        },
    }


@pytest.mark.parametrize(
    ("header", "labels", "pages"),
    [
        # "1. " counts: header 20 + \n + (3+22) + \n + (3+22) = 72 exactly.
        (FA * 20, [FA * 22, FA * 22], 1),
        (FA * 20, [FA * 22, FA * 23], 2),
        ("Welcome", ["Tax", "Fines"], 1),  # GSM7 stays GSM7 when it fits
        (FA * 10, [FA * 5] * 12, 3),
    ],
)
def test_menu_paging_counts_option_numbers(header: str, labels: list[str], pages: int) -> None:
    screen = load_menu(_menu(header, labels)).screens["main"]
    assert len(screen.pages) == pages
    joined = "\n".join(screen.pages)
    for n in range(1, len(labels) + 1):
        assert f"\n{n}. " in "\n" + joined  # every option shows once, with its number
    assert all(units(p) <= LIMITS.ucs2 or p.isascii() for p in screen.pages)


def test_paging_respects_a_configured_limit() -> None:
    lines = [f"{n}. {FA * 8}" for n in range(1, 10)]
    for page in paginate(lines, Limits(ucs2=40, gsm7=100)):
        assert units(page) <= 40


def _issues(definition: Any) -> list[tuple[str, str]]:
    with pytest.raises(MenuError) as info:
        load_menu(definition)
    return [(i.screen, i.error) for i in info.value.issues]


@pytest.mark.parametrize(
    ("definition", "screen", "words"),
    [
        (
            {
                "root": "a",
                "screens": {
                    "a": {
                        "kind": "menu",
                        "text": "x",
                        "options": [{"label": "go", "next": "ghost"}],
                    }
                },
            },
            "a",
            "'ghost' does not exist",
        ),
        (
            {
                "root": "a",
                "screens": {
                    "a": {"kind": "message", "text": "x"},
                    "lost": {"kind": "message", "text": "y"},
                },
            },
            "lost",
            "unreachable",
        ),
        ({"root": "nope", "screens": {"a": {"kind": "message", "text": "x"}}}, "nope", "root"),
        ({"root": "a", "screens": {"a": {"kind": "dance", "text": "x"}}}, "a", "kind"),
        (
            {
                "root": "a",
                "screens": {"a": {"kind": "input", "text": "x", "next": "a", "validate": "email"}},
            },
            "a",
            "validate",
        ),
        (
            {
                "root": "a",
                "screens": {
                    "a": {
                        "kind": "menu",
                        "text": "x",
                        "options": [{"label": "o", "next": "a"}] * 98,
                    }
                },
            },
            "a",
            "1..97",
        ),
        (
            {
                "root": "a",
                "screens": {
                    "a": {"kind": "remote", "url": "http://agency.ir/x", "fallback": "بعداً"}
                },
            },
            "a",
            "https",
        ),
        (
            {
                "root": "a",
                "screens": {
                    "a": {"kind": "remote", "url": "https://agency.ir/x", "fallback": FA * 73}
                },
            },
            "a",
            "one page",
        ),
        (
            {"root": "a", "screens": {"a": {"kind": "message", "text": "x", "colour": 1}}},
            "a",
            "unknown field",
        ),
    ],
)
def test_invalid_definitions_name_the_screen(definition: Any, screen: str, words: str) -> None:
    issues = _issues(definition)
    assert any(s == screen and words in e for s, e in issues), issues


def test_every_problem_is_listed() -> None:
    issues = _issues(
        {
            "root": "a",
            "screens": {
                "a": {"kind": "menu", "text": "x", "options": [{"label": "1", "next": "b"}]},
                "b": {"kind": "input", "text": FA * 80, "next": "zzz"},
                "c": {"kind": "message", "text": "orphan"},
            },
        }
    )
    screens = sorted(s for s, _ in issues)
    assert screens == ["b", "b", "c"]


def test_clip_keeps_remote_answers_on_one_page() -> None:
    assert clip(FA * 100, LIMITS).endswith("…")
    assert units(clip(FA * 100, LIMITS)) <= 72
    assert clip("short", LIMITS) == "short"
