"""Verification of messages by citizens (issue 7 item 1; docs/TRUST.md).

An agency's SMS may end with a short code, «کد تأیید: ۱۲۳۴۵۶» (policy per agency: always,
never, or per message). A citizen who doubts a message asks Payam Iran — on the web page
``/verify``, by SMS to the platform's root number, or by USSD — with the code and the number
the message came to. The answer: genuine, with the agency's name, the sender number and the
Jalali date; or «این پیام از طریق پیام ایران ارسال نشده است».

What is stored is only what that answer needs (MISSION: collect no more than needed): an HMAC of
number-and-code, an HMAC of the number, the agency, the sender and the time; no text. Because the
number is part of the hashed key, a code verifies only for the number it was sent to, and a
stranger cannot enumerate codes; attempts are counted per number and hour in PostgreSQL, so the
limit holds across processes and paths.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.cache import ShortCache
from gateway.config import VerificationConfig
from gateway.persian import ascii_digits, jalali, persian_digits
from gateway.recipients import normalize_msisdn
from gateway.status import PRIORITIES
from gateway.store import Store
from gateway.store.verification import CodeRecord
from gateway.system_sms import system_message

POLICIES = ("always", "never", "per_message")
# The platform's own messages (answers to citizens) belong to no agency.
PLATFORM_AGENCY = uuid.UUID(int=0)
LABEL = "کد تأیید"
NOT_SENT_FA = "این پیام از طریق پیام ایران ارسال نشده است"
NOT_SENT_EN = "This message was not sent through Payam Iran"
RATE_LIMITED_FA = "تعداد درخواست‌های بررسی این شماره بیش از حد مجاز است؛ یک ساعت دیگر تلاش کنید"
RATE_LIMITED_EN = "Too many verification attempts for this number; try again in an hour"
# «کد تأیید: ۱۲۳۴۵۶» in a forwarded text, else any run of digits of the code's length.
_LABELLED = re.compile(r"کد\s*ت[اأ]?[یي]{1,2}د\s*[:：]?\s*(\d+)")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class Answer:
    """What a citizen is told. ``status``: genuine, not_genuine or rate_limited."""

    status: str
    agency_name_fa: str = ""
    agency_name_en: str = ""
    sender: str = ""
    sent_at: datetime | None = None

    @property
    def genuine(self) -> bool:
        return self.status == "genuine"

    @property
    def sent_at_jalali(self) -> str:
        return persian_digits(jalali(self.sent_at)) if self.sent_at else ""

    def text_fa(self) -> str:
        if self.status == "rate_limited":
            return RATE_LIMITED_FA
        if not self.genuine:
            return NOT_SENT_FA + "."
        return (
            f"این پیام از طریق پیام ایران ارسال شده است. فرستنده: {self.agency_name_fa}، "
            f"شماره {persian_digits(self.sender)}، تاریخ {self.sent_at_jalali}."
        )

    def text_en(self) -> str:
        if self.status == "rate_limited":
            return RATE_LIMITED_EN
        if not self.genuine:
            return NOT_SENT_EN + "."
        assert self.sent_at is not None
        return (
            f"Genuine: sent through Payam Iran by {self.agency_name_en}, from {self.sender}, "
            f"on {jalali(self.sent_at)} (Jalali, Tehran time)."
        )


def extract_code(text: str, digits: int) -> str | None:
    """The code in a citizen's SMS: the code alone, or a whole forwarded message."""
    plain = ascii_digits(text)
    labelled = _LABELLED.findall(plain)
    if labelled:
        return str(labelled[-1])
    runs = [r for r in _DIGITS.findall(plain) if len(r) == digits]
    return runs[-1] if len(runs) == 1 else None


class VerificationService:
    """Codes at accept, answers to citizens. ``verify(code, msisdn)`` is the one function every
    path calls (web, JSON API, SMS to the root number, the USSD platform menu)."""

    def __init__(self, store: Store, cfg: VerificationConfig, key: bytes) -> None:
        self._store = store
        self._cfg = cfg
        self._key = key
        self._policies: ShortCache[uuid.UUID, str] = ShortCache(1.0)

    @property
    def root_number(self) -> str:
        return self._cfg.root_number

    # -- at accept -----------------------------------------------------------------------
    async def policy(self, agency_id: uuid.UUID) -> str:
        """The agency's policy, cached for a second (a change applies within it)."""
        return await self._policies.get(agency_id, lambda: self._load_policy(agency_id))

    def forget_policy(self, agency_id: uuid.UUID) -> None:
        self._policies.forget(agency_id)

    async def _load_policy(self, agency_id: uuid.UUID) -> str:
        return await self._store.verification.policy(agency_id) or "never"

    async def wanted(self, agency_id: uuid.UUID, requested: bool | None) -> bool:
        policy = await self.policy(agency_id)
        return policy == "always" or (policy == "per_message" and bool(requested))

    def new_code(self, dedupe: bytes | None = None) -> str:
        """A random code; with ``dedupe`` (agency, recipient, text and time bucket), the same
        code for the same input, so that the duplicate check, which compares whole texts,
        still sees a repeated message as a repeat."""
        digits = self._cfg.code_digits
        if dedupe is None:
            return "".join(secrets.choice("0123456789") for _ in range(digits))
        mac = hmac.new(self._key, b"dedupe\x00" + dedupe, hashlib.sha256).digest()
        return str(int.from_bytes(mac[:8], "big") % 10**digits).zfill(digits)

    @staticmethod
    def suffix(code: str) -> str:
        """Appended to the text before it is split into parts, so the parts count includes it."""
        return f"\n{LABEL}: {persian_digits(code)}"

    def record(
        self, code: str, agency_id: uuid.UUID, sender: str, msisdn: str, sent_at: datetime
    ) -> CodeRecord:
        return CodeRecord(
            code_hash=self._code_hash(msisdn, code),
            recipient_hash=self._number_hash(msisdn),
            agency_id=agency_id,
            sender=sender,
            sent_at=sent_at,
            expires_at=sent_at + timedelta(days=self._cfg.keep_days),
        )

    def _number_hash(self, msisdn: str) -> bytes:
        return hmac.new(self._key, b"number\x00" + msisdn.encode(), hashlib.sha256).digest()

    def _code_hash(self, msisdn: str, code: str) -> bytes:
        msg = b"code\x00" + msisdn.encode() + b"\x00" + code.encode()
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    # -- for citizens --------------------------------------------------------------------
    async def verify(self, code: str, msisdn: str) -> Answer:
        """The answer for a code and the number the citizen received it on. Every call counts
        as an attempt for that number, whatever the answer."""
        number = normalize_msisdn(ascii_digits(msisdn)) or msisdn
        now = datetime.now(UTC)
        window = now.replace(minute=0, second=0, microsecond=0)
        attempts = await self._store.verification.count_attempt(self._number_hash(number), window)
        if attempts > self._cfg.attempts_per_hour:
            return Answer("rate_limited")
        code = ascii_digits(code).strip()
        if not code.isdigit() or len(code) != self._cfg.code_digits:
            return Answer("not_genuine")
        match = await self._store.verification.lookup(
            self._code_hash(number, code), self._number_hash(number), now
        )
        if match is None:
            return Answer("not_genuine")
        return Answer("genuine", match.name_fa, match.name_en, match.sender, match.sent_at)

    async def verify_sms(self, msisdn: str, text: str) -> Answer:
        """An SMS to the root number: the code alone or the whole forwarded message."""
        code = extract_code(text, self._cfg.code_digits)
        return await self.verify(code or "", msisdn)

    async def answer_by_sms(self, msisdn: str, text: str) -> Answer:
        """An MO to the root number: verify, and queue the answer as an SMS from that number.
        The answer is the platform's own message (no agency: the nil agency id), mandatory so
        it carries no opt-out hint, high priority so it arrives while the citizen waits."""
        answer = await self.verify_sms(msisdn, text)
        reply = answer.text_fa()
        now = datetime.now(UTC)
        async with self._store.transaction() as tx:
            await tx.messages.insert_one(
                system_message(
                    agency_id=PLATFORM_AGENCY,
                    key_id="system:verify",
                    recipient=msisdn,
                    sender=self._cfg.root_number,
                    text=reply,
                    now=now,
                    valid=timedelta(hours=1),
                    ref=f"verify:{answer.status}",
                ),
                lane=PRIORITIES["high"],
            )
            await tx.messages.notify_queued(False)
        return answer

    async def purge(self) -> int:
        now = datetime.now(UTC)
        return await self._store.verification.purge(now, now - timedelta(hours=2))
