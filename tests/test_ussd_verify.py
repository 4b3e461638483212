"""Verification by USSD (issue 7 part 1, third path): the shipped platform menu (*4#, option 4)
asks for the code and answers for the session's phone, over the real USSD HTTP front with real
PostgreSQL: genuine, forged, wrong number, rate-limited. The engine calls
services.verification.verify(code, msisdn), so the answers match the web and SMS paths."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from adapters.ussd.http_front import SECRET_HEADER
from adapters.ussd.menu_files import MenuFileError, load_menu_file
from adapters.ussd.menus import Limits, MenuError, load_menu
from gateway.config import Config
from gateway.services import Services
from gateway.verification import NOT_SENT_FA
from tests.conftest import ROOT
from tests.test_messages_api import _agency
from tests.test_verification import _policy, _sent

SECRET = "mci-shared-secret-0123456789"
PHONE = "09121234567"  # the number the message goes to (tests.test_messages_api.MSISDN)


@pytest.fixture
def config(config: Config) -> Config:
    """The conftest config with the USSD HTTP front open and the shipped menus."""
    ussd = replace(
        config.ussd, http_secrets=(f"mci={SECRET}",), menus_dir=str(ROOT / "config/ussd")
    )
    return replace(config, ussd=ussd)


async def _ussd(client: Any, session: str, code: str, text: str = "", phone: str = PHONE) -> str:
    resp = await client.post(
        "/ussd/mci",
        data={"sessionId": session, "serviceCode": code, "phoneNumber": phone, "text": text},
        headers={SECRET_HEADER: SECRET},
    )
    assert resp.status == 200, await resp.text()
    body: str = await resp.text()
    return body


async def _verify(client: Any, session: str, code: str, phone: str = PHONE) -> str:
    """Dial *4*4# (the verify screen), type the code, read every page of the answer."""
    prompt = await _ussd(client, session, "*4*4#", phone=phone)
    assert prompt.startswith("CON کد تأیید"), prompt
    pages = [await _ussd(client, session, "*4*4#", code, phone=phone)]
    typed = [code]
    while pages[-1].startswith("CON"):
        typed.append("98")
        pages.append(await _ussd(client, session, "*4*4#", "*".join(typed), phone=phone))
    assert pages[-1].startswith("END")
    text = " ".join(p[4:].replace("۹۸ بیشتر", "").replace("۰ بازگشت", "") for p in pages)
    return " ".join(text.split())  # a page may break a line anywhere between words


async def test_verify_by_ussd_genuine_forged_wrong_number_rate_limited(
    services: Services, client: Any, admin_token: str
) -> None:
    a = await _agency(services, client, name_fa="سازمان ثبت اسناد", name_en="Deeds Registry")
    await _policy(client, admin_token, a, "always")
    code, _ = await _sent(a)

    # The menu lists it; every page fits the screen.
    root = await _ussd(client, "r1", "*4#")
    assert root.startswith("CON سامانه پیام ایران")
    assert root.endswith("۹۸ بیشتر")
    assert "4. تأیید پیامک با کد" in await _ussd(client, "r1", "*4#", "98")

    genuine = await _verify(client, "g1", code)
    assert "سازمان ثبت اسناد" in genuine
    assert "۴۰۴۰۱۲" in genuine or "404012" in genuine
    assert NOT_SENT_FA not in genuine

    # Forged code, and the right code from another phone: not sent through Payam Iran.
    forged = f"{(int(code) + 1) % 10**6:06d}"
    assert NOT_SENT_FA in await _verify(client, "f1", forged)
    assert NOT_SENT_FA in await _verify(client, "w1", code, phone="09351112233")

    # Rate limit per number, shared with the other paths (attempts so far: 2 for PHONE).
    limit = services.config.verification.attempts_per_hour
    for i in range(limit - 2):
        await _verify(client, f"n{i}", f"{i:06d}")
    over = await _verify(client, "o1", code)  # even the right code, once over
    assert "سازمان ثبت اسناد" not in over
    assert "ساعت" in over  # «… an hour»: try again later
    # The code typed is not kept in the session row.
    rows = await services.store.pool.fetch("SELECT inputs::text AS i, reply FROM ussd_sessions")
    assert rows
    assert not any(code in r["i"] for r in rows)


def test_verify_screens_only_in_the_platform_menu(tmp_path: Path) -> None:
    definition = {"root": "v", "screens": {"v": {"kind": "verify", "text": "کد:"}}}
    with pytest.raises(MenuError, match="platform menu only"):
        load_menu(definition)
    assert load_menu(definition, platform=True).screens["v"].kind == "verify"
    (tmp_path / "412.yaml").write_text("root: v\nscreens:\n  v: {kind: verify, text: x}\n")
    with pytest.raises(MenuFileError):
        load_menu_file(tmp_path / "412.yaml", Limits())
