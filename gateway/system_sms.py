"""The SMS the platform itself queues (not an agency's API request): opt-out confirmations,
letter notices and e-box login codes, verification answers. One builder, so that they are all
alike: high priority, mandatory (no opt-out hint, not blocked by one: they answer the citizen
or are legal notices), due now, and parts counted by our own splitter."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from adapters.sms.encoding import plan
from gateway.status import PRIORITIES, QUEUED
from gateway.store.models import NewMessage


def system_message(
    *,
    agency_id: uuid.UUID,
    key_id: str,
    recipient: str,
    sender: str,
    text: str,
    now: datetime,
    valid: timedelta,
    ref: str,
) -> NewMessage:
    encoding, parts = plan(text)
    return NewMessage(
        id=uuid.uuid4(),
        agency_id=agency_id,
        batch_id=None,
        key_id=key_id,
        is_test=False,
        recipient=recipient,
        sender=sender,
        body=text,
        encoding=encoding,
        parts=parts,
        priority=PRIORITIES["high"],
        mandatory=True,
        status=QUEUED,
        send_at=None,
        valid_until=now + valid,
        client_ref=ref,
        callback_url="",
        vt=now,
    )
