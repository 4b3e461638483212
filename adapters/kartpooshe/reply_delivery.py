"""Citizens' replies to the agency's office automation: a signed webhook and/or a mail to the
agency's office-automation mailbox, threaded to the original letter (Art 4).

Webhook: POST of a ``letter.reply`` JSON with ``Payam-Signature`` made by gateway/callbacks.py
``sign`` with the agency's webhook secret (the same scheme as SMS callbacks). Mail: SMTP to the
configured relay; ``In-Reply-To`` and ``References`` carry the letter's Message-ID (the office
automation's own for letters that came by mail) and the subject the tag ``[PAYAM-<tracking>]``,
so the reply lands in the letter's thread. Network errors, 5xx/429 and SMTP 4xx are retried
with backoff until ``reply_retry_hours``; other refusals are final.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiohttp
import orjson

from gateway.agencies import AgencyService
from gateway.callbacks import SIGNATURE_HEADER, sign
from gateway.config import KartpoosheConfig
from gateway.letters.chain import utc_iso
from gateway.metrics import LETTER_REPLY_DELIVERIES
from gateway.store import Store
from gateway.store.letters import DueReplyDelivery, Letter, LetterReply, StoredAttachment

log = logging.getLogger(__name__)

_MAX_DELAY = 3600.0


def subject_tag(tracking: str) -> str:
    return f"[PAYAM-{tracking}]"


def webhook_body(letter: Letter, reply: LetterReply, files: list[StoredAttachment]) -> bytes:
    return orjson.dumps(
        {
            "type": "letter.reply",
            "letter_id": str(letter.id),
            "tracking_number": letter.tracking_number,
            "subject": letter.subject,
            "reply": {
                "id": str(reply.id),
                "reply_id": reply.reply_id,
                "text": reply.text,
                "actor": {"kind": reply.actor_kind},
                "replied_at": utc_iso(reply.replied_at),
                "content_sha256": reply.content_sha256,
                "attachments": [
                    {**f.meta(), "data_base64": base64.b64encode(f.data).decode()} for f in files
                ],
            },
        }
    )


def reply_mail(
    cfg: KartpoosheConfig,
    letter: Letter,
    reply: LetterReply,
    files: list[StoredAttachment],
    to: str,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = cfg.reply_from
    msg["To"] = to
    msg["Subject"] = f"{subject_tag(letter.tracking_number)} Re: {letter.subject}"
    msg["Message-ID"] = make_msgid(domain=cfg.mail_domain)
    msg["In-Reply-To"] = letter.mail_message_id
    msg["References"] = letter.mail_message_id
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["X-Payam-Tracking-Number"] = letter.tracking_number
    msg["X-Payam-Letter-Id"] = str(letter.id)
    msg["X-Payam-Reply-Id"] = reply.reply_id
    msg.set_content(
        f"پاسخ به نامه {letter.tracking_number} ({reply.actor_kind}):\n\n{reply.text}\n",
        charset="utf-8",
    )
    for f in files:
        maintype, _, subtype = f.content_type.partition("/")
        msg.add_attachment(f.data, maintype=maintype, subtype=subtype, filename=f.name)
    return msg


class ReplyDeliveryWorker:
    def __init__(
        self,
        store: Store,
        agencies: AgencyService,
        cfg: KartpoosheConfig,
        wake: asyncio.Event,
    ) -> None:
        self._store = store
        self._agencies = agencies
        self._cfg = cfg
        self._wake = wake
        self._stopping = asyncio.Event()
        self._rng = random.Random()
        self._session: aiohttp.ClientSession | None = None

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._cfg.request_timeout_seconds)
        ) as session:
            self._session = session
            while not self._stopping.is_set():
                try:
                    n = await self.deliver_once()
                except Exception:
                    log.exception("reply delivery round failed; retrying")
                    n = 0
                if n == 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=0.5)

    async def deliver_once(self, limit: int = 50) -> int:
        due = await self._store.letters.claim_reply_deliveries(
            limit, self._cfg.request_timeout_seconds * 3
        )
        for d in due:
            await self._deliver(d)
        return len(due)

    async def _deliver(self, d: DueReplyDelivery) -> None:
        reply = await self._store.letters.reply(d.reply_id)
        letter = await self._store.letters.get(reply.letter_id) if reply else None
        if reply is None or letter is None:
            await self._store.letters.finish_reply_delivery(d.id, "dropped", "reply gone")
            return
        files = (await self._store.letters.reply_attachments([reply.id])).get(reply.id, [])
        if d.way == "webhook":
            retryable, error = await self._webhook(d, letter, reply, files)
        else:
            retryable, error = await self._smtp(d, letter, reply, files)
        if not error:
            LETTER_REPLY_DELIVERIES.labels(d.way, "delivered").inc()
            await self._store.letters.finish_reply_delivery(d.id, "delivered", "")
            return
        if not retryable:
            LETTER_REPLY_DELIVERIES.labels(d.way, "refused").inc()
            await self._store.letters.finish_reply_delivery(d.id, "refused", error)
            return
        delay = min(_MAX_DELAY, 1.0 * 2 ** min(d.attempts, 12)) * (0.5 + self._rng.random())
        if datetime.now(UTC).timestamp() + delay > d.give_up_at.timestamp():
            LETTER_REPLY_DELIVERIES.labels(d.way, "expired").inc()
            await self._store.letters.finish_reply_delivery(d.id, "expired", error)
            return
        LETTER_REPLY_DELIVERIES.labels(d.way, "retried").inc()
        await self._store.letters.retry_reply_delivery(d.id, delay, error)

    async def _webhook(
        self, d: DueReplyDelivery, letter: Letter, reply: LetterReply, files: list[StoredAttachment]
    ) -> tuple[bool, str]:
        agency = await self._store.agencies.get(letter.agency_id)
        if agency is None:
            return False, "agency gone"
        body = webhook_body(letter, reply, files)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._agencies.webhook_secret(agency), body),
            "User-Agent": "PayamIran-Letters/1",
        }
        assert self._session is not None
        try:
            async with self._session.post(d.target, data=body, headers=headers) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return True, type(exc).__name__
        if 200 <= status < 300:
            return False, ""
        return (status in (408, 429) or status >= 500), f"HTTP {status}"

    async def _smtp(
        self, d: DueReplyDelivery, letter: Letter, reply: LetterReply, files: list[StoredAttachment]
    ) -> tuple[bool, str]:
        msg = reply_mail(self._cfg, letter, reply, files, d.target)
        host, port = self._cfg.reply_smtp_host, self._cfg.reply_smtp_port
        timeout = self._cfg.request_timeout_seconds

        def send() -> None:
            with smtplib.SMTP(host, port, timeout=timeout) as smtp:
                smtp.send_message(msg)

        try:
            await asyncio.to_thread(send)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _ in exc.recipients.values()]
            return any(400 <= c < 500 for c in codes), f"SMTP {codes}"
        except smtplib.SMTPResponseException as exc:
            return 400 <= exc.smtp_code < 500, f"SMTP {exc.smtp_code}"
        except (OSError, smtplib.SMTPException) as exc:
            return True, type(exc).__name__
        return False, ""
