"""A letter's life after acceptance: each transition writes its signed evidence event and the
letter row in ONE transaction, holding the letter row locked (so the chain stays linear).

    accepted ─► deposited ─► notified ─► opened ─► replied       (deemed_delivered beside them)
        └──────► failed   (the e-box refused it for good, or the attempts ran out)
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.config import KartpoosheConfig
from gateway.errors import Problem
from gateway.letters.attachments import check_attachment
from gateway.letters.chain import EvidenceChain, utc_iso
from gateway.letters.evidence import canonical, sha256_hex
from gateway.letters.service import STATUS_RANK
from gateway.letters.sms import notice_sender, queue_notice
from gateway.metrics import LETTER_TIME_TO_OPEN
from gateway.recipients import CitizenDirectory
from gateway.store import Store
from gateway.store.letters import Letter, LetterReply, StoredAttachment

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def advance(letter: Letter, status: str) -> str:
    """The letter's status after an event: never moves back along the chain."""
    if letter.status == "failed":
        return "failed"
    return status if STATUS_RANK[status] > STATUS_RANK.get(letter.status, -1) else letter.status


@dataclass(frozen=True, slots=True)
class IncomingReply:
    reply_id: str
    text: str
    attachments: list[dict[str, Any]]


class Lifecycle:
    def __init__(
        self,
        store: Store,
        chain: EvidenceChain,
        cfg: KartpoosheConfig,
        directory: CitizenDirectory,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._chain = chain
        self._cfg = cfg
        self._directory = directory
        self.clock = clock

    async def deposited(self, letter_id: uuid.UUID, at: datetime, http_status: int) -> None:
        """The e-box holds the letter; queue the SMS notice in the same transaction."""
        msisdn: str | None = None
        pre = await self._store.letters.get(letter_id)
        if pre is not None and pre.notify_sms and not pre.is_test:
            found = await self._directory.numbers_for([pre.recipient_id])
            msisdn = next(iter(found.values()), None)
        async with self._store.transaction() as tx:
            letter = await tx.letters.lock(letter_id)
            if letter is None or letter.deposited_at is not None or letter.status == "failed":
                return
            detail: dict[str, Any] = {"ebox_status": http_status}
            if letter.is_test:
                detail["test"] = True
            await self._chain.append(tx, letter, "deposited", at, detail)
            fields: dict[str, Any] = {
                "status": advance(letter, "deposited"),
                "deposited_at": at,
                "leased_until": datetime.min.replace(tzinfo=UTC),
            }
            if letter.notify_sms and letter.is_test:
                fields["notice_state"] = "test"  # no SMS for test traffic
            elif letter.notify_sms:
                agency = await tx.agencies.get(letter.agency_id)
                sender = notice_sender(
                    await tx.numbering.for_agency(letter.agency_id, include_released=False)
                )
                if agency is None or sender is None:
                    fields["notice_state"] = "no_sender"
                elif msisdn is None:
                    fields["notice_state"] = "no_number"
                else:
                    fields["notice_message_id"] = await queue_notice(
                        tx,
                        letter.agency_id,
                        msisdn,
                        sender,
                        agency.name_fa,
                        letter.tracking_number,
                        self.clock(),
                    )
                    fields["notice_state"] = "queued"
            await tx.letters.update(letter_id, **fields)

    async def failed(
        self, letter_id: uuid.UUID, reason: str, http_status: int, attempts: int
    ) -> None:
        async with self._store.transaction() as tx:
            letter = await tx.letters.lock(letter_id)
            if letter is None or letter.status != "accepted":
                return
            now = self.clock()
            await self._chain.append(
                tx,
                letter,
                "failed",
                now,
                {"reason": reason, "ebox_status": http_status, "attempts": attempts},
            )
            await tx.letters.update(
                letter_id, status="failed", failed_at=now, last_error=reason, attempts=attempts
            )

    async def notices_settled(self, limit: int = 200) -> int:
        """Letters whose SMS notice reached a final status: delivered → "notified"."""
        done = await self._store.letters.notices_pending(limit)
        for letter_id, status, final_at in done:
            async with self._store.transaction() as tx:
                letter = await tx.letters.lock(letter_id)
                if letter is None or letter.notice_state != "queued":
                    continue
                if status == "delivered" and final_at is not None:
                    await self._chain.append(
                        tx,
                        letter,
                        "notified",
                        final_at,
                        {"channel": "sms", "message_id": str(letter.notice_message_id)},
                    )
                    await tx.letters.update(
                        letter_id,
                        status=advance(letter, "notified"),
                        notified_at=final_at,
                        notice_state="delivered",
                    )
                else:
                    await tx.letters.update(letter_id, notice_state=status)
        return len(done)

    async def opened(self, tx: Store, letter: Letter, at: datetime, actor: str) -> None:
        if letter.opened_at is not None:
            return
        await self._chain.append(tx, letter, "opened", at, {"actor": actor})
        fields: dict[str, Any] = {"status": advance(letter, "opened"), "opened_at": at}
        if letter.deposited_at is not None:
            LETTER_TIME_TO_OPEN.observe(max(0.0, (at - letter.deposited_at).total_seconds()))
        if letter.deemed_policy == "on_open" and letter.deemed_at is None:
            # Estonia's rule (MISSION §3): received when the person opens it.
            await self._chain.append(tx, letter, "deemed_delivered", at, {"policy": "on_open"})
            fields["deemed_at"] = at
        await tx.letters.update(letter.id, **fields)

    async def replied(
        self, tx: Store, letter: Letter, at: datetime, actor: str, reply: IncomingReply
    ) -> LetterReply | None:
        if not letter.reply_allowed:
            raise Problem("reply_not_allowed", "this letter does not take replies")
        if len(reply.attachments) > self._cfg.max_attachments:
            raise Problem("invalid_event", f"at most {self._cfg.max_attachments} attachments")
        files: list[StoredAttachment] = []
        for i, a in enumerate(reply.attachments):
            try:
                data = base64.b64decode(a["data_base64"], validate=True)
                checked = check_attachment(
                    str(a.get("name", "")),
                    str(a.get("content_type", "")),
                    data,
                    i,
                    self._cfg.max_attachment_bytes,
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise Problem(
                    "invalid_event", f"reply.attachments[{i}]: {type(exc).__name__}"
                ) from None
            except Problem as exc:
                raise Problem("invalid_event", f"reply.attachments[{i}]: {exc.detail}") from None
            files.append(
                StoredAttachment(
                    i, checked.name, checked.content_type, checked.size, checked.sha256, data
                )
            )
        if sum(f.size for f in files) > self._cfg.max_total_bytes:
            raise Problem("invalid_event", f"attachments over {self._cfg.max_total_bytes} bytes")
        digest = sha256_hex(
            canonical({"text": reply.text, "attachments": [f.meta() for f in files]})
        )
        row = LetterReply(
            id=uuid.uuid4(),
            seq=0,
            agency_id=letter.agency_id,
            letter_id=letter.id,
            reply_id=reply.reply_id,
            text=reply.text,
            actor_kind=actor,
            content_sha256=digest,
            replied_at=at,
            received_at=at,
        )
        if not await tx.letters.insert_reply(row, files):
            return None  # the same reply_id again (a new event_id for an old reply)
        await self._chain.append(
            tx,
            letter,
            "replied",
            at,
            {
                "reply_id": reply.reply_id,
                "reply_sha256": digest,
                "actor": actor,
                "attachments": len(files),
            },
        )
        await tx.letters.update(letter.id, status=advance(letter, "replied"), replied_at=at)
        await self._enqueue_reply_deliveries(tx, letter, row.id)
        return row

    async def _enqueue_reply_deliveries(
        self, tx: Store, letter: Letter, reply_id: uuid.UUID
    ) -> None:
        settings = await tx.letters.settings(letter.agency_id)
        agency = await tx.agencies.get(letter.agency_id)
        give_up = self.clock() + timedelta(hours=self._cfg.reply_retry_hours)
        webhook = (settings.reply_webhook_url if settings else "") or (
            agency.callback_url if agency else ""
        )
        if webhook:
            await tx.letters.enqueue_reply_delivery(reply_id, "webhook", webhook, give_up)
        if settings is not None and settings.office_mailbox:
            await tx.letters.enqueue_reply_delivery(
                reply_id, "smtp", settings.office_mailbox, give_up
            )

    async def deem_due(self, limit: int = 500) -> int:
        """ "N days after deposit" letters whose N days have passed (Germany's 10-day rule,
        MISSION §3) get their deemed_delivered event. The clock is injected for tests."""
        now = self.clock()
        ids = await self._store.letters.deemed_due(now, limit)
        for letter_id in ids:
            async with self._store.transaction() as tx:
                letter = await tx.letters.lock(letter_id)
                if letter is None or letter.deemed_at is not None or letter.deposited_at is None:
                    continue
                due = letter.deposited_at + timedelta(days=letter.deemed_days)
                await self._chain.append(
                    tx,
                    letter,
                    "deemed_delivered",
                    now,
                    {"policy": "after_days", "days": letter.deemed_days, "due_at": utc_iso(due)},
                )
                await tx.letters.update(letter_id, deemed_at=now)
        return len(ids)
