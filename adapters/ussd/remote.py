"""Remote screens: ask the agency's HTTPS endpoint what to show, signed, with a short timeout.

The request is ``POST url`` with a JSON body ``{"agency_id", "screen", "session", "inputs"}``
(plus ``"msisdn"`` only when the screen sets ``send_msisdn``: nothing personal is sent that the
service did not ask for) and the header ``Payam-Signature`` of gateway/callbacks.py, so agencies
verify both kinds of request with the same code. The answer must be 200 with ``{"text": "…"}``;
anything else, or no answer within ``ussd.remote_timeout_seconds``, shows the screen's fallback.
The session ends on a remote screen, so the answer is clipped to one page.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import aiohttp
import orjson

from adapters.ussd.menus import Limits, Screen, clip
from gateway.callbacks import SIGNATURE_HEADER, sign
from gateway.metrics import USSD_REMOTE
from gateway.store.models import Agency
from gateway.store.ussd import SessionKey

log = logging.getLogger(__name__)


def session_ref(key: SessionKey) -> str:
    """A stable, opaque reference for the agency's logs: not the operator's id, not the number."""
    raw = f"{key.operator}\x00{key.msisdn}\x00{key.session_id}".encode()
    return hashlib.sha256(raw).hexdigest()[:24]


class RemoteCaller:
    def __init__(self, session: aiohttp.ClientSession, timeout: float, limits: Limits) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._limits = limits

    async def call(
        self,
        agency: Agency,
        secret: str,
        screen: Screen,
        key: SessionKey,
        inputs: dict[str, str],
    ) -> str:
        payload: dict[str, Any] = {
            "agency_id": str(agency.id),
            "screen": screen.id,
            "session": session_ref(key),
            "inputs": inputs,
        }
        if screen.send_msisdn:
            payload["msisdn"] = key.msisdn
        body = orjson.dumps(payload)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body),
            "User-Agent": "PayamIran-USSD/1",
        }
        outcome = "ok"
        try:
            async with self._session.post(
                screen.url, data=body, headers=headers, timeout=self._timeout
            ) as resp:
                if resp.status != 200:
                    outcome = f"http_{resp.status // 100}xx"
                else:
                    answer = await resp.json(content_type=None)
                    text = answer.get("text") if isinstance(answer, dict) else None
                    if isinstance(text, str) and text.strip():
                        USSD_REMOTE.labels("ok").inc()
                        return clip(text, self._limits)
                    outcome = "bad_answer"
        except TimeoutError:
            outcome = "timeout"
        except (aiohttp.ClientError, ValueError) as exc:
            outcome = "error"
            log.debug("remote screen error: %s", type(exc).__name__)
        USSD_REMOTE.labels(outcome).inc()
        log.warning(
            "ussd remote screen %s of agency %s failed (%s); fallback shown",
            screen.id,
            agency.id,
            outcome,
        )
        return screen.fallback
