"""``payam phone``: a terminal phone that dials ``*4…`` so a person can walk an agency's menu.

Two ways in, the two operator fronts:

* ``--http URL`` (default: the configured gateway address): the phone plays the operator of the
  HTTP front, ``POST /ussd/{operator}`` with ``sessionId, serviceCode, phoneNumber, text`` and
  the operator's secret (``--secret``, else ``ussd.http_secrets``);
* ``--sim URL``: through the SMSC simulator's USSD phones over its HTTP control API
  (``POST /ussd/dial``, ``POST /ussd/answer``, ``GET /ussd/screens``), so the dialog runs over
  real SMPP (deliver_sm op 1/18 in, submit_sm op 2/17 out).

Each screen is printed as the phone would show it; the answer is one line from stdin. The call
ends when the gateway ends the dialog, or at end of input (the user hangs up).
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

import aiohttp

from adapters.ussd.http_front import SECRET_HEADER

_WAIT_SECONDS = 15.0
_RULE = "─" * 24


class PhoneError(Exception):
    """The front refused the call or did not answer; the message says why."""


@dataclass(frozen=True, slots=True)
class Screen:
    text: str
    end: bool


class _Front:
    async def dial(self, code: str) -> Screen:
        raise NotImplementedError

    async def answer(self, text: str) -> Screen:
        raise NotImplementedError


class HttpFront(_Front):
    """The operator's side of ``POST /ussd/{operator}``: it keeps the inputs and sends them all
    (joined by ``*``) on every step, as aggregators do."""

    def __init__(
        self, http: aiohttp.ClientSession, url: str, operator: str, secret: str, number: str
    ) -> None:
        self._http, self._operator, self._secret, self._number = http, operator, secret, number
        self._url = f"{url.rstrip('/')}/ussd/{operator}"
        self._session = f"phone-{secrets.token_hex(6)}"
        self._code = ""
        self._inputs: list[str] = []

    async def _step(self) -> Screen:
        form = {
            "sessionId": self._session,
            "serviceCode": self._code,
            "phoneNumber": self._number,
            "text": "*".join(self._inputs),
        }
        async with self._http.post(
            self._url, data=form, headers={SECRET_HEADER: self._secret}
        ) as resp:
            body = await resp.text()
            if resp.status != 200:
                raise PhoneError(f"the gateway answered {resp.status}: {body[:300]}")
        kind, _, text = body.partition(" ")
        if kind not in ("CON", "END"):
            raise PhoneError(f"not a USSD answer: {body[:80]!r}")
        return Screen(text, kind == "END")

    async def dial(self, code: str) -> Screen:
        self._code = code
        return await self._step()

    async def answer(self, text: str) -> Screen:
        self._inputs.append(text)
        return await self._step()


class SimFront(_Front):
    """A phone of the SMSC simulator: dials and answers there, reads the screens it records."""

    def __init__(self, http: aiohttp.ClientSession, url: str, number: str) -> None:
        self._http, self._url, self._number = http, url.rstrip("/"), number
        self._seen = 0

    async def _call(self, path: str, body: dict[str, Any]) -> None:
        async with self._http.post(self._url + path, json=body) as resp:
            if resp.status != 200:
                raise PhoneError(f"the simulator answered {resp.status}: {await resp.text()}")

    async def _screens(self) -> list[dict[str, Any]]:
        async with self._http.get(
            self._url + "/ussd/screens", params={"phone": self._number}
        ) as resp:
            screens: list[dict[str, Any]] = await resp.json()
            return screens

    async def _next(self) -> Screen:
        deadline = time.monotonic() + _WAIT_SECONDS
        while time.monotonic() < deadline:
            screens = await self._screens()
            if len(screens) > self._seen:
                s = screens[self._seen]
                self._seen += 1
                return Screen(str(s["text"]), bool(s["end"]))
            await asyncio.sleep(0.05)
        raise PhoneError(f"no screen from the gateway within {_WAIT_SECONDS:.0f} s")

    async def dial(self, code: str) -> Screen:
        self._seen = len(await self._screens())
        await self._call("/ussd/dial", {"phone": self._number, "code": code})
        return await self._next()

    async def answer(self, text: str) -> Screen:
        await self._call("/ussd/answer", {"phone": self._number, "text": text})
        return await self._next()


async def _read_line(stdin: TextIO) -> str | None:
    line = await asyncio.get_running_loop().run_in_executor(None, stdin.readline)
    return None if line == "" else line.rstrip("\r\n")


async def call(front: _Front, code: str, stdin: TextIO, out: TextIO) -> int:
    """One call: dial, then show each screen and read each answer until the dialog ends."""
    out.write(f"☎ {code}\n")
    screen = await front.dial(code)
    while True:
        out.write(f"{_RULE}\n{screen.text}\n{_RULE}\n")
        if screen.end:
            out.write("[پایان / end]\n")
            out.flush()
            return 0
        out.write("> ")
        out.flush()
        answer = await _read_line(stdin)
        if answer is None:
            out.write("\n[قطع شد / hung up]\n")
            out.flush()
            return 0
        screen = await front.answer(answer.strip())


async def run(
    code: str,
    *,
    http_url: str | None,
    sim_url: str | None,
    operator: str,
    secret: str,
    number: str,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        front: _Front
        if sim_url:
            front = SimFront(http, sim_url, number)
        else:
            assert http_url is not None
            front = HttpFront(http, http_url, operator, secret, number)
        try:
            return await call(front, code, stdin, out)
        except (PhoneError, aiohttp.ClientError, TimeoutError) as exc:
            sys.stderr.write(f"payam phone: {exc or type(exc).__name__}\n")
            return 1
