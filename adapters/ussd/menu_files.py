"""Menus loaded from ``ussd.menus_dir`` at start: one JSON or YAML file per agency code, and the
platform root menu.

``412.yaml`` (or ``412.json``) is the menu of the agency holding ``*412#``: the file name is the
code without ``*`` and ``#``. ``platform.yaml`` is the platform root, served on the bare prefix
(``*4#``); it may only hold ``menu`` and ``message`` screens, so that it lists nothing personal
and asks for nothing. Every file is parsed and validated at start (adapters/ussd/menus.py); the
first problem stops the gateway with the file and the screen named. A valid agency file is
stored as that agency's menu when it differs from what is stored (so a restart does not bump the
version and end live dialogs); a file whose code no agency holds yet is skipped with a warning.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from adapters.ussd.menus import Limits, Menu, MenuError, load_menu
from gateway.store import Store

log = logging.getLogger(__name__)

PLATFORM = "platform"
_SUFFIXES = (".json", ".yaml", ".yml")
_PLATFORM_KINDS = ("menu", "message", "verify")


class MenuFileError(ValueError):
    """A menu file is unreadable or invalid; the message names the file and the screen."""

    def __init__(self, path: Path, screen: str, problem: str, more: int = 0) -> None:
        extra = f" (and {more} more)" if more else ""
        super().__init__(f"USSD menu file {str(path)!r}: screen {screen!r}: {problem}{extra}")
        self.path = path
        self.screen = screen


@dataclass(frozen=True, slots=True)
class MenuFile:
    key: str  # "412" for *412#, or "platform"
    path: Path
    definition: Any
    menu: Menu


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MenuFileError(path, "(file)", f"cannot be read: {problem}") from None


def load_menu_file(path: Path, limits: Limits) -> MenuFile:
    key = path.stem
    if key != PLATFORM and not (key.isascii() and key.isdigit()):
        raise MenuFileError(
            path, "(file)", "name it after the code's digits (412.yaml) or platform"
        )
    definition = _parse(path)
    try:
        menu = load_menu(definition, limits, platform=key == PLATFORM)
    except MenuError as exc:
        first = exc.issues[0]
        raise MenuFileError(path, first.screen, first.error, len(exc.issues) - 1) from None
    if key == PLATFORM:
        for screen in menu.screens.values():
            if screen.kind not in _PLATFORM_KINDS:
                raise MenuFileError(
                    path,
                    screen.id,
                    "the platform menu lists nothing personal: menu and message screens only",
                )
    return MenuFile(key, path, definition, menu)


def load_menu_dir(directory: str, limits: Limits) -> dict[str, MenuFile]:
    """Every menu file of ``directory`` by key; raises MenuFileError on the first bad one."""
    if not directory:
        return {}
    found: dict[str, MenuFile] = {}
    for path in sorted(Path(directory).iterdir()):
        if path.suffix not in _SUFFIXES or not path.is_file():
            continue
        loaded = load_menu_file(path, limits)
        if loaded.key in found:
            raise MenuFileError(path, "(file)", f"{found[loaded.key].path.name} has the same code")
        found[loaded.key] = loaded
    return found


async def store_agency_menus(store: Store, files: dict[str, MenuFile]) -> int:
    """Store each agency file as its agency's menu where it differs; returns how many."""
    stored = 0
    now = datetime.now(UTC)
    for key, f in files.items():
        if key == PLATFORM:
            continue
        holder = await store.numbering.holder_at(key, ["ussd_code"], now)
        if holder is None:
            log.warning("USSD menu file %s: no agency holds this code yet; skipped", f.path.name)
            continue
        current = await store.ussd.get_menu(holder.agency_id)
        if current is not None and current.definition == f.definition:
            continue
        actor = f"config:{f.path.name}"
        async with store.transaction() as tx:
            saved = await tx.ussd.put_menu(holder.agency_id, f.definition, actor)
            await tx.audit.record(
                actor=actor,
                action="ussd.menu_put",
                target=str(holder.agency_id),
                outcome="ok",
                client_addr="",
                detail={"version": saved.version, "screens": len(f.menu.screens)},
            )
        log.info("USSD menu of agency %s loaded from %s", holder.agency_id, f.path.name)
        stored += 1
    return stored
