"""SMS around letters, through the SMS core's durable queue: the notice of a new letter from the
agency's own 4040 number (Art 3), and the e-box's one-time login codes from the platform's
sender. Neither carries a link (MISSION §3: links in SMS are the phishers' tool)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from gateway.store import Store
from gateway.store.models import Allocation, NewMessage
from gateway.store.reports import LETTER_NOTICE_KEY
from gateway.system_sms import system_message

# Platform messages (one-time codes) are not any agency's: they carry this agency id, which no
# agency row has, so no agency's quota, callbacks or reports count them.
PLATFORM_AGENCY = uuid.UUID(int=0)
NOTICE_VALIDITY = timedelta(hours=24)
OTP_VALIDITY = timedelta(minutes=10)


def notice_text(agency_name_fa: str, tracking: str) -> str:
    """Persian: who sent it and the tracking number; where to read it, without a link."""
    return (
        f"نامه رسمی از «{agency_name_fa}» در کارپوشه شما ثبت شد.\n"
        f"شماره پیگیری: {tracking}\n"
        "برای خواندن، به کارپوشه خود وارد شوید."
    )


def otp_text(code: str) -> str:
    return f"کد ورود کارپوشه: {code}\nKartpooshe login code: {code}\nاین کد را به کسی ندهید."


def notice_sender(held: list[Allocation]) -> str | None:
    """The agency's own 4040 number (a shortcode first, else a sub-number); never a mask: the
    notice must show the number citizens know belongs to the agency."""
    for kind in ("shortcode", "sub_number"):
        for a in sorted(held, key=lambda a: a.id):
            if a.kind == kind:
                return a.value
    return None


def _message(
    agency_id: uuid.UUID,
    recipient: str,
    sender: str,
    text: str,
    now: datetime,
    valid: timedelta,
    ref: str,
) -> NewMessage:
    return system_message(
        agency_id=agency_id,
        key_id=LETTER_NOTICE_KEY,
        recipient=recipient,
        sender=sender,
        text=text,
        now=now,
        valid=valid,
        ref=ref,
    )


async def queue_notice(
    tx: Store,
    agency_id: uuid.UUID,
    msisdn: str,
    sender: str,
    agency_name_fa: str,
    tracking: str,
    now: datetime,
) -> uuid.UUID:
    m = _message(
        agency_id,
        msisdn,
        sender,
        notice_text(agency_name_fa, tracking),
        now,
        NOTICE_VALIDITY,
        tracking,
    )
    await tx.messages.insert_one(m, lane=m.priority)
    await tx.messages.notify_queued(False)
    return m.id


async def queue_otp(tx: Store, msisdn: str, sender: str, code: str, now: datetime) -> uuid.UUID:
    m = _message(
        PLATFORM_AGENCY, msisdn, sender, otp_text(code), now, OTP_VALIDITY, "kartpooshe-otp"
    )
    await tx.messages.insert_one(m, lane=m.priority)
    await tx.messages.notify_queued(False)
    return m.id


def otp_subject(national_code: str) -> bytes:
    """What the rate limit counts by: a hash, so the table holds no national codes."""
    return hashlib.sha256(b"payam-kartpooshe-otp:" + national_code.encode()).digest()
