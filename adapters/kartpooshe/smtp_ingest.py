"""E-mail ingestion: agencies' office automation sends letters by SMTP (aiosmtpd).

``RCPT TO:<national-code>@<mail_domain>`` (a person) or ``<legal-entity-id>@<mail_domain>`` (a
company), after STARTTLS and SMTP AUTH with the agency's credentials (admin API / CLI); the
envelope and header From must be addresses the agency registered. The MIME message becomes
one letter per recipient (text/plain body, PDF and image attachments); the 250 answer to DATA
carries the tracking numbers. Optional headers: ``X-Payam-Reply-Allowed: no``,
``X-Payam-Notify-SMS: no``, ``X-Payam-Deemed-Delivery: on_open | after_days=N``,
``X-Payam-Client-Ref``.

Reply codes (RFC 5321 §4.2, enhanced codes RFC 3463): 530 before STARTTLS/AUTH, 535 bad
credentials, 550 5.1.1 invalid recipient (with the reason), 550 5.1.2 foreign domain, 553 5.7.1
From not registered by the agency, 552 5.3.4 too large, 554 5.6.x content refused.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from gateway.errors import Problem
from gateway.identity import is_valid_legal_id, is_valid_national_code, normalize_digits
from gateway.letters.attachments import Attachment, check_attachment
from gateway.letters.service import (
    MAX_BODY,
    MAX_SUBJECT,
    NOTICE_SENDER_KINDS,
    Draft,
    parse_deemed,
)
from gateway.letters.tls import server_context
from gateway.metrics import LETTER_SMTP_REJECTIONS, LETTER_SMTP_SESSIONS
from gateway.persian import normalize_letters
from gateway.services import Services

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 50
# RFC 5322 §2.1.1: a line is at most 998 characters; a Message-ID is one header line.
MAX_MESSAGE_ID = 998
_COUNTED = ("530", "535", "550", "552", "553", "554")
_TAGS = re.compile(r"<[^>]+>")


class CountingSMTP(SMTP):
    """aiosmtpd's server, counting sessions and refusals by reply code (metrics)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._tls_protocol is None:  # STARTTLS calls this again on the same session
            LETTER_SMTP_SESSIONS.inc()
        super().connection_made(transport)

    async def push(self, status: Any) -> None:
        text = status.decode() if isinstance(status, bytes) else str(status)
        if text[:3] in _COUNTED:
            LETTER_SMTP_REJECTIONS.labels(text[:3]).inc()
        await super().push(status)


def parse_recipient(address: str, domain: str) -> tuple[str, str] | str:
    """(kind, id) for an e-box address, else the 550 reply explaining why not."""
    local, _, dom = address.rpartition("@")
    if dom.lower() != domain.lower():
        return f"550 5.1.2 <{address}>: not an e-box address (domain must be {domain})"
    digits = normalize_digits(local)
    if len(digits) == 10 and is_valid_national_code(digits):
        return "person", digits
    if len(digits) == 11 and is_valid_legal_id(digits):
        return "company", digits
    return (
        f"550 5.1.1 <{address}>: not a valid national code (10 digits) or legal-entity ID "
        "(11 digits): the check digit does not match"
    )


def _yes(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() not in ("no", "false", "0", "off")


def _deemed(value: str | None) -> tuple[str, int | None] | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v == "on_open":
        return parse_deemed("on_open")
    if v.startswith("after_days="):
        try:
            return parse_deemed({"after_days": int(v.split("=", 1)[1])})
        except ValueError:
            pass
    raise Problem("invalid_value", "X-Payam-Deemed-Delivery: on_open or after_days=N")


@dataclass(frozen=True, slots=True)
class ParsedMail:
    subject: str
    body: str
    attachments: list[Attachment]
    deemed: tuple[str, int | None] | None
    reply_allowed: bool
    notify_sms: bool
    client_ref: str
    mail_id: str


def _clean(text: str) -> str:
    """Text PostgreSQL can store: the email package keeps undecodable header bytes as lone
    surrogates (surrogateescape); raw UTF-8 (SMTPUTF8) is recovered, anything else becomes
    U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _body_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = str(part.get_content())
    if part.get_content_subtype() == "html":
        text = _TAGS.sub("", text)
    return text


class IngestHandler:
    def __init__(self, services: Services) -> None:
        self._svc = services
        self._cfg = services.config.kartpooshe

    # -- AUTH (async, so the credential check can use the database) -------------------------
    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False)
        else:
            try:
                blob = base64.b64decode(args[1].encode(), validate=True)
            except ValueError:
                return AuthResult(
                    success=False, handled=False, message="501 5.5.2 Can't decode base64"
                )
        try:
            _, login, password = blob.split(b"\x00")
        except ValueError:
            return AuthResult(
                success=False, handled=False, message="501 5.5.2 Can't split auth value"
            )
        return await self._check(login, password)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        if len(args) == 1:
            login = await server.challenge_auth(server.AuthLoginUsernameChallenge)
            if not isinstance(login, bytes):
                return AuthResult(success=False)
        else:
            try:
                login = base64.b64decode(args[1].encode(), validate=True)
            except ValueError:
                return AuthResult(
                    success=False, handled=False, message="501 5.5.2 Can't decode base64"
                )
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False)
        return await self._check(login, password)

    async def _check(self, login: bytes, password: bytes) -> AuthResult:
        agency_id = await self._svc.letter_settings.authenticate(
            login.decode(errors="replace"), password.decode(errors="replace")
        )
        if agency_id is None:
            return AuthResult(
                success=False, handled=False, message="535 5.7.8 Authentication credentials invalid"
            )
        agency = await self._svc.store.agencies.get(agency_id)
        if agency is None or not agency.active:
            return AuthResult(
                success=False, handled=False, message="535 5.7.8 The agency is suspended"
            )
        return AuthResult(success=True, auth_data=LoginPassword(agency_id.bytes, b""))

    # -- envelope ----------------------------------------------------------------------------
    def _agency_id(self, session: Session) -> uuid.UUID:
        data: Any = session.auth_data
        return uuid.UUID(bytes=data.login)

    async def _registered(self, session: Session, address: str) -> bool:
        settings = await self._svc.store.letters.settings(self._agency_id(session))
        return settings is not None and address.lower() in settings.from_addresses

    async def handle_MAIL(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not await self._registered(session, address):
            return f"553 5.7.1 <{address}>: not a From address this agency registered"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 At most {MAX_RECIPIENTS} recipients per message"
        parsed = parse_recipient(address, self._cfg.mail_domain)
        if isinstance(parsed, str):
            return parsed
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        try:
            return await self._accept(session, envelope)
        except Problem as exc:
            return _reply_for(exc)
        except Exception:
            log.exception("SMTP ingestion failed")
            return "451 4.3.0 Temporary failure; nothing was stored, retry"

    def _parse(self, raw: bytes) -> tuple[str, ParsedMail | str]:
        """Everything read from the message bytes, before anything is stored: the header From
        and a ParsedMail, or the 5xx reply refusing it. Deterministic on the bytes, so what
        fails here fails on every retry (5xx, never 4xx)."""
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(msg, EmailMessage)
        header_from = email.utils.parseaddr(_clean(str(msg.get("From", ""))))[1]
        try:
            return header_from, self._content(msg)
        except Problem as exc:  # a refused attachment or header value
            return header_from, _reply_for(exc)

    def _content(self, msg: EmailMessage) -> ParsedMail | str:
        subject = normalize_letters(_clean(str(msg.get("Subject", "")))).strip()[:MAX_SUBJECT]
        body = normalize_letters(_clean(_body_text(msg))).strip()
        if not subject:
            return "554 5.6.0 The letter needs a Subject"
        if not body:
            return "554 5.6.0 The letter needs a text body"
        if len(body) > MAX_BODY:
            return f"552 5.3.4 The body is longer than {MAX_BODY} characters"
        mail_id = _clean(str(msg.get("Message-ID", ""))).strip()
        if len(mail_id) > MAX_MESSAGE_ID:
            return f"554 5.6.0 The Message-ID is longer than {MAX_MESSAGE_ID} characters"
        client_ref = _clean(str(msg.get("X-Payam-Client-Ref", "")))[:100]
        for what, text in (("Subject", subject), ("body", body), ("Message-ID", mail_id)):
            # PostgreSQL text cannot hold U+0000 (SQLSTATE 22021); the API refuses it too.
            if "\x00" in text:
                return f"554 5.6.0 The {what} must not contain NUL characters"
        attachments: list[Attachment] = []
        total = 0
        for i, part in enumerate(msg.iter_attachments()):
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                return f"554 5.6.1 Attachment {i + 1} cannot be decoded"
            total += len(data)
            if i >= self._cfg.max_attachments:
                return f"552 5.3.4 At most {self._cfg.max_attachments} attachments"
            if total > self._cfg.max_total_bytes:
                return f"552 5.3.4 Attachments exceed {self._cfg.max_total_bytes} bytes"
            attachments.append(
                check_attachment(
                    _clean(part.get_filename() or ""),
                    part.get_content_type(),
                    data,
                    i,
                    self._cfg.max_attachment_bytes,
                )
            )
        return ParsedMail(
            subject=subject,
            body=body,
            attachments=attachments,
            deemed=_deemed(msg.get("X-Payam-Deemed-Delivery")),
            reply_allowed=_yes(msg.get("X-Payam-Reply-Allowed"), True),
            notify_sms=_yes(msg.get("X-Payam-Notify-SMS"), True),
            client_ref=client_ref.replace("\x00", ""),
            mail_id=mail_id,
        )

    async def _accept(self, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        try:
            header_from, parsed = self._parse(raw)
        except Problem:
            raise
        except LookupError:  # the email package's answer to an unknown charset
            return "554 5.6.0 The text is in an unknown charset (send UTF-8)"
        except Exception as exc:
            # The email package raises many kinds on malformed input (unknown charsets and
            # transfer encodings, broken encoded words and parameters): the message is at
            # fault, not the server, so 554 rather than "try again" (RFC 5321 §4.2.5).
            log.info("unparseable letter mail refused: %s", type(exc).__name__)
            return "554 5.6.0 The message cannot be parsed (malformed MIME or headers)"
        # Who sends comes first: a stranger learns nothing about what the content lacks.
        if not header_from or not await self._registered(session, header_from):
            return f"553 5.7.1 From: <{header_from[:200]}> is not an address this agency registered"
        if isinstance(parsed, str):
            return parsed
        agency = await self._svc.agencies.get(self._agency_id(session))
        digest = hashlib.sha256(raw).digest()
        recipients = []
        for rcpt in envelope.rcpt_tos:
            r = parse_recipient(rcpt, self._cfg.mail_domain)
            assert not isinstance(r, str)
            recipients.append(r)
        refusal = await self._preflight(agency.id, parsed, recipients, digest)
        if refusal:
            return refusal
        tracking: list[str] = []
        for kind, rid in recipients:
            draft = Draft(
                recipient_kind=kind,
                recipient_id=rid,
                subject=parsed.subject,
                body=parsed.body,
                reply_allowed=parsed.reply_allowed,
                deemed=parsed.deemed,
                notify_sms=parsed.notify_sms,
                client_ref=parsed.client_ref,
            )
            if parsed.mail_id:
                # Office automation resends a message whose 250 it did not see: the same
                # Message-ID and bytes give the same letter, not a second one.
                letter, _ = await self._svc.letters.accept_idempotent(
                    agency,
                    draft,
                    parsed.attachments,
                    _idempotency_key(rid, parsed.mail_id),
                    digest,
                    source="smtp",
                    mail_message_id=parsed.mail_id,
                )
            else:
                letter, _ = await self._svc.letters.accept(
                    agency, draft, parsed.attachments, source="smtp"
                )
            tracking.append(letter.tracking_number)
        return f"250 2.0.0 Accepted: {' '.join(tracking)}"

    async def _preflight(
        self,
        agency_id: uuid.UUID,
        parsed: ParsedMail,
        recipients: list[tuple[str, str]],
        digest: bytes,
    ) -> str | None:
        """What would refuse one recipient's letter is checked for all before the first is
        stored: one message is one answer, so a 5xx must mean no letter was made (the sender
        will not retry it) — a person's letter with a notice needs the agency's 4040 number,
        a company's does not; a Message-ID reused with other bytes for one recipient only."""
        if parsed.notify_sms and any(kind == "person" for kind, _ in recipients):
            held = await self._svc.store.numbering.for_agency(agency_id, include_released=False)
            if not any(a.kind in NOTICE_SENDER_KINDS for a in held):
                return _reply_for(Problem("no_sender", ""))
        if parsed.mail_id:
            for _, rid in recipients:
                stored = await self._svc.store.letters.idempotent_get(
                    agency_id, _idempotency_key(rid, parsed.mail_id)
                )
                if stored is not None and stored[0] != digest:
                    return _reply_for(Problem("idempotency_key_reused", ""))
        return None


def _idempotency_key(recipient_id: str, mail_id: str) -> str:
    return f"smtp:{recipient_id}:{mail_id}"[:200]


def _reply_for(exc: Problem) -> str:
    if exc.code == "attachment_too_large":
        return f"552 5.3.4 {exc.detail}"
    if exc.code in ("unsupported_attachment", "invalid_attachment", "too_many_attachments"):
        return f"554 5.6.1 {exc.detail}"
    if exc.code == "idempotency_key_reused":
        return "554 5.6.0 This Message-ID was already used for another message"
    if exc.code == "no_sender":
        return "554 5.7.1 The SMS notice needs the agency's 4040 number (or X-Payam-Notify-SMS: no)"
    return f"554 5.6.0 {exc.code}: {exc.detail}"


class _QuietAiosmtpd(logging.Filter):
    """aiosmtpd logs every command line at INFO (``RCPT TO:<national-code@…>``): national codes
    must not reach the logs (privacy rule), so its logger keeps WARNING and above, minus the
    deprecation notice it writes on every AUTH (it sets the legacy ``login_data`` itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


def quiet_aiosmtpd_logs() -> None:
    mail_log = logging.getLogger("mail.log")
    mail_log.setLevel(logging.WARNING)
    if not any(isinstance(f, _QuietAiosmtpd) for f in mail_log.filters):
        mail_log.addFilter(_QuietAiosmtpd())


async def start_smtp(services: Services, port: int | None = None) -> asyncio.Server:
    """Listen on kartpooshe.smtp_host:smtp_port in the app's own event loop (the store's pool
    lives there; aiosmtpd's Controller would run a second loop in a thread)."""
    cfg = services.config.kartpooshe
    tls = server_context(
        cfg.smtp_cert_file,
        cfg.smtp_key_file,
        # The self-signed development pair lives beside the evidence key (var/).
        str(Path(cfg.evidence_key_file).parent),
        cfg.mail_domain,
    )
    quiet_aiosmtpd_logs()
    handler = IngestHandler(services)
    loop = asyncio.get_running_loop()
    # Base64 makes attachments a third larger on the wire; headers and body need some room.
    size_limit = cfg.max_total_bytes * 4 // 3 + 1_048_576

    def factory() -> CountingSMTP:
        return CountingSMTP(
            handler,
            data_size_limit=size_limit,
            enable_SMTPUTF8=True,
            hostname=cfg.mail_domain,
            tls_context=tls,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            # A silent client is cut off (slow clients holding sessions open).
            timeout=cfg.smtp_timeout_seconds,
            loop=loop,
        )

    server = await loop.create_server(
        factory, host=cfg.smtp_host, port=cfg.smtp_port if port is None else port
    )
    log.info("SMTP ingestion listening on %s", server.sockets[0].getsockname())
    return server
