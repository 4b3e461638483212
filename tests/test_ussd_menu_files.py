"""Menus from ``ussd.menus_dir``: one file per agency code and the platform root, validated at
start (a bad file stops the gateway naming the file and the screen), served over the real HTTP
front with real PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from adapters.ussd.http_front import SECRET_HEADER
from adapters.ussd.menu_files import MenuFileError, load_menu_dir
from adapters.ussd.menus import Limits
from adapters.ussd.sessions import UNKNOWN_CODE
from gateway.api.app import build_app
from gateway.config import Config, ConfigError, load_config
from gateway.numbering import Request
from gateway.services import Services, build_services
from gateway.store import Store
from tests.conftest import ROOT, make_agency

SECRET = "mci-shared-secret-0123456789"
TAX_YAML = """\
root: main
screens:
  main:
    kind: menu
    text: سازمان امور مالیاتی
    options:
      - {label: ساعات کاری, next: hours}
  hours: {kind: message, text: شنبه تا چهارشنبه ۸ تا ۱۶}
"""


def _cfg(config: Config, menus: Path) -> Config:
    ussd = replace(config.ussd, http_secrets=(f"mci={SECRET}",), menus_dir=str(menus))
    return replace(config, ussd=ussd)


async def _ussd(client: Any, code: str, text: str = "", session: str = "f1") -> str:
    resp = await client.post(
        "/ussd/mci",
        data={
            "sessionId": session,
            "serviceCode": code,
            "phoneNumber": "09121234567",
            "text": text,
        },
        headers={SECRET_HEADER: SECRET},
    )
    assert resp.status == 200
    body: str = await resp.text()
    return body


async def _tax(services: Services) -> Any:
    agency_id = await make_agency(services)
    a = await services.agencies.get(agency_id)
    await services.numbering.allocate(a, Request("ussd_code", "*412#"), actor="t")
    return agency_id


async def test_files_are_stored_and_the_platform_menu_is_served(
    config: Config, services: Services, pool: asyncpg.Pool, aiohttp_client: Any, tmp_path: Path
) -> None:
    agency_id = await _tax(services)
    (tmp_path / "412.yaml").write_text(TAX_YAML, encoding="utf-8")
    (tmp_path / "platform.yaml").write_bytes((ROOT / "config/ussd/platform.yaml").read_bytes())
    (tmp_path / "499.json").write_text(json.dumps(_small()), "utf-8")
    (tmp_path / "README.txt").write_text("not a menu")  # other files are ignored
    cfg = _cfg(config, tmp_path)
    client = await aiohttp_client(build_app(build_services(cfg, Store(pool), services.sealer)))
    stored = await services.store.ussd.get_menu(agency_id)
    assert stored is not None
    assert (stored.version, stored.updated_by) == (1, "config:412.yaml")
    assert (await _ussd(client, "*412#")).startswith("CON سازمان امور مالیاتی\n1. ساعات کاری")
    # The platform root on the bare prefix: nothing personal, dial-through works.
    root = await _ussd(client, "*4#", session="p1")
    assert root.startswith("CON سامانه پیام ایران\n1. ")
    assert (await _ussd(client, "*4#", "1", session="p1")).startswith("END پیامک دولتی")
    assert (await _ussd(client, "*4*3#", session="p2")).startswith("END برای لغو")
    # Unknown codes say so in Persian and point to the platform menu; *499# (a file but no
    # agency holding the code) was skipped.
    assert await _ussd(client, "*499#", session="u1") == f"END {UNKNOWN_CODE}\nفهرست: *4#"
    await client.close()
    # A restart with the same file does not bump the version (live dialogs would end).
    again = await aiohttp_client(build_app(build_services(cfg, Store(pool), services.sealer)))
    stored = await services.store.ussd.get_menu(agency_id)
    assert stored is not None
    assert stored.version == 1
    await again.close()


def _small() -> dict[str, Any]:
    return {"root": "m", "screens": {"m": {"kind": "message", "text": "x"}}}


@pytest.mark.parametrize(
    ("name", "content", "screen", "words"),
    [
        (
            "412.yaml",
            "root: main\nscreens:\n"
            "  main: {kind: menu, text: x, options: [{label: a, next: gone}]}\n",
            "main",
            "'gone' does not exist",
        ),
        ("412.json", '{"root": "m", "screens": {"m": {"kind": "message"}}}', "m", "text"),
        ("412.yaml", "root: [unclosed\n", "(file)", "cannot be read"),
        ("tax.yaml", TAX_YAML, "(file)", "name it after"),
        (
            "platform.yaml",
            "root: nc\nscreens:\n  nc: {kind: input, text: 'کد ملی:', next: ok}\n"
            "  ok: {kind: message, text: ok}\n",
            "nc",
            "nothing personal",
        ),
    ],
)
async def test_a_bad_file_stops_the_start_naming_file_and_screen(
    config: Config,
    services: Services,
    pool: asyncpg.Pool,
    aiohttp_client: Any,
    tmp_path: Path,
    name: str,
    content: str,
    screen: str,
    words: str,
) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    app = build_app(build_services(_cfg(config, tmp_path), Store(pool), services.sealer))
    runner = web.AppRunner(app)
    with pytest.raises(MenuFileError) as info:
        await runner.setup()  # the app's start: cleanup contexts run here
    await runner.cleanup()
    assert info.value.screen == screen
    assert name in str(info.value)
    assert words in str(info.value)
    assert await pool.fetchval("SELECT count(*) FROM ussd_menus") == 0


def test_two_files_for_one_code_are_refused(tmp_path: Path) -> None:
    (tmp_path / "412.json").write_text(json.dumps(_small()))
    (tmp_path / "412.yaml").write_text(TAX_YAML, encoding="utf-8")
    with pytest.raises(MenuFileError, match="same code"):
        load_menu_dir(str(tmp_path), Limits())


def test_shipped_platform_menu_is_valid_and_impersonal() -> None:
    files = load_menu_dir(str(ROOT / "config/ussd"), Limits())
    platform = files["platform"].menu
    assert {s.kind for s in platform.screens.values()} <= {"menu", "message", "verify"}
    assert all(len(p) <= 72 for s in platform.screens.values() for p in s.pages)


def test_menus_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"PAYAM_USSD_MENUS_DIR": str(tmp_path / "missing")})
    assert info.value.key == "ussd.menus_dir"
