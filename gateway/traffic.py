"""A small traffic generator for demonstrations (docker-compose.yml's ``traffic`` service):
a demo agency sends SMS in every lane at a steady rate, dials its USSD code, and now and then
presents a bad token, so that every dashboard of config/grafana has something to show.

``payam traffic --gateway http://gateway:8040 --rate 5``. It sets the demo agency up through the
service layer (database and master key, like the other ``payam`` commands), then talks to the
gateway over HTTP only, as an agency and an operator's USSD front would.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from dataclasses import dataclass

import aiohttp
import jwt

from gateway.errors import Problem
from gateway.identity import legal_id_check_digit
from gateway.numbering import Request
from gateway.services import Services

log = logging.getLogger(__name__)

DEMO_LEGAL_ID = "1099999999" + legal_id_check_digit("1099999999")
DEMO_SHORTCODE = "404099"
DEMO_USSD = "*499#"
_LANES = ("normal", "normal", "normal", "high", "bulk", "crisis")
_MENU = {
    "root": "main",
    "screens": {
        "main": {
            "kind": "menu",
            "text": "سامانه نمایشی پیام ایران",
            "options": [{"label": "ساعات کاری", "next": "hours"}],
        },
        "hours": {"kind": "message", "text": "شنبه تا چهارشنبه ۸ تا ۱۶"},
    },
}


@dataclass(frozen=True, slots=True)
class Demo:
    agency_id: str
    key_id: str
    secret: str


async def setup(services: Services) -> Demo:
    """The demo agency (created once), its shortcode, USSD code and menu, and a fresh key."""
    body = {
        "name_fa": "دستگاه نمایشی",
        "name_en": "Demo agency",
        "legal_id": DEMO_LEGAL_ID,
        "tps": 1000,
        "daily_fragment_quota": 10_000_000,
    }
    try:
        agency, _ = await services.agencies.create(body, actor="traffic")
    except Problem as exc:
        if exc.code != "legal_id_taken":
            raise
        found = await services.store.agencies.list(status=None, limit=1000, after=None)
        agency = next(a for a in found if a.legal_id == DEMO_LEGAL_ID)
    for kind, value in (("shortcode", DEMO_SHORTCODE), ("ussd_code", DEMO_USSD)):
        try:
            await services.numbering.allocate(agency, Request(kind, value), actor="traffic")
        except Problem as exc:  # allocated by an earlier run
            log.info("%s %s: %s", kind, value, exc.code)
    await services.store.ussd.put_menu(agency.id, _MENU, "traffic")
    issued = await services.credentials.create_key(
        agency.id, name="traffic", key_type="live", actor="traffic"
    )
    return Demo(str(agency.id), issued.key.key_id, issued.secret)


def _token(demo: Demo) -> str:
    claims = {"iss": demo.key_id, "iat": int(time.time()), "jti": secrets.token_hex(16)}
    return jwt.encode(claims, demo.secret, algorithm="HS256")


async def generate(
    gateway: str,
    demo: Demo,
    *,
    rate: float,
    seconds: float | None = None,
    ussd_operator: str = "",
    ussd_secret: str = "",
) -> int:
    """Send about ``rate`` messages a second (forever, or for ``seconds``); returns how many
    the gateway accepted."""
    rng = random.Random()
    accepted = 0
    deadline = None if seconds is None else time.monotonic() + seconds
    async with aiohttp.ClientSession(base_url=gateway) as http:
        n = 0
        while deadline is None or time.monotonic() < deadline:
            n += 1
            body = {
                "to": f"+98912{rng.randrange(10**7):07d}",
                "text": f"پیام نمایشی شماره {n}",
                "priority": _LANES[n % len(_LANES)],
            }
            try:
                async with http.post(
                    "/v1/messages", json=body, headers={"Authorization": f"Bearer {_token(demo)}"}
                ) as resp:
                    accepted += resp.status == 202
                if ussd_secret and n % 3 == 0:
                    for text in ("", "1"):
                        async with http.post(
                            f"/ussd/{ussd_operator}",
                            data={
                                "sessionId": f"demo-{n}",
                                "serviceCode": DEMO_USSD,
                                "phoneNumber": "09120000000",
                                "text": text,
                            },
                            headers={"X-Payam-Ussd-Secret": ussd_secret},
                        ) as resp:
                            await resp.read()
                if n % 20 == 0:  # a refused token, for the auth-failure panels
                    async with http.get(
                        "/v1/me", headers={"Authorization": "Bearer not-a-token"}
                    ) as resp:
                        await resp.read()
            except aiohttp.ClientError as exc:
                log.warning("gateway unreachable: %s", type(exc).__name__)
                await asyncio.sleep(2.0)
            await asyncio.sleep(1.0 / rate)
    return accepted
