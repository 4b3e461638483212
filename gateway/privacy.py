"""Retention and crypto-shredding (issue 7 part 5, docs/TRUST.md "Retention").

Per agency and channel a number of days (config ``privacy.retention_*``, overridden per agency
by ``PUT /admin/v1/agencies/{id}/retention``). The purge, run by the primary process every
``privacy.purge_seconds``:

1. scrubs rows past retention: texts and ciphertexts emptied, mobile numbers and national
   codes replaced by keyed hashes (``Vault.pii_hash``), so only PII-free history (counts,
   statuses, timings, parts, keyed hashes) stays for SLA reports and usage statements;
2. shreds the data keys whose whole month is past retention: whatever was sealed under them is
   unreadable everywhere, backups included;
3. deletes transient rows (delivered callbacks, MO fragments, idempotency answers, USSD
   sessions and push texts) older than the SMS retention.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.config import PrivacyConfig
from gateway.errors import Problem
from gateway.store import Store
from gateway.vault import CHANNELS, LETTER, SMS, Vault

log = logging.getLogger(__name__)

_BATCH = 5000
# The largest retention an agency may set: 20 years (days), beyond any legal need.
MAX_RETENTION_DAYS = 7305


@dataclass(frozen=True, slots=True)
class PurgeResult:
    messages: int = 0
    replies: int = 0
    letters: int = 0
    keys_shredded: int = 0


class PrivacyService:
    def __init__(self, store: Store, vault: Vault, cfg: PrivacyConfig) -> None:
        self._store = store
        self._vault = vault
        self._cfg = cfg

    def default_days(self, channel: str) -> int:
        return self._cfg.retention_sms_days if channel == SMS else self._cfg.retention_letter_days

    async def retention(self, agency_id: uuid.UUID) -> dict[str, dict[str, int | bool]]:
        own = await self._store.data_keys.retention(agency_id)
        return {
            ch: {"days": own.get(ch, self.default_days(ch)), "default": ch not in own}
            for ch in CHANNELS
        }

    async def set_retention(self, agency_id: uuid.UUID, values: dict[str, Any]) -> None:
        """``{"sms": days | null, "letter": days | null}``; null returns to the default."""
        for ch, days in values.items():
            if ch not in CHANNELS:
                raise Problem("invalid_value", f"unknown channel {ch!r}: sms or letter")
            if days is not None and (
                isinstance(days, bool)
                or not isinstance(days, int)
                or not 1 <= days <= MAX_RETENTION_DAYS
            ):
                raise Problem(
                    "invalid_value", f"{ch}: days must be 1..{MAX_RETENTION_DAYS} or null"
                )
        async with self._store.transaction() as tx:
            for ch, days in values.items():
                await tx.data_keys.set_retention(agency_id, ch, days)

    async def purge(self, now: datetime | None = None) -> PurgeResult:
        """One pass; ``now`` is injectable so tests can stand past retention."""
        now = now or datetime.now(UTC)
        keys = self._store.data_keys
        h = self._vault.pii_hash
        sms_days, letter_days = self.default_days(SMS), self.default_days(LETTER)
        counts = {"messages": 0, "replies": 0, "letters": 0}
        for name, find, scrub, channel, days in (
            ("messages", keys.old_messages, keys.scrub_messages, SMS, sms_days),
            ("replies", keys.old_replies, keys.scrub_replies, SMS, sms_days),
            ("letters", keys.old_letters, keys.scrub_letters, LETTER, letter_days),
        ):
            shortest = await keys.shortest(channel, days)
            while True:
                rows = await find(now, days, _BATCH, shortest)
                if not rows:
                    break
                await scrub([r[0] for r in rows], [h(r[1]) for r in rows])
                counts[name] += len(rows)
                if len(rows) < _BATCH:
                    break
        await keys.purge_transient(now, sms_days)
        shredded = await keys.shred(SMS, sms_days, now) + await keys.shred(LETTER, letter_days, now)
        self._vault.forget(shredded)
        result = PurgeResult(keys_shredded=len(shredded), **counts)
        if any(counts.values()) or shredded:
            log.info(
                "retention purge: %d messages, %d replies, %d letters scrubbed; %d data keys "
                "shredded",
                result.messages,
                result.replies,
                result.letters,
                result.keys_shredded,
            )
        return result
