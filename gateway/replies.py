"""Citizens' messages to agency numbers (MO SMS): reassemble, route, opt-out keywords, thread,
and hand to the agency by webhook and by ``GET /v1/replies``.

A reply goes to the agency whose 4040 number or department sub-number is the longest prefix of
the destination. «۱۱» / «لغو» / STOP stop that agency's non-mandatory messages to the citizen,
«۱۲» / START resume them; each is confirmed by an SMS from the same number (MISSION §3).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import orjson

from adapters.sms.encoding import decode, join_parts
from adapters.sms.esme import Deliver
from gateway.config import SmsConfig
from gateway.metrics import REPLIES
from gateway.persian import normalize
from gateway.recipients import normalize_msisdn
from gateway.status import PRIORITIES
from gateway.store import Store
from gateway.store.models import Reply
from gateway.system_sms import system_message
from gateway.verification import VerificationService

log = logging.getLogger(__name__)


def keyword_of(text: str, cfg: SmsConfig) -> str:
    """``opt_out``, ``opt_in`` or "" — after Persian/Arabic digits and letters are normalised."""
    word = normalize(text).strip().upper()
    if word in {normalize(k).upper() for k in cfg.opt_out_keywords}:
        return "opt_out"
    if word in {normalize(k).upper() for k in cfg.opt_in_keywords}:
        return "opt_in"
    return ""


def reply_view(r: Reply) -> dict[str, object]:
    return {
        "id": str(r.id),
        "cursor": str(r.seq),
        "from": r.msisdn,
        "to": r.number,
        "text": r.body,
        "keyword": r.keyword or None,
        "in_reply_to": str(r.in_reply_to) if r.in_reply_to else None,
        # Replies written in an app carry operator "app:<provider>" (gateway/app_channel).
        "channel": "app" if r.operator.startswith("app:") else "sms",
        "operator": r.operator,
        "received_at": r.received_at.isoformat(),
    }


class ReplyService:
    def __init__(
        self, store: Store, cfg: SmsConfig, verification: VerificationService | None = None
    ) -> None:
        self._store = store
        self._cfg = cfg
        self._verification = verification

    async def on_inbound(self, d: Deliver) -> None:
        """Called by the SMPP client for a deliver_sm that is not a receipt; returns once the
        message (or its fragment) is committed, so the SMSC's deliver_sm_resp means "held"."""
        payload = d.message_payload or d.short_message
        decoded = decode(payload, d.data_coding, bool(d.esm_class & 0x40))
        msisdn = normalize_msisdn(d.source_addr) or d.source_addr
        number = "".join(ch for ch in d.destination_addr if ch.isdigit())
        text = decoded.text
        concat = decoded.concat
        if concat is None and d.sar_msg_ref_num is not None and d.sar_total_segments:
            concat = (d.sar_msg_ref_num, d.sar_total_segments, d.sar_segment_seqnum or 1)
        if concat is not None and concat[1] > 1:
            ref, total, seq = concat
            parts = await self._store.replies.add_fragment(
                d.operator, msisdn, number, ref, total, seq, text
            )
            if parts is None:
                return
            joined = join_parts(parts, total)
            if joined is None:
                return
            text = joined
        await self.accept(d.operator, msisdn, number, text)

    async def accept(self, operator: str, msisdn: str, number: str, text: str) -> Reply | None:
        v = self._verification
        if v is not None and number == v.root_number:
            # A citizen checking a message (docs/TRUST.md): answered by SMS, not an agency's.
            answer = await v.answer_by_sms(msisdn, text)
            REPLIES.labels(f"verify_{answer.status}").inc()
            return None
        route = await self._store.replies.route(number)
        if route is None:
            REPLIES.labels("unrouted").inc()
            log.info("MO for an unallocated number dropped (operator %s)", operator)
            return None
        agency_id, own_number = route
        keyword = keyword_of(text, self._cfg)
        now = datetime.now(UTC)
        async with self._store.transaction() as tx:
            thread = await tx.replies.last_message_to(
                agency_id, msisdn, now - timedelta(hours=self._cfg.reply_thread_hours)
            )
            reply = await tx.replies.insert(
                Reply(
                    id=uuid.uuid4(),
                    seq=0,
                    agency_id=agency_id,
                    number=number,
                    msisdn=msisdn,
                    body=text,
                    operator=operator,
                    in_reply_to=thread,
                    keyword=keyword,
                    received_at=now,
                )
            )
            if keyword:
                await tx.messages.set_opt_out(agency_id, msisdn, keyword == "opt_out")
                await self._confirm(tx, agency_id, own_number, msisdn, keyword, now)
            agency = await tx.agencies.get(agency_id)
            if agency is not None and agency.callback_url:
                body = orjson.dumps({"type": "reply.received", **reply_view(reply)})
                await tx.callbacks.enqueue(
                    agency_id,
                    "reply.received",
                    agency.callback_url,
                    body,
                    now + timedelta(hours=self._cfg.callback_retry_hours),
                )
        REPLIES.labels(keyword or "reply").inc()
        return reply

    async def _confirm(
        self,
        tx: Store,
        agency_id: uuid.UUID,
        sender: str,
        msisdn: str,
        keyword: str,
        now: datetime,
    ) -> None:
        """The confirmation SMS, from the number the citizen wrote to. Mandatory: it carries no
        opt-out hint and is sent even though the citizen just opted out."""

        text = (
            self._cfg.opt_out_confirmation
            if keyword == "opt_out"
            else (self._cfg.opt_in_confirmation)
        )
        await tx.messages.insert_one(
            system_message(
                agency_id=agency_id,
                key_id="system:opt-out",
                recipient=msisdn,
                sender=sender,
                text=text,
                now=now,
                valid=timedelta(hours=self._cfg.default_validity_hours),
                ref=f"confirm:{keyword}",
            ),
            lane=PRIORITIES["high"],
        )
        await tx.messages.notify_queued(False)
